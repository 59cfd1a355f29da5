/**
 * The TUN lock and the crash journal, root-free: a temporary directory, a child process that
 * holds the lock and is killed with SIGKILL, and a recording command runner.
 */
import { assert, assertEquals, assertThrows } from "../../../tests/support/assert.ts";
import { LockedError, takeFileLock, takeLock } from "./lock.ts";
import { Journal, recoverJournal } from "./journal.ts";
import { statePath } from "./dir.ts";
import { RecordingRunner } from "../command.ts";
import { RouteApplier } from "../route/applier.ts";
import { Nat } from "../nat/nat.ts";
import { parseCidr, parseIPv4 } from "../../lib/ip.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "xvpn-state-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("statePath() names files per TUN and, outside the initial namespace, per netns", async () => {
  assertEquals(
    await statePath("/run/xvpn", "xvpn0", "lock", () => Promise.resolve(undefined)),
    "/run/xvpn/xvpn0.lock",
  );
  assertEquals(
    await statePath("/run/xvpn", "xvpn0", "lock", () => Promise.resolve("net42")),
    "/run/xvpn/xvpn0.net42.lock",
  );
});

Deno.test("takeLock() refuses a second holder with its pid, and frees at release", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/xvpn0.lock`;
    const held = takeLock(path, "TUN xvpn0");
    const e = assertThrows(() => takeLock(path, "TUN xvpn0"), LockedError) as LockedError;
    assertEquals(e.pid, Deno.pid);
    assert(e.message.includes(`TUN xvpn0 is in use by another xvpn (pid ${Deno.pid})`), e.message);
    held.release();
    assertEquals(await Deno.stat(path).then(() => true, () => false), false, "removed at release");
    takeLock(path, "TUN xvpn0").release();
  });
});

/**
 * A child process that takes the lock at `path` with `take` (takeLock or takeFileLock) and holds
 * it; resolves once it holds it, with a function that kills it (SIGKILL) and waits for it.
 */
async function holdInChild(take: string, path: string, what: string) {
  const code = `import { ${take} } from "${new URL("./lock.ts", import.meta.url)}";\n` +
    `${take}(${JSON.stringify(path)}, ${JSON.stringify(what)}); console.log("held");\n` +
    `await new Promise(() => setInterval(() => {}, 1000));`;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--no-config", code],
    env: { DENO_NO_PROMPT: "1" },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  assertEquals(new TextDecoder().decode((await reader.read()).value).trim(), "held");
  return {
    pid: child.pid,
    async kill() {
      child.kill("SIGKILL");
      await child.status;
      reader.releaseLock();
      await child.stdout.cancel();
    },
  };
}

Deno.test("takeLock(): a holder killed with SIGKILL leaves no stale lock", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/xvpn0.lock`;
    const child = await holdInChild("takeLock", path, "TUN xvpn0");
    const e = assertThrows(() => takeLock(path, "TUN xvpn0"), LockedError) as LockedError;
    assertEquals(e.pid, child.pid);
    await child.kill();
    takeLock(path, "TUN xvpn0").release(); // the kernel dropped the dead process's lock
  });
});

Deno.test("takeFileLock() (Windows): refuses a second holder with its pid; a SIGKILL frees it", async () => {
  await withDir(async (dir) => {
    const path = `${dir}\\xvpn0.lock`; // a Windows name (a plain character here)
    const child = await holdInChild("takeFileLock", path, "adapter xvpn0");
    const e = assertThrows(() => takeFileLock(path, "adapter xvpn0"), LockedError) as LockedError;
    assertEquals(e.pid, child.pid);
    assert(e.message.includes(`adapter xvpn0 is in use by another xvpn (pid ${child.pid})`));
    await child.kill();
    const mine = takeFileLock(path, "adapter xvpn0"); // the system dropped the dead one's lock
    mine.release();
    takeFileLock(path, "adapter xvpn0").release(); // and a release frees it too
  });
});

Deno.test("Journal records undo commands write-ahead; recoverJournal() runs and removes them", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/xvpn0.state.json`;
    const j = new Journal(path);
    await j.set("routes", { what: "routes of xvpn0", undo: [["ip", "route", "del", "x"]] });
    await j.set("nat", { what: "NAT", undo: [["nft", "delete", "table", "ip", "t"]] });
    const runner = new RecordingRunner((argv) =>
      argv[0] === "nft" ? { code: 1, stdout: "", stderr: "No such file or directory" } : undefined
    );
    const rec = await recoverJournal(path, runner);
    assertEquals(runner.transcript(), ["ip route del x", "nft delete table ip t"]);
    assertEquals(rec?.found, ["routes of xvpn0", "NAT"]);
    assertEquals(rec?.failed.length, 1, "a failed undo is reported, not thrown");
    assertEquals(await recoverJournal(path, runner), undefined, "the file is gone");
    await j.forget("routes");
    await j.forget("nat");
    assertEquals(await Deno.stat(path).then(() => true, () => false), false);
  });
});

Deno.test("RouteApplier journals a full tunnel's host route and forgets it after down()", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/xvpn0.state.json`;
    const journal = new Journal(path);
    const runner = new RecordingRunner((argv) =>
      argv.join(" ") === "ip -j route get 203.0.113.5"
        ? {
          code: 0,
          stdout: '[{"dst":"203.0.113.5","gateway":"192.168.1.1","dev":"eth0"}]',
          stderr: "",
        }
        : undefined
    );
    const link = new RouteApplier(runner, "linux", { journal, key: "routes", what: "routes" });
    await link.up({
      ifname: "xvpn0",
      address: parseCidr("10.7.0.2/24")!,
      mtu: 1420,
      routes: [parseCidr("0.0.0.0/0")!],
      endpoint: { ip: parseIPv4("203.0.113.5")! },
    });
    const file = JSON.parse(await Deno.readTextFile(path));
    const undo: string[] = file.entries.routes.undo.map((a: string[]) => a.join(" "));
    assert(undo.includes("ip route del 203.0.113.5/32 via 192.168.1.1 dev eth0"), undo.join("\n"));
    assertEquals(undo.at(-1), "ip address del 10.7.0.2/24 dev xvpn0", "last first");
    await link.down();
    assertEquals(await Deno.stat(path).then(() => true, () => false), false, "forgotten");
  });
});

Deno.test("Nat journals the original ip_forward before turning it on", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/xvpn0.state.json`;
    let journaledFirst: boolean | undefined;
    const runner = new RecordingRunner((argv) => {
      if (argv[0] === "sysctl" && argv[1] === "-n") return { code: 0, stdout: "0\n", stderr: "" };
      // Write-ahead: when the first change runs, its undo must already be on disk.
      if (argv[0] === "nft" && journaledFirst === undefined) {
        try {
          journaledFirst = Deno.readTextFileSync(path).includes("xvpn_nat_xvpn0");
        } catch {
          journaledFirst = false;
        }
      }
      return undefined;
    });
    const nat = new Nat(runner, "xvpn0", new Journal(path));
    await nat.enable(parseCidr("10.7.0.0/24")!, undefined, { tun: "xvpn0" });
    const file = JSON.parse(await Deno.readTextFile(path));
    assertEquals(file.entries.nat.undo, [
      ["sysctl", "-w", "net.ipv4.ip_forward=0"],
      ["nft", "delete", "table", "ip", "xvpn_nat_xvpn0"],
    ]);
    assertEquals(journaledFirst, true, "the journal came before the first change");
    assertEquals(runner.transcript().at(-1), "sysctl -w net.ipv4.ip_forward=1");
    await nat.disable();
    assertEquals(await Deno.stat(path).then(() => true, () => false), false);
  });
});
