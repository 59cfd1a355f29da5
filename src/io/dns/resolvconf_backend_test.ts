/**
 * The resolv.conf backend on real files in a temporary directory: apply, restore byte for byte,
 * crash recovery, symlinks, and the cases where it must not touch anything.
 */
import {
  assert,
  assertEquals,
  assertRejects,
  assertStringIncludes,
} from "../../../tests/support/assert.ts";
import { parseIPv4 } from "../../lib/ip.ts";
import { ResolvConfBackend, type ResolvConfPaths } from "./resolvconf_backend.ts";
import { parseMark } from "./resolvconf.ts";

const ip = (t: string): number => parseIPv4(t)!;
const TUNNEL_DNS = [ip("10.77.0.1")];
const ORIGINAL = "# from DHCP\nsearch lan\nnameserver 192.168.1.1\noptions edns0\n";

async function withDir(fn: (dir: string, paths: ResolvConfPaths) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "xvpn-dns-test-" });
  try {
    await Deno.mkdir(`${dir}/etc`);
    await fn(dir, {
      resolvConf: `${dir}/etc/resolv.conf`,
      backup: `${dir}/run/xvpn/resolv.conf.xvpn0.bak`,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

/** Directory entries other than the expected ones: leftover temporary files. */
async function entries(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

Deno.test("resolv.conf: apply points at the tunnel's DNS, restore puts the file back byte for byte", async () => {
  await withDir(async (dir, paths) => {
    await Deno.writeTextFile(paths.resolvConf, ORIGINAL);
    await Deno.chmod(paths.resolvConf, 0o640);
    const b = new ResolvConfBackend(paths, "xvpn0");
    const notes: string[] = [];
    const said = await b.apply(TUNNEL_DNS, notes);
    assertEquals(
      said,
      `resolv.conf now points at 10.77.0.1 (backup in ${paths.backup})`,
    );
    assertEquals(notes, []);
    assert(b.active);
    const ours = await Deno.readTextFile(paths.resolvConf);
    assertEquals(parseMark(ours), { ifname: "xvpn0", backup: paths.backup });
    assertStringIncludes(ours, "\nnameserver 10.77.0.1\noptions edns0\n");
    assert(!ours.includes("192.168.1.1") && !ours.includes("search"), ours);
    assertEquals(await Deno.readTextFile(paths.backup), ORIGINAL);
    assertEquals((await Deno.stat(paths.resolvConf)).mode! & 0o777, 0o640, "mode kept");

    // A second apply (new servers after a reconnect) rewrites ours and keeps the first backup.
    await b.apply([ip("10.77.0.1"), ip("10.77.0.53")]);
    assertStringIncludes(await Deno.readTextFile(paths.resolvConf), "nameserver 10.77.0.53\n");
    assertEquals(await Deno.readTextFile(paths.backup), ORIGINAL);

    assertEquals(await b.restore(), `resolv.conf restored from ${paths.backup}`);
    assertEquals(await Deno.readTextFile(paths.resolvConf), ORIGINAL);
    assertEquals((await Deno.stat(paths.resolvConf)).mode! & 0o777, 0o640, "mode kept");
    assert(!(await exists(paths.backup)), "backup removed after restore");
    assert(!b.active);
    assertEquals(await b.restore(), undefined, "a second restore has nothing to do");
    assertEquals(await entries(`${dir}/etc`), ["resolv.conf"], "no temporary files left");
  });
});

Deno.test("resolv.conf: a backup left by a crash is put back on the next start", async () => {
  await withDir(async (_dir, paths) => {
    await Deno.writeTextFile(paths.resolvConf, ORIGINAL);
    await new ResolvConfBackend(paths, "xvpn0").apply(TUNNEL_DNS);
    // The process dies here: our file and the backup stay behind.

    const next = new ResolvConfBackend(paths, "xvpn0");
    const said = await next.recoverStale();
    assertEquals(
      said,
      "found a backup left by an earlier xvpn on xvpn0 that did not stop cleanly: " +
        `resolv.conf restored from ${paths.backup}`,
    );
    assertEquals(await Deno.readTextFile(paths.resolvConf), ORIGINAL);
    assert(!(await exists(paths.backup)));
    assertEquals(await next.recoverStale(), undefined, "nothing left to recover");
  });
});

Deno.test("resolv.conf: apply recovers a stale backup first, so the original is what is saved", async () => {
  await withDir(async (_dir, paths) => {
    await Deno.writeTextFile(paths.resolvConf, ORIGINAL);
    await new ResolvConfBackend(paths, "xvpn0").apply(TUNNEL_DNS); // crashed run

    const next = new ResolvConfBackend(paths, "xvpn0");
    const notes: string[] = [];
    await next.apply(TUNNEL_DNS, notes);
    assertEquals(notes.length, 1);
    assertStringIncludes(notes[0]!, "did not stop cleanly");
    assertEquals(await Deno.readTextFile(paths.backup), ORIGINAL, "not our own file");
    await next.restore();
    assertEquals(await Deno.readTextFile(paths.resolvConf), ORIGINAL);
  });
});

Deno.test("resolv.conf: an outdated backup is dropped when resolv.conf was rewritten since", async () => {
  await withDir(async (_dir, paths) => {
    await Deno.writeTextFile(paths.resolvConf, ORIGINAL);
    await new ResolvConfBackend(paths, "xvpn0").apply(TUNNEL_DNS); // crashed run
    const dhcp = "nameserver 192.168.7.1\n";
    await Deno.writeTextFile(paths.resolvConf, dhcp); // e.g. the DHCP client renewed

    const said = await new ResolvConfBackend(paths, "xvpn0").recoverStale();
    assertStringIncludes(said!, "no longer the file xvpn wrote, so it stays as it is");
    assertEquals(await Deno.readTextFile(paths.resolvConf), dhcp);
    assert(!(await exists(paths.backup)));
  });
});

Deno.test("resolv.conf: restore leaves a file someone else wrote meanwhile", async () => {
  await withDir(async (_dir, paths) => {
    await Deno.writeTextFile(paths.resolvConf, ORIGINAL);
    const b = new ResolvConfBackend(paths, "xvpn0");
    await b.apply(TUNNEL_DNS);
    const theirs = "nameserver 192.168.7.1\n";
    await Deno.writeTextFile(paths.resolvConf, theirs);
    assertStringIncludes((await b.restore())!, "stays as it is");
    assertEquals(await Deno.readTextFile(paths.resolvConf), theirs);
    assert(!(await exists(paths.backup)));
  });
});

Deno.test("resolv.conf: a symlink is replaced by our file and put back as the same link", async () => {
  await withDir(async (dir, paths) => {
    await Deno.mkdir(`${dir}/generated`);
    await Deno.writeTextFile(`${dir}/generated/resolv.conf`, ORIGINAL);
    await Deno.symlink("../generated/resolv.conf", paths.resolvConf);
    const b = new ResolvConfBackend(paths, "xvpn0");
    const said = await b.apply(TUNNEL_DNS);
    assertStringIncludes(said, "it was a link to ../generated/resolv.conf");
    const st = await Deno.lstat(paths.resolvConf);
    assert(st.isFile && !st.isSymlink, "the link itself was replaced");
    assertEquals(
      await Deno.readTextFile(`${dir}/generated/resolv.conf`),
      ORIGINAL,
      "the link's target is never written",
    );
    assertEquals(await Deno.readLink(paths.backup), "../generated/resolv.conf");

    assertEquals(await b.restore(), "resolv.conf is a link to ../generated/resolv.conf again");
    assertEquals(await Deno.readLink(paths.resolvConf), "../generated/resolv.conf");
    assertEquals(await Deno.readTextFile(paths.resolvConf), ORIGINAL);
    assert(!(await exists(paths.backup)));
    assertEquals(await entries(`${dir}/etc`), ["resolv.conf"]);
  });
});

Deno.test("resolv.conf: a dangling symlink is replaced and restored too; a crash is recovered", async () => {
  await withDir(async (_dir, paths) => {
    await Deno.symlink("/run/systemd/resolve/nowhere.conf", paths.resolvConf);
    await new ResolvConfBackend(paths, "xvpn0").apply(TUNNEL_DNS); // crashed run
    assert((await Deno.lstat(paths.resolvConf)).isFile);
    const said = await new ResolvConfBackend(paths, "xvpn0").recoverStale();
    assertStringIncludes(said!, "resolv.conf is a link to /run/systemd/resolve/nowhere.conf again");
    assertEquals(await Deno.readLink(paths.resolvConf), "/run/systemd/resolve/nowhere.conf");
  });
});

Deno.test("resolv.conf: a link to a mounted (namespace-private) file has its target edited", async () => {
  await withDir(async (dir, paths) => {
    const target = `${dir}/private/resolv.conf`;
    await Deno.mkdir(`${dir}/private`);
    await Deno.writeTextFile(target, ORIGINAL);
    await Deno.symlink(target, paths.resolvConf);
    const real = await Deno.realPath(target);
    const b = new ResolvConfBackend(paths, "xvpn0", (p) => Promise.resolve(p === real));
    await b.apply(TUNNEL_DNS);
    assertEquals(await Deno.readLink(paths.resolvConf), target, "the shared link stays");
    assertStringIncludes(await Deno.readTextFile(target), "nameserver 10.77.0.1");
    assertEquals(await b.restore(), `resolv.conf restored from ${paths.backup}`);
    assertEquals(await Deno.readTextFile(target), ORIGINAL);
    assertEquals(await entries(`${dir}/private`), ["resolv.conf"], "written in place, no temp");
  });
});

Deno.test("resolv.conf: refuses a file managed by another running xvpn, and a missing file", async () => {
  await withDir(async (dir, paths) => {
    await Deno.writeTextFile(paths.resolvConf, ORIGINAL);
    const other = new ResolvConfBackend(
      { ...paths, backup: `${dir}/run/xvpn/resolv.conf.tun7.bak` },
      "tun7",
    );
    await other.apply(TUNNEL_DNS);
    const before = await Deno.readTextFile(paths.resolvConf);
    const b = new ResolvConfBackend(paths, "xvpn0");
    await assertRejects(() => b.apply(TUNNEL_DNS), Error, "managed by another xvpn (for tun7");
    assertEquals(await Deno.readTextFile(paths.resolvConf), before, "untouched");
    assert(!(await exists(paths.backup)), "no backup made");
    await other.restore();
    assertEquals(await Deno.readTextFile(paths.resolvConf), ORIGINAL);

    await Deno.remove(paths.resolvConf);
    await assertRejects(() => b.apply(TUNNEL_DNS), Error, "does not exist");
    assert(!(await exists(paths.resolvConf)));
  });
});
