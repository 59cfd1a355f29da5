/**
 * The Linux {@link BatchTun}: a non-blocking TUN fd read and written with synchronous libc
 * calls, with the offloads of `offload_linux.ts` inside when the fd was opened with
 * `IFF_VNET_HDR` (and `TUNSETOFFLOAD` for TSO reads).
 *
 * Memory: one arena (an ArrayBuffer) holds the read region the kernel writes super-packets
 * into, the coalescing region, and every read and write buffer handed out, so a segment cut,
 * a plain packet copied out of the read region, or a run joined for one write is a
 * `copyWithin`, never a new view. A plain TUN (no virtio header) is read straight into the
 * caller's buffer and written straight from it.
 *
 * @module
 */
import { Errno, ErrnoError, errnoName, errnoView, type Libc, libc, strerror } from "../_libc.ts";
import { bigLen } from "../_bigint.ts";
import type { BatchTun, OffloadStats, TunDropSink } from "./batch.ts";
import {
  GRO_REGION_BYTES,
  ReadKind,
  TcpCoalescer,
  TSO_REGION_BYTES,
  TsoSplitter,
  VNET_HDR_BYTES,
} from "./offload_linux.ts";

/** Options of {@link adoptLinuxBatchTun}. */
export interface LinuxBatchTunOptions {
  /** The fd carries a virtio-net header per packet (IFF_VNET_HDR): offloads are on. */
  vnetHdr: boolean;
  /** Read buffers to make (the pool the caller reads into). */
  readBuffers: number;
  /** Write buffers to make. */
  writeBuffers: number;
  /** Bytes of the largest packet (each buffer's size, plus headroom for write buffers). */
  packetBytes: number;
  /** Where drops are counted (the data path's counters). */
  drops: TunDropSink;
}

/** Buffers start on 64-byte boundaries (cache lines). */
const ALIGN = 64;
const align = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

/**
 * Wraps a TUN fd opened elsewhere in this process (the main thread keeps owning it: close()
 * only stops this wrapper). Throws a RangeError for impossible options.
 */
export function adoptLinuxBatchTun(
  fd: number,
  name: string,
  o: LinuxBatchTunOptions,
): BatchTun {
  if (!(o.readBuffers >= 1 && o.writeBuffers >= 1 && o.packetBytes >= 576)) {
    throw new RangeError(`batch TUN "${name}": needs buffers of at least 576 bytes`);
  }
  return new LinuxBatchTun(libc(), fd, name, o);
}

class LinuxBatchTun implements BatchTun {
  readonly headroom: number;
  readonly readBuffers: Uint8Array[] = [];
  readonly writeBuffers: Uint8Array[] = [];
  readonly writePackets: Uint8Array[] = [];
  readonly offload: OffloadStats | undefined;
  readonly #c: Libc;
  readonly #errno = errnoView();
  readonly #vnet: boolean;
  readonly #drops: TunDropSink;
  /** The whole arena, for copyWithin at absolute offsets. */
  readonly #all: Uint8Array;
  readonly #tso: TsoSplitter | undefined;
  readonly #gro: TcpCoalescer | undefined;
  /** Segments of the current super-packet not yet handed out (next index, or -1). */
  #nextSeg = -1;
  #closed = false;

  constructor(c: Libc, readonly fd: number, readonly name: string, o: LinuxBatchTunOptions) {
    this.#c = c;
    this.#vnet = o.vnetHdr;
    this.#drops = o.drops;
    this.headroom = o.vnetHdr ? VNET_HDR_BYTES : 0;
    const readBytes = align(o.packetBytes);
    const writeBytes = align(this.headroom + o.packetBytes);
    const scratch = o.vnetHdr ? align(TSO_REGION_BYTES) + align(GRO_REGION_BYTES) : 0;
    this.#all = new Uint8Array(scratch + o.readBuffers * readBytes + o.writeBuffers * writeBytes);
    const a = this.#all;
    if (o.vnetHdr) {
      this.offload = { superReads: 0, segments: 0, joinedWrites: 0, joinedSegments: 0 };
      this.#tso = new TsoSplitter(a, 0);
      this.#gro = new TcpCoalescer(a, align(TSO_REGION_BYTES));
    }
    let off = scratch;
    for (let i = 0; i < o.readBuffers; i++, off += readBytes) {
      this.readBuffers.push(a.subarray(off, off + o.packetBytes));
    }
    for (let i = 0; i < o.writeBuffers; i++, off += writeBytes) {
      const b = a.subarray(off, off + this.headroom + o.packetBytes);
      this.writeBuffers.push(b);
      this.writePackets.push(b.subarray(this.headroom));
    }
  }

  get buffered(): boolean {
    return this.#nextSeg >= 0;
  }

