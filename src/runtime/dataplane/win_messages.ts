/**
 * Messages between the main thread and the Windows data-path Worker (`win_worker.ts`). As on
 * the Linux fast path, stop and "a command is on its way" are flags in shared memory plus a
 * wake: here a Win32 auto-reset event (CreateEventW / SetEvent) that sits in the Worker's
 * WaitForMultipleObjects array beside the Wintun read event and the socket's event.
 *
 * @module
 */
import type { Endpoint } from "../../lib/endpoint.ts";
import type { ClientParams } from "../../core/client.ts";
import type { SchedParams } from "./loop.ts";

/**
 * The Worker's Wintun session, lent by the main thread: it created the adapter (it configures
 * addresses, routes and DNS on it and keeps it across node moves); the Worker gets the session
 * and read-event HANDLE values and drives the same session through its own dlopen of the same
 * wintun.dll (one library image per process, so the handles are valid in every thread). The
 * main thread must not read or write that session while the Worker runs, and ends it after the
 * Worker has stopped.
 */
export interface WinTunSource {
  name: string;
  dll: string;
  session: bigint;
  readEvent: bigint;
}

/** Starts the Windows client Worker. */
export interface WinInit {
  type: "init";
  tun: WinTunSource;
  /** kernel32 (the fake library on Linux). */
  kernel32: string;
  /** ws2_32 (the fake library on Linux). */
  winsock: string;
  /** The main thread's wake event (a HANDLE value); the Worker only waits on it. */
  wake: bigint;
  /** Shared control words (CTRL_* of messages.ts). */
  control: SharedArrayBuffer;
  /** IPv4 address to bind. */
  bind: string;
  params: ClientParams;
  server: Endpoint;
  /** The flow scheduler's settings, as the Linux Worker gets them. */
  sched: SchedParams;
}
