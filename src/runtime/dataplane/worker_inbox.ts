/**
 * The Worker side of a data path's messages, for both Workers (`worker.ts`, `win_worker.ts`):
 * the first message is the init and starts `run`; every later one is a command, which arrives
 * while the loop is blocked in its wait and queues here until the loop leaves the wait (the
 * shared CTRL_COMMAND count plus the wake) to take it with `nextCommand`.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { Command, FromWorker } from "./messages.ts";

/** Sends `msg` to the main thread. */
export function post(msg: FromWorker): void {
  self.postMessage(msg);
}

/**
 * Installs the Worker's message handler: `run(init)` on the init message (an error it throws is
 * posted as an `error` message, and the Worker closes when it returns). Returns `nextCommand`.
 */
export function serveWorker<I extends { type: "init" }>(
  run: (init: I) => Promise<void>,
): () => Promise<Command> {
  const commands: Command[] = [];
  let commandArrived: (() => void) | undefined;
  self.onmessage = (e: MessageEvent<I | Command>) => {
    const msg = e.data;
    if (msg.type !== "init") {
      commands.push(msg as Command);
      commandArrived?.();
      return;
    }
    run(msg as I).catch((err) => post({ type: "error", message: (err as Error).message }))
      .finally(() => self.close());
  };
  return () => {
    const queued = commands.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => {
      commandArrived = () => {
        commandArrived = undefined;
        resolve(commands.shift()!);
      };
    });
  };
}
