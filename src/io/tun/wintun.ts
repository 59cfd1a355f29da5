/**
 * A Windows TUN device: a Wintun adapter and session driven through wintun.dll by FFI, the way
 * wireguard-go's `tun/tun_windows.go` drives it, behind the same {@link TunDevice} contract as
 * the Linux TUN, so the portable data path runs over it unchanged.
 *
 * - `read` is WintunReceivePacket (a pointer into the session's ring), a copy into the
 *   caller's buffer, and WintunReleaseReceivePacket: nothing is held between calls. An empty
 *   ring (ERROR_NO_MORE_ITEMS) reads as 0.
 * - `write` is WintunAllocateSendPacket, a copy, WintunSendPacket; a full ring
 *   (ERROR_BUFFER_OVERFLOW) is a dropped packet (-1), as wireguard-go drops it.
 * - `waitReadable` is one WaitForMultipleObjects on [our wake event, the session's read
 *   event], awaited as a nonblocking FFI call (a helper thread), like the Linux poll().
 *
 * On Linux the same code runs over a fake wintun (`tests/support/fakewintun/`), which is how
 * it is tested; it has not run on real Windows.
 *
 * @module
 */
import type { TunDevice } from "./device.ts";
import { bigLen } from "../_bigint.ts";
import {
  GUID_BYTES,
  INFINITE,
  type Kernel32,
  KERNEL32_SYMBOLS,
  NET_LUID_BYTES,
  WAIT_OBJECT_0,
  wideString,
  WinApiError,
  WinError,
  winErrorName,
  type Wintun,
  WINTUN_MAX_ADAPTER_NAME,
  WINTUN_MAX_IP_PACKET_SIZE,
  WINTUN_RING_CAPACITY,
  WINTUN_SYMBOLS,
} from "./wintun_abi.ts";
import { findWintunDll } from "./wintun_dll.ts";
import { createHash } from "node:crypto";

/** Options of {@link openWintun}. */
export interface WintunOptions {
  /** Path of wintun.dll (see `findWintunDll`), or of the Linux fake. */
  dll: string;
  /** Path of kernel32 (default `kernel32.dll`; the fake exports its stand-ins itself). */
  kernel32?: string;
  /** Ring capacity of the session (default {@link WINTUN_RING_CAPACITY}). */
  ringCapacity?: number;
}

/** The tunnel type Windows shows for the adapter. */
const TUNNEL_TYPE = "xvpn";
/** Index of each handle in the wait array: the wake first, so that a pending wake wins. */
const WAKE_INDEX = 0;
const READ_INDEX = 1;

/** Why `name` cannot be a Wintun adapter name, or undefined when it can. */
export function invalidAdapterNameReason(name: string): string | undefined {
  if (name.length === 0) return "the name is empty";
  if (name.length >= WINTUN_MAX_ADAPTER_NAME) {
    return `the name is ${name.length} characters long; Windows allows at most ${
      WINTUN_MAX_ADAPTER_NAME - 1
    }`;
  }
  if (name.includes("\0")) return "the name must not contain NUL";
  return undefined;
}

/**
 * The GUID requested for adapter `name`: derived from the name, so that every run gets the same
 * adapter identity and Windows keeps one network profile for it instead of a new "Network N"
 * each time (a random GUID, NULL, would do that). An RFC 4122 name-based layout, in GUID byte
 * order (Data1..Data3 little-endian).
 */
export function requestedGuid(name: string): Uint8Array<ArrayBuffer> {
  const h = createHash("sha256").update(`xvpn wintun adapter ${name}`).digest();
  const g = new Uint8Array(GUID_BYTES);
  g.set(h.subarray(0, GUID_BYTES));
  g[7] = (g[7]! & 0x0f) | 0x50; // version 5 in the high nibble of Data3 (its second byte)
  g[8] = (g[8]! & 0x3f) | 0x80; // RFC 4122 variant
  return g;
}

/** A driver version DWORD as text (major in the high word, minor in the low one). */
export function formatDriverVersion(v: number): string {
  return v === 0 ? "unknown" : `${v >>> 16}.${v & 0xffff}`;
}

/** What to do about a failed adapter or session call, or "" when the code says enough. */
function advice(code: number): string {
  switch (code) {
    case WinError.ERROR_ACCESS_DENIED:
      return ": run xvpn as Administrator";
    case WinError.ERROR_FILE_NOT_FOUND:
      return ": the Wintun driver could not be found or loaded";
    default:
      return "";
  }
}

