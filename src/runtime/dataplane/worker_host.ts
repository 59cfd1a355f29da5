/**
 * The main thread's side of a data-path Worker, whichever one (the Linux fast path's
 * `worker.ts`, the Windows `win_worker.ts`): starts it, relays its events, answers status
 * requests, sends commands and stops it. A running Worker blocks in its wait (poll() or
 * WaitForMultipleObjects) and reads no messages meanwhile, so each command is a message plus a
 * flag in shared memory plus a wake-up of that wait; how to wake it is the one thing the two
 * differ in ({@link WorkerWake}).
 *
 * @module
 */
import type { DropCounters } from "../../core/wire.ts";
import type { FollowAddress } from "../../core/follow.ts";
import type { CoreEvent } from "../engine.ts";
import type { Engine } from "../portable.ts";
import type { EngineStatus, StopReport } from "../stats.ts";
import { type Command, CTRL_COMMAND, CTRL_STOP, type FromWorker } from "./messages.ts";

/** How long a status request waits for the Worker. */
const STATUS_TIMEOUT_MS = 2000;

/** How long the Worker gets to say goodbye and exit before it is terminated. */
const STOP_GRACE_MS = 3000;

/** Ends the Worker's wait (an eventfd write, a SetEvent), and frees that means at the end. */
export interface WorkerWake {
  signal(): void;
  close(): void;
}

/** The Worker's `ready` message. */
export type WorkerReady = Extract<FromWorker, { type: "ready" }>;

/**
 * Starts the Worker at `url` with `init` (which carries the `control` words and whatever the
 * Worker needs to wait on `wake`); resolves once it is ready, with its ready message and the
 * engine but for its description. `what` names it in errors.
 */
export async function hostWorker(
  url: URL,
  init: unknown,
  control: SharedArrayBuffer,
  wake: WorkerWake,
  what: string,
  onEvents: (events: CoreEvent[]) => void,
): Promise<{ info: WorkerReady; engine: Omit<Engine, "description"> }> {
  const ctrl = new Int32Array(control);
  const worker = new Worker(url.href, { type: "module" });

  let stoppedResolve!: (d: StopReport) => void;
  const stopped = new Promise<StopReport>((r) => (stoppedResolve = r));
  let endedResolve!: () => void;
  const ended = new Promise<void>((r) => (endedResolve = r));
  let readyResolve!: (m: WorkerReady) => void;
  let readyReject!: (e: Error) => void;
  const ready = new Promise<WorkerReady>((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  // `xvpn status` requests waiting for the Worker's answer, by request id.
  const statusWaiters = new Map<number, (s: EngineStatus) => void>();
  let statusId = 0;
  worker.onmessage = (e: MessageEvent<FromWorker>) => {
    const m = e.data;
    switch (m.type) {
      case "ready":
        readyResolve(m);
        break;
      case "events":
        onEvents(m.events);
        break;
      case "ended":
        endedResolve();
        break;
      case "stopped":
        stoppedResolve({ drops: m.drops, scheduler: m.scheduler });
        break;
      case "error":
        readyReject(new Error(m.message));
        endedResolve();
        break;
      case "status":
        statusWaiters.get(m.id)?.(m.status);
        statusWaiters.delete(m.id);
        break;
    }
  };
  worker.onerror = (e) => {
    e.preventDefault();
    readyReject(new Error(`${what} failed: ${e.message}`));
    endedResolve();
  };
  worker.postMessage(init);
  let closed = false;
  const closeAll = () => {
    if (closed) return;
    closed = true;
    worker.terminate();
    wake.close();
  };
  let info: WorkerReady;
  try {
    info = await ready;
  } catch (err) {
    closeAll();
    throw err;
  }
  // After stop() the wake means is closed (an eventfd's number may belong to another file by
  // then): a late command from the runtime (a release, a rebind) is dropped.
  let halted = false;
  let stopping: Promise<StopReport> | undefined;
  const command = (cmd: Command) => {
    if (halted) return;
    worker.postMessage(cmd);
    // A count, not a flag: two commands posted before the Worker looks must both be taken
    // (with a flag, the second would wait in the Worker's inbox until a third came).
    Atomics.add(ctrl, CTRL_COMMAND, 1);
    wake.signal();
  };
  const stopOnce = async (): Promise<StopReport> => {
    halted = true;
    Atomics.store(ctrl, CTRL_STOP, 1);
    wake.signal();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<StopReport | undefined>((r) =>
      timer = setTimeout(() => r(undefined), STOP_GRACE_MS)
    );
    const drops = await Promise.race([stopped, timeout]);
    clearTimeout(timer);
    closeAll();
    return drops ?? { drops: {} as DropCounters };
  };
  return {
    info,
    engine: {
      rebind: () => Promise.resolve(command({ type: "rebind" })),
      setServer: (server) => command({ type: "server", server }),
      nudge: () => command({ type: "nudge" }),
      release: (id: number, forget?: FollowAddress[]) =>
        command({ type: "release", id, ...(forget?.length ? { forget } : {}) }),
      status: () => {
        if (halted) return Promise.reject(new Error("the data path is stopping"));
        const id = ++statusId;
        const answer = new Promise<EngineStatus>((resolve, reject) => {
          // A Worker that does not answer (stopping, stuck) must not hang a status reader.
          const timer = setTimeout(() => {
            if (statusWaiters.delete(id)) reject(new Error("the data path did not answer"));
          }, STATUS_TIMEOUT_MS);
          statusWaiters.set(id, (s) => {
            clearTimeout(timer);
            resolve(s);
          });
        });
        command({ type: "status", id });
        return answer;
      },
      ended,
      // Once: the runtime's loop and its cleanup may both ask.
      stop: () => stopping ??= stopOnce(),
    },
  };
}
