/**
 * The main thread's side of the Windows data path (`win_worker.ts`): starts the Worker, hands
 * it the Wintun session (or the adapter to create), the Winsock and kernel32 libraries and the
 * client core's settings, relays its events, and stops it and sends it commands through
 * shared memory plus a Win32 wake event (the Worker blocks in WaitForMultipleObjects and reads
 * no messages meanwhile). The Worker's hosting is `worker_host.ts`, as the Linux one's; here a
 * Win32 event wakes it where Linux writes an eventfd.
 *
 * @module
 */
import { KERNEL32_SYMBOLS } from "../../io/tun/wintun_abi.ts";
import type { CoreEvent } from "../engine.ts";
import type { Engine } from "../portable.ts";
import { CTRL_WORDS } from "./messages.ts";
import type { WinInit } from "./win_messages.ts";
import { hostWorker } from "./worker_host.ts";

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
  const msg: WinInit = {
    ...init,
    type: "init",
    wake: BigInt(Deno.UnsafePointer.value(wake)),
    control,
  };
  const { info, engine } = await hostWorker(
    new URL("./win_worker.ts", import.meta.url),
    msg,
    control,
    {
      signal: () => void k.SetEvent(wake),
      close: () => {
        k.CloseHandle(wake);
        lib.close();
      },
    },
    "Windows data-path worker",
    onEvents,
  );
  return {
    ...engine,
    description: `windows (worker: WaitForMultipleObjects on Wintun + Winsock events, ` +
      `Winsock by FFI), AEAD ${info.aead}, UDP ${info.local.hostname}:${info.local.port}`,
  };
}
