import { assertEquals } from "../../../tests/support/assert.ts";
import type { CoreAdapter } from "../engine.ts";
import { driveLoop } from "./drive.ts";
import type { DataPlaneLoop } from "./loop.ts";
import { type Command, CTRL_COMMAND, CTRL_STOP, CTRL_WORDS, type FromWorker } from "./messages.ts";

/**
 * The Worker's command loop with a stand-in loop whose run() returns at once while commands
 * are announced and otherwise "blocks" (here: notes whether any command was left waiting, then
 * stops the test).
 */
function harness() {
  const control = new Int32Array(new SharedArrayBuffer(CTRL_WORDS * 4));
  const inbox: Command[] = [];
  const waiting: ((c: Command) => void)[] = [];
  const posted: FromWorker[] = [];
  let strandedWhileBlocked = 0;
  /** What the host does (worker_host.ts): post, announce, wake. */
  const send = (c: Command) => {
    const w = waiting.shift();
    if (w) w(c);
    else inbox.push(c);
    Atomics.add(control, CTRL_COMMAND, 1);
  };
  const stats = {
    interactive: 0,
    bulk: 0,
    ce_marked: 0,
    codel: 0,
    overflow: 0,
    shed: 0,
    backpressure: 0,
  };
  const loop = {
    stats,
    run() {
      if (Atomics.load(control, CTRL_COMMAND) !== 0) return; // a command: leave the wait
      // The real loop would block in its wait now: a command still in the inbox is stranded.
      if (inbox.length > 0) strandedWhileBlocked += inbox.length;
      Atomics.store(control, CTRL_STOP, 1);
    },
    stop() {},
    writeTun: () => true,
    dropsWithScheduler: () => ({}),
  } as unknown as DataPlaneLoop;
  const core = { status: () => ({ role: "client" }), nudge() {} } as unknown as CoreAdapter;
  const nextCommand = () =>
    inbox.length ? Promise.resolve(inbox.shift()!) : new Promise<Command>((r) => waiting.push(r));
  return {
    control,
    send,
    posted,
    stranded: () => strandedWhileBlocked,
    drive: () =>
      driveLoop({
        loop,
        core,
        control,
        nextCommand,
        isClosed: () => false,
        rebind: () => {},
        toServer: (e) => e,
        post: (m) => posted.push(m),
      }),
  };
}

Deno.test("driveLoop: two commands posted before the Worker looks are both taken", async () => {
  const h = harness();
  // Two status requests in a row, as two `xvpn status` readers (or two DNS releases) make them.
  h.send({ type: "status", id: 1 });
  h.send({ type: "status", id: 2 });
  await h.drive();
  const answered = h.posted.filter((m) => m.type === "status").map((m) => (m as { id: number }).id);
  assertEquals(answered, [1, 2], "both answered");
  assertEquals(h.stranded(), 0, "none left waiting while the loop would block");
  assertEquals(Atomics.load(h.control, CTRL_COMMAND), 0);
  assertEquals(h.posted.at(-1)?.type, "stopped", "the end is reported");
});
