/**
 * The {@link BatchTun} contract over a Wintun session, so that the flow scheduler's loop
 * (`runtime/dataplane/loop.ts`) runs on Windows as it does over the Linux TUN fd. A read is a
 * run of WintunReceivePacket, a copy out of the ring into the caller's buffer (RtlMoveMemory,
 * no view made per packet) and WintunReleaseReceivePacket; a write is WintunAllocateSendPacket,
 * a copy in, WintunSendPacket. All synchronous, all cheap: the rings are shared memory.
 *
 * Readiness: the session's read event is auto-reset and Wintun sets it only after a reader found
 * the ring empty (wireguard-go's `tun_windows.go` waits on it only then), so a read that filled
 * its batch without seeing ERROR_NO_MORE_ITEMS leaves {@link buffered} true: the loop reads
 * again without waiting, as it does for the rest of a Linux TSO super-packet.
 *
 * The session is borrowed: whoever started it ends it ({@link close} only drops the libraries).
 * On Linux it runs over the fake wintun library; it has not run on real Windows.
 *
 * @module
 */
import { bigLen } from "../_bigint.ts";
import type { BatchTun, TunDropSink } from "./batch.ts";
import {
  KERNEL32_SYMBOLS,
  WinError,
  winErrorName,
  WINTUN_MAX_IP_PACKET_SIZE,
  WINTUN_SYMBOLS,
} from "./wintun_abi.ts";

const K32 = {
  GetLastError: KERNEL32_SYMBOLS.GetLastError,
  RtlMoveMemory: KERNEL32_SYMBOLS.RtlMoveMemory,
  RtlMoveMemoryOut: KERNEL32_SYMBOLS.RtlMoveMemoryOut,
} as const satisfies Deno.ForeignLibraryInterface;

/** Options of {@link WintunBatchTun}. */
export interface WintunBatchOptions {
  /** The adapter's name, for logs. */
  name: string;
  /** wintun.dll and kernel32 (on Linux both the fake library). */
  dll: string;
  kernel32: string;
  /** The session and its read event, as HANDLE values. */
  session: bigint;
  readEvent: bigint;
  /** How many read buffers (the scheduler's pool) and write buffers, and their size. */
  readBuffers: number;
  writeBuffers: number;
  packetBytes: number;
  /** Where drops are counted (the core's counters). */
  drops: TunDropSink;
}

/** A borrowed Wintun session behind the batch contract; see the module docs. */
export class WintunBatchTun implements BatchTun {
  readonly name: string;
  readonly fd = -1;
  readonly headroom = 0;
  readonly readBuffers: readonly Uint8Array[];
  readonly writeBuffers: readonly Uint8Array[];
  readonly writePackets: readonly Uint8Array[];
  /** The read event, for the poller. */
  readonly handle: bigint;
  /** The last read filled its batch before the ring ran dry (see the module docs). */
  buffered = false;
  /** The adapter went away (ERROR_HANDLE_EOF): the data path must stop. */
  gone = false;
  readonly #wt: Deno.DynamicLibrary<typeof WINTUN_SYMBOLS>;
  readonly #k32: Deno.DynamicLibrary<typeof K32>;
  readonly #session: Deno.PointerObject;
  readonly #drops: TunDropSink;
  readonly #size = new Uint32Array(1);
  readonly #sizePtr: Deno.PointerObject;
  #closed = false;

  constructor(o: WintunBatchOptions) {
    this.name = o.name;
    this.handle = o.readEvent;
    this.#drops = o.drops;
    const session = Deno.UnsafePointer.create(o.session);
    if (session === null) throw new TypeError("no Wintun session to drive");
    this.#session = session;
    this.#sizePtr = Deno.UnsafePointer.of(this.#size)!;
    const bytes = Math.min(o.packetBytes, WINTUN_MAX_IP_PACKET_SIZE);
    // One arena each way, views made once.
    const arena = (n: number) => {
      const mem = new ArrayBuffer(n * bytes);
      return Array.from({ length: n }, (_, i) => new Uint8Array(mem, i * bytes, bytes));
    };
    this.readBuffers = arena(o.readBuffers);
    this.writeBuffers = arena(o.writeBuffers);
    this.writePackets = this.writeBuffers;
    this.#wt = Deno.dlopen(o.dll, WINTUN_SYMBOLS);
    try {
      this.#k32 = Deno.dlopen(o.kernel32, K32);
    } catch (err) {
      this.#wt.close();
      throw err;
    }
  }

  read(bufs: readonly Uint8Array[], sizes: Int32Array, max: number): number {
    const w = this.#wt.symbols, k = this.#k32.symbols;
    let n = 0;
    this.buffered = false;
    for (let got = 0; got < max; got++) {
      const p = w.WintunReceivePacket(this.#session, this.#sizePtr);
      if (p === null) {
        const e = k.GetLastError(); // first: the next FFI call may overwrite it
        if (e === WinError.ERROR_NO_MORE_ITEMS) return n;
        if (e === WinError.ERROR_HANDLE_EOF) {
          this.gone = true;
          return n;
        }
        throw new Error(`WintunReceivePacket on "${this.name}" failed: ${winErrorName(e)} (${e})`);
      }
      const len = this.#size[0]!;
      const buf = bufs[n]!;
      if (len > buf.byteLength) {
        this.#drops.bad_inner_packet++; // larger than any MTU we set: nothing to forward
      } else {
        k.RtlMoveMemoryOut(buf, p, bigLen(len));
        sizes[n++] = len;
      }
      w.WintunReleaseReceivePacket(this.#session, p);
    }
    this.buffered = true; // the batch is full; the ring may hold more, and no event will say so
    return n;
  }

  write(bufs: readonly Uint8Array[], sizes: Int32Array, count: number): number {
    const w = this.#wt.symbols, k = this.#k32.symbols;
    let ok = 0;
    for (let i = 0; i < count; i++) {
      const len = sizes[i]!;
      const buf = bufs[i]!;
      if (len <= 0 || len > buf.byteLength) {
        this.#drops.tun_error++;
        continue;
      }
      const p = w.WintunAllocateSendPacket(this.#session, len);
      if (p === null) {
        const e = k.GetLastError();
        if (e === WinError.ERROR_BUFFER_OVERFLOW) this.#drops.tun_full++;
        else {
          this.#drops.tun_error++;
          if (e === WinError.ERROR_HANDLE_EOF) this.gone = true;
        }
        continue;
      }
      k.RtlMoveMemory(p, buf, bigLen(len));
      w.WintunSendPacket(this.#session, p);
      ok++;
    }
    return ok;
  }

  /** Drops this thread's library handles; the session stays its owner's to end. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#wt.close();
    this.#k32.close();
  }
}
