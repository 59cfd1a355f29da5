/**
 * Claiming a TUN name on Windows, root-free: the journal under the Windows state directory
 * (backslash-joined), a killed run's undo commands run at the next start, and the adapter's lock
 * (Deno's file lock, `flock` here and `LockFileEx` there) refusing a second run.
 */
import { assert, assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { LockedError } from "../io/state/lock.ts";
import { getLogger } from "@logtape/logtape";
import { RecordingRunner } from "../io/command.ts";
import { Journal } from "../io/state/journal.ts";
import { claimTun } from "./state.ts";

Deno.test("claimTun on Windows: a killed run's netsh undo runs at the next start", async () => {
  const root = await Deno.makeTempDir({ prefix: "xvpn-claim-" });
  try {
    // Windows names: <dir>\<tun>.state.json (on Linux the backslash is just a character).
    const dir = `${root}/ProgramData\\xvpn`;
    const undo = [
      "netsh",
      "interface",
      "ipv4",
      "delete",
      "route",
      "prefix=0.0.0.0/1",
      "interface=xvpn0",
    ];
    const killed = new Journal(`${dir}\\xvpn0.state.json`);
    await killed.set("routes", { what: "routes of xvpn0", undo: [undo] });
    assert(await Deno.stat(`${dir}\\xvpn0.state.json`), "the journal is on disk");
    const runner = new RecordingRunner();
    const claim = await claimTun("xvpn0", runner, getLogger(["xvpn", "test"]), dir, "windows");
    assertEquals(runner.calls, [undo], "the undo ran");
    assert(claim.lock, "the adapter's lock is held");
    const second = claimTun("xvpn0", runner, getLogger(["xvpn", "test"]), dir, "windows");
    await assertRejects(
      () => second,
      LockedError,
      `adapter xvpn0 is in use by another xvpn (pid ${Deno.pid})`,
    );
    claim.lock.release();
    assertEquals(claim.journal?.path, `${dir}\\xvpn0.state.json`);
    await claim.journal!.set("dns", { what: "DNS", undo: [["powershell", "-Command", "x"]] });
    assert(await Deno.stat(`${dir}\\xvpn0.state.json`), "this run records in the same place");
    // Released: the next start takes it (and runs this run's undo, as a crash would leave it).
    const next = await claimTun("xvpn0", runner, getLogger(["xvpn", "test"]), dir, "windows");
    assert(next.lock, "taken again after release");
    next.lock.release();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("claimTun on macOS: nothing yet", async () => {
  const claim = await claimTun(
    "utun3",
    new RecordingRunner(),
    getLogger(["xvpn"]),
    "/nowhere",
    "darwin",
  );
  assertEquals([claim.lock, claim.journal], [undefined, undefined]);
});
