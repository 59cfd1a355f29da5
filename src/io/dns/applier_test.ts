/**
 * DnsApplier: which strategy it picks, the namespace guard, and the whole cycle through files in
 * a temporary directory (with a fake view of namespaces and mounts).
 */
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "../../../tests/support/assert.ts";
import { parseIPv4 } from "../../lib/ip.ts";
import { type CommandResult, RecordingRunner } from "../command.ts";
import { DnsApplier, DnsNotApplied } from "./applier.ts";
import type { DnsSystem } from "./system.ts";

const ip = (t: string): number => parseIPv4(t)!;
const ORIGINAL = "nameserver 192.168.1.1\n";
const STUB = "# resolved's stub\nnameserver 127.0.0.53\noptions edns0 trust-ad\n";

/** Not in a namespace, nothing mounted. */
const plainHost: DnsSystem = {
  netnsTag: () => Promise.resolve(undefined),
  isMountPoint: () => Promise.resolve(false),
};

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "xvpn-dns-applier-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function resolvedHost(statusOk: boolean): RecordingRunner {
  return new RecordingRunner((argv): CommandResult | undefined =>
    argv[1] === "status" && !statusOk ? { code: 1, stdout: "", stderr: "not running" } : undefined
  );
}

Deno.test("DnsApplier: systemd-resolved's stub in use -> resolvectl, and nothing written", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/resolv.conf`, STUB);
    const runner = resolvedHost(true);
    const dns = new DnsApplier({
      runner,
      resolvConf: `${dir}/resolv.conf`,
      backupDir: `${dir}/run`,
      system: plainHost,
      os: "linux",
    });
    assertEquals(
      await dns.apply([ip("10.77.0.1")], "xvpn0"),
      "systemd-resolved sends every query to 10.77.0.1 over xvpn0 (resolvectl dns, domain ~.)",
    );
    assert(dns.active);
    assertEquals(await dns.restore(), "systemd-resolved settings of xvpn0 reverted");
    assertEquals(runner.transcript(), [
      "resolvectl status",
      "resolvectl dns xvpn0 10.77.0.1",
      "resolvectl domain xvpn0 ~.",
      "resolvectl revert xvpn0",
    ]);
    assertEquals(await Deno.readTextFile(`${dir}/resolv.conf`), STUB);
    assertEquals(await dns.restore(), undefined);
  });
});

Deno.test("DnsApplier: stub in resolv.conf but resolved not running -> the file is rewritten", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/resolv.conf`, STUB);
    const runner = resolvedHost(false);
    const dns = new DnsApplier({
      runner,
      resolvConf: `${dir}/resolv.conf`,
      backupDir: `${dir}/run`,
      system: plainHost,
      os: "linux",
    });
    assertEquals(
      await dns.apply([ip("10.77.0.1")], "xvpn0"),
      `resolv.conf now points at 10.77.0.1 (backup in ${dir}/run/resolv.conf.xvpn0.bak)`,
    );
    assertEquals(runner.transcript(), ["resolvectl status"]);
    assertEquals(await dns.restore(), `resolv.conf restored from ${dir}/run/resolv.conf.xvpn0.bak`);
    assertEquals(await Deno.readTextFile(`${dir}/resolv.conf`), STUB);
  });
});

Deno.test("DnsApplier: a plain resolv.conf is rewritten without asking resolved", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/resolv.conf`, ORIGINAL);
    const runner = resolvedHost(true);
    const dns = new DnsApplier({
      runner,
      resolvConf: `${dir}/resolv.conf`,
      backupDir: `${dir}/run`,
      system: plainHost,
      os: "linux",
    });
    await dns.apply([ip("10.77.0.1")], "xvpn0");
    assertEquals(runner.transcript(), [], "glibc reads this file: resolved would change nothing");
    await dns.restore();
    assertEquals(await Deno.readTextFile(`${dir}/resolv.conf`), ORIGINAL);
  });
});

Deno.test("DnsApplier: in a namespace without its own resolv.conf, nothing is touched", async () => {
  await withDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/resolv.conf`, STUB);
    const runner = resolvedHost(true);
    const dns = new DnsApplier({
      runner,
      resolvConf: `${dir}/resolv.conf`,
      backupDir: `${dir}/run`,
      system: { ...plainHost, netnsTag: () => Promise.resolve("net4026532281") },
      os: "linux",
    });
    await assertRejects(
      () => dns.apply([ip("10.77.0.1")], "xvpn0"),
      DnsNotApplied,
      "has no resolv.conf of its own",
    );
    assertEquals(runner.transcript(), [], "resolved runs outside the namespace: not asked");
    assertEquals(await Deno.readTextFile(`${dir}/resolv.conf`), STUB);
    assert(!(await Deno.lstat(`${dir}/run`).then(() => true, () => false)));
  });
});

Deno.test("DnsApplier: in a namespace with a mounted resolv.conf, that file is used; backup tagged", async () => {
  await withDir(async (dir) => {
    const conf = `${dir}/resolv.conf`;
    await Deno.writeTextFile(conf, STUB);
    const runner = resolvedHost(true);
    const dns = new DnsApplier({
      runner,
      resolvConf: conf,
      backupDir: `${dir}/run`,
      system: {
        netnsTag: () => Promise.resolve("net4026532281"),
        isMountPoint: (p) => Promise.resolve(p === conf),
      },
      os: "linux",
    });
    const backup = `${dir}/run/resolv.conf.xvpn0.net4026532281.bak`;
    assertEquals(await dns.backupPath("xvpn0"), backup);
    assertEquals(
      await dns.apply([ip("10.77.0.1")], "xvpn0"),
      `resolv.conf now points at 10.77.0.1 (backup in ${backup})`,
    );
    assertEquals(runner.transcript(), []);
    assertStringIncludes(await Deno.readTextFile(conf), "nameserver 10.77.0.1\n");
    assertEquals(await Deno.readTextFile(backup), STUB);

    // Crash, then a new process: recoverStale puts the namespace's file back.
    const next = new DnsApplier({
      runner,
      resolvConf: conf,
      backupDir: `${dir}/run`,
      system: {
        netnsTag: () => Promise.resolve("net4026532281"),
        isMountPoint: (p) => Promise.resolve(p === conf),
      },
      os: "linux",
    });
    assertStringIncludes((await next.recoverStale("xvpn0"))!, "did not stop cleanly");
    assertEquals(await Deno.readTextFile(conf), STUB);
    assertEquals(await next.recoverStale("xvpn0"), undefined);
  });
});

Deno.test("DnsApplier: no servers or another OS -> DnsNotApplied", async () => {
  const runner = new RecordingRunner();
  const linux = new DnsApplier({ runner, system: plainHost, os: "linux" });
  await assertRejects(() => linux.apply([], "xvpn0"), DnsNotApplied, "pushed no DNS servers");
  const mac = new DnsApplier({ runner, system: plainHost, os: "darwin" });
  await assertRejects(
    () => mac.apply([ip("10.77.0.1")], "utun3"),
    DnsNotApplied,
    "not implemented for darwin",
  );
  assertEquals(await mac.recoverStale("utun3"), undefined);
  assertEquals(runner.transcript(), []);
});
