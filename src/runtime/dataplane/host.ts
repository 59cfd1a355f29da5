/**
 * The main thread's side of the fast data path: the Worker gets the TUN fd, the session
 * parameters and an eventfd that wakes its poll(); `worker_host.ts` does the rest.
 *
 * @module
 */
import { EFD_CLOEXEC, EFD_NONBLOCK, errno, errnoName, libc } from "../../io/_libc.ts";
import type { CoreEvent } from "../engine.ts";
import type { Engine } from "../portable.ts";
import { CTRL_WORDS, type StartArgs, type ToWorker } from "./messages.ts";
import { hostWorker } from "./worker_host.ts";

/** Datagrams per recvmmsg/sendmmsg batch: enough to amortize syscalls, small enough that one
 * batch adds little latency (64 x 1.4 kB ~ 90 kB ~ 0.35 ms at 2 Gbit/s). */
export const DEFAULT_BATCH = 64;

/** Starts the data-plane Worker; resolves once it is ready (or rejects with its error). */
export async function startFast(
  init: StartArgs,
  onEvents: (events: CoreEvent[]) => void,
): Promise<Engine> {
  const c = libc();
  const wakeFd = c.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeFd < 0) throw new Error(`Cannot create the data plane's eventfd: ${errnoName(errno())}`);
  const one = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
  const control = new SharedArrayBuffer(CTRL_WORDS * 4);
  const { info, engine } = await hostWorker(
    new URL("./worker.ts", import.meta.url),
    { ...init, type: "init", wakeFd, control, batch: init.batch ?? DEFAULT_BATCH } as ToWorker,
    control,
    { signal: () => void c.write(wakeFd, one, 8n), close: () => void c.close(wakeFd) },
    "Data-plane worker",
    onEvents,
  );
  return {
    ...engine,
    description: `fast (Linux worker: poll + recvmmsg/sendmmsg${info.gso ? " + UDP GSO" : ""}, ` +
      `warmed up in ${Math.round(info.warmMs)} ms), ` +
      `AEAD ${info.aead}, UDP ${
        (info.paths ?? [info.local]).map((l) => `${l.hostname}:${l.port}`).join(" + ")
      }`,
  };
}