  /** Offset of `b` in the arena, or -1 when it lives elsewhere. */
  #offsetOf(b: Uint8Array): number {
    return b.buffer === this.#all.buffer ? b.byteOffset : -1;
  }

  read(bufs: readonly Uint8Array[], sizes: Int32Array, max: number): number {
    if (this.#closed) throw new Error(`TUN device "${this.name}" is closed`);
    const c = this.#c;
    let n = 0;
    if (!this.#vnet) {
      while (n < max) {
        const b = bufs[n]!;
        const r = c.read(this.fd, b, bigLen(b.byteLength));
        if (r < 0) {
          this.#readFailed();
          break;
        }
        if (r === 0) break;
        sizes[n++] = r;
      }
      return n;
    }
    const tso = this.#tso!;
    const all = this.#all;
    while (n < max) {
      if (this.#nextSeg >= 0) {
        // Cut the next segment of the pending super-packet straight into the caller's buffer.
        const b = bufs[n]!;
        const off = this.#offsetOf(b);
        const i = this.#nextSeg;
        if (off >= 0) sizes[n] = tso.segment(i, off);
        else sizes[n] = this.#segmentSlow(tso, i, b);
        n++;
        this.#nextSeg = i + 1 < tso.count ? i + 1 : -1;
        continue;
      }
      const r = c.read(this.fd, tso.read, bigLen(TSO_REGION_BYTES));
      if (r < 0) {
        this.#readFailed();
        break;
      }
      if (r === 0) break;
      switch (tso.begin(r)) {
        case ReadKind.Plain: {
          const b = bufs[n]!;
          const len = r - VNET_HDR_BYTES;
          const off = this.#offsetOf(b);
          if (off >= 0) all.copyWithin(off, tso.plainOff, tso.plainOff + len);
          else b.set(all.subarray(tso.plainOff, tso.plainOff + len));
          sizes[n++] = len;
          break;
        }
        case ReadKind.Segments:
          this.#nextSeg = 0;
          this.offload!.superReads++;
          this.offload!.segments += tso.count;
          break;
        default:
          this.#drops.bad_inner_packet++;
      }
    }
    return n;
  }

  /** A segment for a buffer outside the arena: built in the coalescing region, then copied. */
  #segmentSlow(tso: TsoSplitter, i: number, b: Uint8Array): number {
    const gro = this.#gro!;
    const len = tso.segment(i, gro.regionOff);
    b.set(gro.buf.subarray(0, len));
    return len;
  }

  /** EAGAIN/EINTR end a read batch quietly; anything else is an error worth a crash report. */
  #readFailed(): void {
    const e = this.#errno[0]!;
    if (e === Errno.EAGAIN || e === Errno.EINTR) return;
    throw new ErrnoError(
      `read from TUN device "${this.name}" failed: ${errnoName(e)} (${strerror(e)})`,
      e,
    );
  }

  write(bufs: readonly Uint8Array[], sizes: Int32Array, count: number): number {
    if (this.#closed) throw new Error(`TUN device "${this.name}" is closed`);
    let accepted = 0;
    if (!this.#vnet) {
      for (let i = 0; i < count; i++) accepted += this.#writeRaw(bufs[i]!, sizes[i]!, 1);
      return accepted;
    }
    const gro = this.#gro!;
    const h = VNET_HDR_BYTES;
    for (let i = 0; i < count; i++) {
      const b = bufs[i]!;
      const off = this.#offsetOf(b);
      const n = sizes[i]!;
      if (off >= 0 && gro.add(off + h, n, i)) continue;
      accepted += this.#flush(bufs, sizes);
      if (off >= 0 && gro.add(off + h, n, i)) continue;
      accepted += this.#writePlain(b, n);
    }
    return accepted + this.#flush(bufs, sizes);
  }

  /** Writes the pending run: a lone packet from its own buffer, a joined one from the region. */
  #flush(bufs: readonly Uint8Array[], sizes: Int32Array): number {
    const gro = this.#gro!;
    if (!gro.pending) return 0;
    if (gro.firstIndex >= 0) {
      const i = gro.firstIndex;
      gro.reset();
      return this.#writePlain(bufs[i]!, sizes[i]!);
    }
    const segs = gro.segs;
    this.offload!.joinedWrites++;
    this.offload!.joinedSegments += segs;
    return this.#writeRaw(gro.buf, gro.finish() - VNET_HDR_BYTES, segs, VNET_HDR_BYTES);
  }

  /** One packet with an all-zero virtio header (no offload asked) in its headroom. */
  #writePlain(b: Uint8Array, n: number): number {
    b.fill(0, 0, VNET_HDR_BYTES);
    return this.#writeRaw(b, n, 1, VNET_HDR_BYTES);
  }

  /** write(2) of `head + n` bytes of `b`, standing for `packets` packets; returns those
   * accepted (all or none) and counts the rest. */
  #writeRaw(b: Uint8Array, n: number, packets: number, head = 0): number {
    const r = this.#c.write(this.fd, b, bigLen(head + n));
    if (r >= 0) return packets;
    const e = this.#errno[0]!;
    if (e === Errno.EAGAIN || e === Errno.ENOBUFS || e === Errno.EINTR) {
      this.#drops.tun_full += packets;
    } else if (e === Errno.EBADF) {
      throw new ErrnoError(`write to TUN device "${this.name}" failed: EBADF`, e);
    } else {
      this.#drops.tun_error += packets;
    }
    return 0;
  }

  close(): void {
    this.#closed = true;
  }
}
