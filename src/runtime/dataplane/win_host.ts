/**
 * The main thread's side of the Windows data path (`win_worker.ts`): starts the Worker, hands
 * it the Wintun session (or the adapter to create), the Winsock and kernel32 libraries and the
 * client core's settings, relays its events, and stops it and sends it commands through
 * shared memory plus a Win32 wake event (the Worker blocks in WaitForMultipleObjects and reads
 * no messages meanwhile). It mirrors `host.ts`, with an event where Linux has an eventfd.
 *
 * @module
 */
import type { DropCounters } from "../../core/wire.ts";
import type { FollowAddress } from "../../core/follow.ts";
import { KERNEL32_SYMBOLS } from "../../io/tun/wintun_abi.ts";
import type { CoreEvent } from "../engine.ts";
import type { Engine } from "../portable.ts";
import type { EngineStatus, StopReport } from "../stats.ts";
import { type Command, CTRL_COMMAND, CTRL_STOP, CTRL_WORDS, type FromWorker } from "./messages.ts";
import type { WinInit } from "./win_messages.ts";

/** How long a status request waits for the Worker. */
const STATUS_TIMEOUT_MS = 2000;
/** How long the Worker gets to say goodbye and exit before it is terminated. */
const STOP_GRACE_MS = 3000;

const HOST_K32 = {
  CreateEventW: KERNEL32_SYMBOLS.CreateEventW,
  SetEvent: KERNEL32_SYMBOLS.SetEvent,
  CloseHandle: KERNEL32_SYMBOLS.CloseHandle,
  GetLastError: KERNEL32_SYMBOLS.GetLastError,
} as const satisfies Deno.ForeignLibraryInterface;

/** What a caller gives: the init message without the host's own fields. */
export type WinStartArgs = Omit<WinInit, "type" | "wake" | "control">;

/** Starts the Windows data-path Worker; resolves once it is ready (or rejects). */
export async function startWindowsWorker(
  init: WinStartArgs,
  onEvents: (events: CoreEvent[]) => void,
): Promise<Engine> {
  const lib = Deno.dlopen(init.kernel32, HOST_K32);
  const k = lib.symbols;
  // Auto-reset: the wait a SetEvent ends consumes it; one set while no wait runs waits for the
  // next one, as the eventfd of the Linux Worker does.
  const wake = k.CreateEventW(null, 0, 0, null);
  if (wake === null) {
    const e = k.GetLastError();
    lib.close();
    throw new Error(`cannot create the data path's wake event: error ${e}`);
  }
  const control = new SharedArrayBuffer(CTRL_WORDS * 4);
  const ctrl = new Int32Array(control);
  const worker = new Worker(new URL("./win_worker.ts", import.meta.url).href, { type: "module" });

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
        stoppedResolve({ drops: m.drops });
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
    readyReject(new Error(`Windows data-path worker failed: ${e.message}`));
    endedResolve();
  };
  const msg: WinInit = {
    ...init,
    type: "init",
    wake: BigInt(Deno.UnsafePointer.value(wake)),
    control,
  };
  worker.postMessage(msg);
  let closed = false;
  const closeAll = () => {
    if (closed) return;
    closed = true;
    worker.terminate();
    k.CloseHandle(wake);
    lib.close();
  };
  let info: Extract<FromWorker, { type: "ready" }>;
  try {
    info = await ready;
  } catch (err) {
    closeAll();
    throw err;
  }
  let halted = false;
  let stopping: Promise<StopReport> | undefined;
  const command = (cmd: Command) => {
    if (halted) return;
    worker.postMessage(cmd);
    Atomics.store(ctrl, CTRL_COMMAND, 1);
    k.SetEvent(wake);
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
    description: `windows (worker: WaitForMultipleObjects on Wintun + Winsock events, ` +
      `Winsock by FFI), AEAD ${info.aead}, UDP ${info.local.hostname}:${info.local.port}`,
    ended,
    stop() {
      return stopping ??= stopOnce();
    },
  };
  async function stopOnce(): Promise<StopReport> {
    halted = true;
    Atomics.store(ctrl, CTRL_STOP, 1);
    k.SetEvent(wake);
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
