/**
 * Root integration tests for DNS through the tunnel: a real `xvpn serve` pushing a DNS server
 * that exists only on the far side of the tunnel (a tiny Deno DNS server on the server's tunnel
 * address), a real `xvpn connect` in a client namespace with its own resolv.conf, and glibc's
 * resolver (`getent hosts`) asking through it. Each test builds its own lab and removes it.
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { LAB, Lab, type LabOptions } from "../src/demo/lab.ts";
import { parseMark } from "../src/io/dns/resolvconf.ts";

/** The client namespace's resolv.conf before the tunnel: a server nobody can reach. */
const CLIENT_RESOLV = "# the client namespace's own resolv.conf (xvpn DNS test)\n" +
  "nameserver 192.0.2.1\noptions timeout:1 attempts:1\n";
const GAME_NAME = "game.test";
const STATIC_SERVER = new URL("../src/io/dns/static_server.ts", import.meta.url).pathname;

async function withLab(opts: LabOptions, fn: (lab: Lab) => Promise<void>): Promise<void> {
  const lab = await Lab.create(opts);
  const nsDir = `/etc/netns/${lab.topo.ns("client")}`;
  try {
    await fn(lab);
  } catch (err) {
    const dnsOut = await Deno.readTextFile(lab.path("dns.out")).catch(() => "(none)");
    throw new Error(
      `${(err as Error).message}\n${await lab.logs()}\n--- dns server output ---\n${dnsOut}`,
      { cause: err },
    );
  } finally {
    await lab.destroy();
  }
  assert(!(await exists(nsDir)), `${nsDir} is removed with the lab`);
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** Starts the static DNS server in `host` on `addr`:53 and waits until it is bound. */
async function startDnsServer(lab: Lab, host: string, addr: string): Promise<void> {
  const out = lab.path("dns.out");
  lab.topo.spawn(host, [
    Deno.execPath(),
    "run",
    "--quiet",
    "--no-config",
    "--unstable-net",
    "--allow-net",
    STATIC_SERVER,
    `${addr}:53`,
    `${GAME_NAME}=${LAB.game}`,
  ], { logFile: out });
  // Its output reaches the file only in chunks, so readiness is the bound socket itself.
  await waitFor(`the DNS server on ${addr}:53`, async () => {
    const r = await lab.topo.exec(host, ["ss", "-Hnlu", "src", `${addr}:53`], {
      allowFailure: true,
    });
    return r.stdout.includes(`${addr}:53`);
  });
}

async function waitFor(what: string, ok: () => Promise<boolean>, timeoutMs = 15_000) {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** Waits until the client's log has a line including `text` (after `from` characters). */
async function waitLog(lab: Lab, text: string, from = 0): Promise<string> {
  let log = "";
  await waitFor(`"${text}" in the client log`, async () => {
    log = (await Deno.readTextFile(lab.path("client.log")).catch(() => "")).slice(from);
    return log.includes(text);
  });
  return log;
}

async function clientLogLength(lab: Lab): Promise<number> {
  return (await Deno.readTextFile(lab.path("client.log")).catch(() => "")).length;
}

/** `getent hosts <name>` in the client namespace: the address, or undefined when not found. */
async function resolveInClient(lab: Lab, name: string): Promise<string | undefined> {
  const r = await lab.topo.exec("client", ["getent", "hosts", name], {
    allowFailure: true,
    timeoutMs: 10_000,
  });
  return r.code === 0 ? r.stdout.trim().split(/\s+/)[0] : undefined;
}

/** The backup path the client logged when it applied DNS. */
function backupFromLog(log: string): string {
  const m = /backup in ([^)\s;]+)/.exec(log);
  assert(m, `no backup path in the client log: ${log}`);
  return m[1]!;
}

async function stopClient(lab: Lab): Promise<void> {
  const status = await Lab.stop(lab.client);
  lab.client = undefined;
  assertEquals(status?.code, 0, "the client exits 0 after SIGTERM");
}

rootTest(
  "dns: names resolve through the tunnel's DNS server; resolv.conf is byte-identical after SIGTERM",
  async () => {
    const hostBefore = await Deno.readFile("/etc/resolv.conf");
    await withLab({ clientResolvConf: CLIENT_RESOLV }, async (lab) => {
      const path = lab.clientResolvConfPath;
      const before = await Deno.readFile(path);
      assertEquals(new TextDecoder().decode(before), CLIENT_RESOLV);
      assertEquals(await resolveInClient(lab, GAME_NAME), undefined, "nothing resolves before");

      lab.startServer();
      await lab.waitAddress("server", LAB.serverTunnel);
      await startDnsServer(lab, "server", LAB.serverTunnel);
      // The DNS server is reachable only through the tunnel: no route to it yet.
      const noRoute = await lab.topo.exec("client", ["ip", "route", "get", LAB.serverTunnel], {
        allowFailure: true,
      });
      assert(noRoute.code !== 0, `no route to ${LAB.serverTunnel} before: ${noRoute.stdout}`);

      lab.startClient();
      await lab.waitAddress("client", LAB.clientTunnel);
      const log = await waitLog(lab, "DNS: resolv.conf now points at 10.77.0.1 (backup in ");
      const backup = backupFromLog(log);
      assert(backup.startsWith("/run/xvpn/resolv.conf.xvpn0.net"), backup);
      const during = await Deno.readTextFile(path);
      assertEquals(parseMark(during)?.backup, backup);
      assertStringIncludes(during, "\nnameserver 10.77.0.1\noptions timeout:1 attempts:1\n");
      assertEquals(await Deno.readTextFile(backup), CLIENT_RESOLV);

      assertEquals(await resolveInClient(lab, GAME_NAME), LAB.game, "A record via the tunnel");
      assertEquals(await resolveInClient(lab, "elsewhere.test"), undefined, "NXDOMAIN");
      assertEquals(
        await Deno.readFile("/etc/resolv.conf"),
        hostBefore,
        "the machine's resolv.conf is not touched",
      );

      const mark = await clientLogLength(lab);
      await stopClient(lab);
      const stopLog = await waitLog(lab, "DNS: resolv.conf restored from", mark);
      assertStringIncludes(stopLog, backup);
      assertEquals(await Deno.readFile(path), before, "resolv.conf byte-identical after SIGTERM");
      assert(!(await exists(backup)), "backup removed");
      assertEquals(await resolveInClient(lab, GAME_NAME), undefined, "nothing resolves after");
    });
    assertEquals(await Deno.readFile("/etc/resolv.conf"), hostBefore);
  },
);

rootTest("dns: a backup left by a killed client is put back on the next start", async () => {
  await withLab({ clientResolvConf: CLIENT_RESOLV }, async (lab) => {
    const path = lab.clientResolvConfPath;
    const before = await Deno.readFile(path);
    await Deno.writeTextFile(
      lab.path("client-nodns.yaml"),
      [
        await Deno.readTextFile(lab.path("client.yaml")),
        "dns: false",
      ].join("\n"),
    );
    await lab.up();
    const backup = backupFromLog(await waitLog(lab, "DNS: resolv.conf now points at"));
    let backupLeft: string | undefined = backup;
    try {
      // SIGKILL: no cleanup at all. The TUN vanishes with the process, our resolv.conf stays.
      lab.client!.kill("SIGKILL");
      await lab.client!.status;
      lab.client = undefined;
      assert(parseMark(await Deno.readTextFile(path)), "our file is still in place");
      assert(await exists(backup), "and so is the backup");

      // Next start with DNS on: recovered first, so the new backup is the original again.
      let mark = await clientLogLength(lab);
      lab.startClient();
      await lab.waitAddress("client", LAB.clientTunnel);
      let log = await waitLog(lab, "DNS: resolv.conf now points at", mark);
      assertStringIncludes(log, "did not stop cleanly: resolv.conf restored from " + backup);
      assertEquals(await Deno.readFile(backup), before, "the backup is the original file");

      // Killed again; next start with dns: false only puts the original back.
      lab.client!.kill("SIGKILL");
      await lab.client!.status;
      lab.client = undefined;
      mark = await clientLogLength(lab);
      lab.startClient("client-nodns.yaml");
      await lab.waitAddress("client", LAB.clientTunnel);
      log = await waitLog(lab, "DNS: left as it is (dns: false", mark);
      assertStringIncludes(log, "did not stop cleanly: resolv.conf restored from " + backup);
      assertEquals(await Deno.readFile(path), before, "original back while the tunnel runs");
      assert(!(await exists(backup)));
      backupLeft = undefined;
      await stopClient(lab);
      assertEquals(await Deno.readFile(path), before);
    } finally {
      if (backupLeft) await Deno.remove(backupLeft).catch(() => {});
    }
  });
});

rootTest(
  "dns: dns_route sends a DNS server outside the pushed routes through the tunnel",
  async () => {
    await withLab({
      withOther: true,
      serverDns: [LAB.other],
      clientExtra: "dns_route: true",
      clientResolvConf: CLIENT_RESOLV,
    }, async (lab) => {
      const path = lab.clientResolvConfPath;
      const before = await Deno.readFile(path);
      await startDnsServer(lab, "other", LAB.other);
      await lab.up();
      await waitLog(lab, `DNS: resolv.conf now points at ${LAB.other}`);
      const r = await lab.topo.exec("client", ["ip", "route", "get", LAB.other]);
      assertStringIncludes(r.stdout, "dev xvpn0");
      assertEquals(await resolveInClient(lab, GAME_NAME), LAB.game);

      await stopClient(lab);
      const routes = await lab.topo.exec("client", ["ip", "route", "show"]);
      assert(!routes.stdout.includes(LAB.other), `host route removed: ${routes.stdout}`);
      assertEquals(await Deno.readFile(path), before);
    });
  },
);

rootTest(
  "dns: in a namespace without its own resolv.conf the machine's is left alone",
  async () => {
    const hostBefore = await Deno.readFile("/etc/resolv.conf");
    await withLab({}, async (lab) => {
      await lab.up();
      const log = await waitLog(lab, "DNS: not changed: this network namespace has no resolv.conf");
      assert(!log.includes("backup in"), log);
      assertEquals(await Deno.readFile("/etc/resolv.conf"), hostBefore);
      await stopClient(lab);
    });
    assertEquals(await Deno.readFile("/etc/resolv.conf"), hostBefore);
  },
);