function loadLibrary<S extends Deno.ForeignLibraryInterface>(
  path: string,
  symbols: S,
  what: string,
): Deno.DynamicLibrary<S> {
  try {
    return Deno.dlopen(path, symbols);
  } catch (err) {
    throw new Error(`cannot load ${what} from ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Creates the Wintun adapter `name` (the Windows interface alias) and starts a session on it.
 * A missing DLL is a clear error saying where to get it. Errors name the failing call and the
 * Win32 error; the adapter goes away again with {@link TunDevice.close} (Wintun removes an
 * adapter its creator closes, and one whose process died).
 */
export function openWintun(name: string, opts: WintunOptions): WintunTun {
  const invalid = invalidAdapterNameReason(name);
  if (invalid) throw new Error(`cannot create Wintun adapter "${name}": ${invalid}`);
  const dllPath = findWintunDll([opts.dll]);
  const wt = loadLibrary(dllPath, WINTUN_SYMBOLS, "wintun.dll");
  let k32: Deno.DynamicLibrary<typeof KERNEL32_SYMBOLS>;
  try {
    k32 = loadLibrary(opts.kernel32 ?? "kernel32.dll", KERNEL32_SYMBOLS, "kernel32");
  } catch (err) {
    wt.close();
    throw err;
  }
  const w = wt.symbols, k = k32.symbols;
  const undo: (() => void)[] = [() => k32.close(), () => wt.close()];
  function fail(call: string, code: number): never {
    for (const u of undo.reverse()) u();
    throw new WinApiError(
      `cannot create Wintun adapter "${name}": ${call} failed: ${winErrorName(code)} (${code})` +
        advice(code),
      code,
    );
  }

  // The strings and the GUID are only read during the call, but are held until it returns.
  const name16 = wideString(name), type16 = wideString(TUNNEL_TYPE), guid = requestedGuid(name);
  const adapter = w.WintunCreateAdapter(
    Deno.UnsafePointer.of(name16),
    Deno.UnsafePointer.of(type16),
    Deno.UnsafePointer.of(guid),
  );
  if (adapter === null) fail("WintunCreateAdapter", k.GetLastError());
  undo.push(() => w.WintunCloseAdapter(adapter));

  const luidBuf = new BigUint64Array(NET_LUID_BYTES / 8);
  w.WintunGetAdapterLUID(adapter, Deno.UnsafePointer.of(luidBuf));
  const version = w.WintunGetRunningDriverVersion();

  const session = w.WintunStartSession(adapter, opts.ringCapacity ?? WINTUN_RING_CAPACITY);
  if (session === null) fail("WintunStartSession", k.GetLastError());
  undo.push(() => w.WintunEndSession(session));
  const readEvent = w.WintunGetReadWaitEvent(session);
  if (readEvent === null) fail("WintunGetReadWaitEvent", k.GetLastError());

  // Auto-reset: the wait a wake ends consumes it, and a wake with no wait pending stays set
  // for the next one, just as the Linux TUN's eventfd is drained by the poll it ended.
  const wake = k.CreateEventW(null, 0, 0, null);
  if (wake === null) fail("CreateEventW", k.GetLastError());

  return new WintunTun(name, wt, k32, adapter, session, readEvent, wake, {
    luid: luidBuf[0]!,
    driverVersion: version,
  }, { dll: dllPath, kernel32: opts.kernel32 ?? "kernel32.dll" });
}

/** An open Wintun session; see the module docs. */
export class WintunTun implements TunDevice {
  /** No fd: a Wintun session is a pair of shared-memory rings. */
  readonly fd = -1;
  readonly vnetHdr = false;
  /** Always "wintun", for logs and for code that must know (there is no fd to poll). */
  readonly kind = "wintun";
  /** The adapter's NET_LUID, which the IP Helper API and netsh `interface=` accept. */
  readonly luid: bigint;
  /** The running driver's version (major << 16 | minor), 0 when unknown. */
  readonly driverVersion: number;
  readonly #wtLib: Deno.DynamicLibrary<typeof WINTUN_SYMBOLS>;
  readonly #k32Lib: Deno.DynamicLibrary<typeof KERNEL32_SYMBOLS>;
  readonly #w: Wintun;
  readonly #k: Kernel32;
  readonly #adapter: Deno.PointerObject;
  readonly #session: Deno.PointerObject;
  readonly #wake: Deno.PointerObject;
  /** [wake, read event] as HANDLE values; a helper thread reads it during every wait, so it
   * lives as long as the device. */
  readonly #handles = new BigUint64Array(2);
  readonly #handlesPtr: Deno.PointerObject;
  /** WintunReceivePacket's DWORD out-parameter, and its address (made once). */
  readonly #size = new Uint32Array(1);
  readonly #sizePtr: Deno.PointerObject;
  #closed = false;
  #released = false;
  /** waitReadable calls whose WaitForMultipleObjects is still running on a helper thread. */
  #waiting = 0;

  constructor(
    readonly name: string,
    wtLib: Deno.DynamicLibrary<typeof WINTUN_SYMBOLS>,
    k32Lib: Deno.DynamicLibrary<typeof KERNEL32_SYMBOLS>,
    adapter: Deno.PointerObject,
    session: Deno.PointerObject,
    readEvent: Deno.PointerObject,
    wake: Deno.PointerObject,
    info: { luid: bigint; driverVersion: number },
    /** The libraries loaded (the Windows Worker loads the same ones to drive a lent session). */
    readonly libraries: { dll: string; kernel32: string } = { dll: "", kernel32: "" },
  ) {
    this.#wtLib = wtLib;
    this.#k32Lib = k32Lib;
    this.#w = wtLib.symbols;
    this.#k = k32Lib.symbols;
    this.#adapter = adapter;
    this.#session = session;
    this.#wake = wake;
    this.luid = info.luid;
    this.driverVersion = info.driverVersion;
    this.#handles[WAKE_INDEX] = BigInt(Deno.UnsafePointer.value(wake));
    this.#handles[READ_INDEX] = BigInt(Deno.UnsafePointer.value(readEvent));
    this.#handlesPtr = Deno.UnsafePointer.of(this.#handles)!;
    this.#sizePtr = Deno.UnsafePointer.of(this.#size)!;
  }

  /**
   * The session's handles, for the Windows data-path Worker (one library image per process, so
   * they are valid on every thread). While it drives the session, this object must not read,
   * write or wait on it; it still owns the adapter and ends the session at close().
   */
  lend(): { session: bigint; readEvent: bigint } {
    return {
      session: BigInt(Deno.UnsafePointer.value(this.#session)),
      readEvent: this.#handles[READ_INDEX]!,
    };
  }

  /** One line for the startup log. */
  get description(): string {
    return `Wintun adapter "${this.name}" (driver ${formatDriverVersion(this.driverVersion)}, ` +
      `LUID 0x${this.luid.toString(16)})`;
  }

  read(buf: Uint8Array): number {
    if (this.#closed) throw new Error(`Wintun adapter "${this.name}" is closed`);
    const p = this.#w.WintunReceivePacket(this.#session, this.#sizePtr);
    if (p === null) {
      const e = this.#k.GetLastError(); // first, before any other call can overwrite it
      if (e === WinError.ERROR_NO_MORE_ITEMS) return 0;
      throw new WinApiError(
        `read from Wintun adapter "${this.name}" failed: WintunReceivePacket: ` +
          `${winErrorName(e)} (${e})${
            e === WinError.ERROR_HANDLE_EOF ? ": the adapter is gone" : ""
          }`,
        e,
      );
    }
    // As the Linux TUN does, a packet longer than the buffer is cut to it.
    const n = Math.min(this.#size[0]!, buf.byteLength);
    this.#k.RtlMoveMemoryOut(buf, p, bigLen(n));
    this.#w.WintunReleaseReceivePacket(this.#session, p);
    return n;
  }

  write(buf: Uint8Array, len: number): number {
    if (this.#closed) throw new Error(`Wintun adapter "${this.name}" is closed`);
    if (!(len >= 0 && len <= buf.byteLength)) {
      throw new RangeError(`write length ${len} outside buffer of ${buf.byteLength} bytes`);
    }
    if (len === 0 || len > WINTUN_MAX_IP_PACKET_SIZE) {
      throw new RangeError(
        `write to Wintun adapter "${this.name}": a packet of ${len} bytes ` +
          `(Wintun carries 1..${WINTUN_MAX_IP_PACKET_SIZE})`,
      );
    }
    const p = this.#w.WintunAllocateSendPacket(this.#session, len);
    if (p === null) {
      const e = this.#k.GetLastError();
      if (e === WinError.ERROR_BUFFER_OVERFLOW) return -1;
      throw new WinApiError(
        `write to Wintun adapter "${this.name}" failed: WintunAllocateSendPacket: ` +
          `${winErrorName(e)} (${e})`,
        e,
      );
    }
    this.#k.RtlMoveMemory(p, buf, bigLen(len));
    this.#w.WintunSendPacket(this.#session, p);
    return len;
  }

  async waitReadable(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return false;
    const ms = !Number.isFinite(timeoutMs) || timeoutMs < 0
      ? INFINITE
      : Math.min(Math.ceil(timeoutMs), INFINITE - 1);
    this.#waiting++;
    let r: number;
    try {
      r = await this.#k.WaitForMultipleObjects(2, this.#handlesPtr, 0, ms);
    } finally {
      this.#waiting--;
      if (this.#closed) {
        // The auto-reset wake ended only one wait: pass it on to the next, and release the
        // session once no helper thread waits on its handles any more.
        if (this.#waiting > 0) this.#k.SetEvent(this.#wake);
        else this.#release();
      }
    }
    // WAIT_OBJECT_0 + WAKE_INDEX (a wake), WAIT_TIMEOUT and WAIT_FAILED all read as "nothing
    // yet"; the lowest signalled index wins, so a pending wake beats a readable packet.
    return !this.#closed && r === WAIT_OBJECT_0 + READ_INDEX;
  }

  wake(): void {
    if (!this.#released) this.#k.SetEvent(this.#wake);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Wake a wait in flight first: its handles must stay valid until it has returned.
    this.#k.SetEvent(this.#wake);
    if (this.#waiting === 0) this.#release();
  }

  /** Ends the session (the ring and its read event), removes the adapter, frees the rest. */
  #release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#w.WintunEndSession(this.#session);
    this.#w.WintunCloseAdapter(this.#adapter);
    this.#k.CloseHandle(this.#wake);
    this.#wtLib.close();
    this.#k32Lib.close();
  }
}
