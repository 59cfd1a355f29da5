/**
 * The main thread's side of the fast data path: starts the Worker, hands it the TUN fd and the
 * session parameters, relays its events, and stops it through shared memory plus an eventfd
 * (the Worker blocks in poll() and reads no messages while it runs).
 *
 * @module
 */
import type { DropCounters } from "../../core/wire.ts";
import { EFD_CLOEXEC, EFD_NONBLOCK, errno, errnoName, libc } from "../../io/_libc.ts";
import type { CoreEvent } from "../engine.ts";
import type { Engine } from "../portable.ts";
import type { EngineStatus, StopReport } from "../stats.ts";
import type { FollowAddress } from "../../core/follow.ts";
import {
  type Command,
  CTRL_COMMAND,
  CTRL_STOP,
  CTRL_WORDS,
  type FromWorker,
  type StartArgs,
  type ToWorker,
} from "./messages.ts";

/** Datagrams per recvmmsg/sendmmsg batch: enough to amortize syscalls, small enough that one
 * batch adds little latency (64 x 1.4 kB ~ 90 kB ~ 0.35 ms at 2 Gbit/s). */
export const DEFAULT_BATCH = 64;

/** How long a status request waits for the Worker. */
const STATUS_TIMEOUT_MS = 2000;

/** How long the Worker gets to say goodbye and exit before it is terminated. */
const STOP_GRACE_MS = 3000;

/** Starts the data-plane Worker; resolves once it is ready (or rejects with its error). */
export async function startFast(
  init: StartArgs,
  onEvents: (events: CoreEvent[]) => void,
): Promise<Engine> {
  const c = libc();
  const wakeFd = c.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeFd < 0) throw new Error(`Cannot create the data plane's eventfd: ${errnoName(errno())}`);
  const control = new SharedArrayBuffer(CTRL_WORDS * 4);
  const ctrl = new Int32Array(control);
  const worker = new Worker(new URL("./worker.ts", import.meta.url).href, { type: "module" });

  let stoppedResolve!: (d: StopReport) => void;
  const stopped = new Promise<StopReport>((r) => (stoppedResolve = r));
  let endedResolve!: () => void;
  const ended = new Promise<void>((r) => (endedResolve = r));
  let readyResolve!: (m: Extract<FromWorker, { type: "ready" }>) => void;
  let readyReject!: (e: Error) => void;
  const ready = new Promise<Extract<FromWorker, { type: "ready" }>>((res, rej) => {
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
    readyReject(new Error(`Data-plane worker failed: ${e.message}`));
    endedResolve();
  };
  worker.postMessage(
    { ...init, type: "init", wakeFd, control, batch: init.batch ?? DEFAULT_BATCH } as ToWorker,
  );
  const wake = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
  const closeAll = () => {
    worker.terminate();
    c.close(wakeFd);
  };
  let info: Extract<FromWorker, { type: "ready" }>;
  try {
    info = await ready;
  } catch (err) {
    closeAll();
    throw err;
  }
  // After stop() the eventfd is closed (its number may belong to another file by then): a late
  // command from the runtime (a release, a rebind) is dropped.
  let halted = false;
  let stopping: Promise<StopReport> | undefined;
  const command = (cmd: Command) => {
    if (halted) return;
    worker.postMessage(cmd);
    Atomics.store(ctrl, CTRL_COMMAND, 1);
    c.write(wakeFd, wake, 8n);
  };
  return {
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
    description: `fast (Linux worker: poll + recvmmsg/sendmmsg${info.gso ? " + UDP GSO" : ""}, ` +
      `warmed up in ${Math.round(info.warmMs)} ms), ` +
      `AEAD ${info.aead}, UDP ${
        (info.paths ?? [info.local]).map((l) => `${l.hostname}:${l.port}`).join(" + ")
      }`,
    ended,
    stop() {
      // Once: the runtime's loop and its cleanup may both ask.
      return stopping ??= stopOnce();
    },
  };
  async function stopOnce(): Promise<StopReport> {
    halted = true;
    Atomics.store(ctrl, CTRL_STOP, 1);
    c.write(wakeFd, wake, 8n);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<StopReport | undefined>((
      r,
    ) => (timer = setTimeout(() => r(undefined), STOP_GRACE_MS)));
    const drops = await Promise.race([stopped, timeout]);
    clearTimeout(timer);
    closeAll();
    return drops ?? { drops: {} as DropCounters };
  }
}
