/**
 * TUN offloads on Linux (as wireguard-go's `tun/offload_linux.go`), behind the batch TUN device
 * so that nothing above it knows they exist:
 *
 * - **TSO reads.** With `TUNSETOFFLOAD (TUN_F_CSUM | TUN_F_TSO4)` the kernel hands over a TCP
 *   flow's data as up-to-64 KiB super-packets with the checksum left to complete, instead of
 *   segmenting and checksumming each 1.4 KB packet on its way to the TUN. {@link TsoSplitter}
 *   cuts them into MSS-sized IPv4 packets (what a NIC's TSO would do), each with its own IP id,
 *   sequence number, flags and complete checksums.
 * - **GRO writes.** Consecutive TCP segments of one flow, decrypted from one batch of datagrams,
 *   are joined by {@link TcpCoalescer} into one large packet written once, with a virtio-net
 *   header saying it is a TCPv4 GSO packet whose checksum the kernel completes per segment. The
 *   kernel then forwards or delivers one buffer instead of dozens. Rules follow Linux's
 *   tcp_gro_receive: same addresses, ports, ack, window and TCP options; the next sequence number
 *   exactly; every segment the size of the first except a shorter last one; only ACK (and PSH on
 *   the last) set; no IP options or fragments; at most 64 KiB in all.
 *
 * Every read and write on such a TUN begins with a 10-byte `struct virtio_net_hdr`: flags
 * (NEEDS_CSUM), gso_type, hdr_len, gso_size, csum_start, csum_offset (u16 little endian).
 *
 * Both classes work inside one arena: a Uint8Array over a whole ArrayBuffer that also holds
 * the caller's packet buffers, so that moving bytes is `copyWithin` at absolute offsets and no
 * view is ever made per packet.
 *
 * @module
 */
import { fold, sum16 } from "../../lib/checksum.ts";

/** Size of `struct virtio_net_hdr` (linux/virtio_net.h) in front of every TUN read and write
 * once IFF_VNET_HDR is on. */
export const VNET_HDR_BYTES = 10;
const NEEDS_CSUM = 1;
const GSO_NONE = 0;
const GSO_TCPV4 = 1;
const GSO_ECN = 0x80;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_ACK = 0x10;
const TCP_CWR = 0x80;
/** Largest IPv4 packet (total length is 16 bits). */
const MAX_TOTAL = 65535;
/** Most segments joined into one write (the kernel's GSO limit). */
const MAX_SEGS = 64;

/** Bytes of a read region: a virtio header plus the largest read. */
export const TSO_REGION_BYTES = VNET_HDR_BYTES + 65536;
/** Bytes of a coalescing region: a virtio header plus the largest packet. */
export const GRO_REGION_BYTES = VNET_HDR_BYTES + MAX_TOTAL + 1;

/**
 * Completes a partial checksum in place (CHECKSUM_PARTIAL): the field at `start + offset` holds
 * the pseudo-header sum; the ones' complement sum of everything from `start` to `end` goes there.
 */
export function completeChecksum(
  b: Uint8Array,
  start: number,
  offset: number,
  end: number,
  udp: boolean,
): void {
  const c = ~fold(sum16(b, start, end, 0)) & 0xffff;
  // A computed 0 for UDP means "no checksum"; 0xffff is the same value in ones' complement.
  const v = c === 0 && udp ? 0xffff : c;
  b[start + offset] = v >> 8;
  b[start + offset + 1] = v & 255;
}

/** What a TUN read holds, after {@link TsoSplitter.begin}. */
export const ReadKind = {
  /** One plain packet (its checksum is complete now). */
  Plain: 0,
  /** A TCPv4 super-packet to cut into {@link TsoSplitter.count} segments. */
  Segments: 1,
  /** Something we cannot handle (an unknown GSO type, a truncated header): drop it. */
  Bad: 2,
} as const;

/**
 * Cuts TCPv4 super-packets into segments. The TUN is read into the region at `readOff` of the
 * arena ({@link TSO_REGION_BYTES} long, virtio header first); segments are built wherever the
 * caller says.
 */
export class TsoSplitter {
  /** The read region (a view made once), to pass to read(2). */
  readonly read: Uint8Array;
  /** Where a plain read's packet starts in the arena (after its virtio header). */
  readonly plainOff: number;
  /** Segments in the current super-packet. */
  count = 0;
  #len = 0;
  #hdrLen = 0;
  #gso = 0;
  #seq = 0;
  #id = 0;
  #flags = 0;

  constructor(readonly all: Uint8Array, readonly readOff: number) {
    this.read = all.subarray(readOff, readOff + TSO_REGION_BYTES);
    this.plainOff = readOff + VNET_HDR_BYTES;
  }

  /**
   * Looks at a read of `n` bytes (virtio header first): completes a pending checksum of a
   * plain packet in place, or prepares a super-packet for {@link segment}.
   */
  begin(n: number): number {
    const buf = this.all;
    const h = this.readOff;
    if (n <= VNET_HDR_BYTES) return ReadKind.Bad;
    const o = h + VNET_HDR_BYTES;
    const gsoType = buf[h + 1]! & ~GSO_ECN;
    const csumStart = buf[h + 6]! | (buf[h + 7]! << 8);
    const csumOffset = buf[h + 8]! | (buf[h + 9]! << 8);
    if (gsoType === GSO_NONE) {
      if ((buf[h]! & NEEDS_CSUM) !== 0) {
        if (csumStart + csumOffset + 2 > n - VNET_HDR_BYTES) return ReadKind.Bad;
        completeChecksum(buf, o + csumStart, csumOffset, h + n, buf[o + 9] === 17);
      }
      return ReadKind.Plain;
    }
    if (gsoType !== GSO_TCPV4) return ReadKind.Bad;
    const ihl = (buf[o]! & 15) * 4;
    if (buf[o]! >> 4 !== 4 || ihl < 20 || ihl + 20 > n - VNET_HDR_BYTES) return ReadKind.Bad;
    const tcpHdr = (buf[o + ihl + 12]! >> 4) * 4;
    const hdrLen = ihl + tcpHdr;
    const gso = buf[h + 4]! | (buf[h + 5]! << 8);
    if (gso === 0 || hdrLen >= n - VNET_HDR_BYTES) return ReadKind.Bad;
    this.#len = n - VNET_HDR_BYTES;
    this.#hdrLen = hdrLen;
    this.#gso = gso;
    this.#seq = ((buf[o + ihl + 4]! << 24) | (buf[o + ihl + 5]! << 16) |
      (buf[o + ihl + 6]! << 8) | buf[o + ihl + 7]!) >>> 0;
    this.#id = (buf[o + 4]! << 8) | buf[o + 5]!;
    this.#flags = buf[o + ihl + 13]!;
    this.count = Math.ceil((this.#len - hdrLen) / gso);
    return ReadKind.Segments;
  }

  /** Builds segment `i` (a complete IPv4 packet with valid checksums) at offset `dst` of the
   * arena; returns its length. */
  segment(i: number, dst: number): number {
    const a = this.all;
    const o = this.readOff + VNET_HDR_BYTES;
    const hdrLen = this.#hdrLen;
    const ihl = (a[o]! & 15) * 4;
    const payloadStart = hdrLen + i * this.#gso;
    const payload = Math.min(this.#gso, this.#len - payloadStart);
    const total = hdrLen + payload;
    a.copyWithin(dst, o, o + hdrLen);
    a.copyWithin(dst + hdrLen, o + payloadStart, o + payloadStart + payload);
    // IP: length, id (+i, as the kernel's GSO does), checksum.
    a[dst + 2] = total >> 8;
    a[dst + 3] = total & 255;
    const id = (this.#id + i) & 0xffff;
    a[dst + 4] = id >> 8;
    a[dst + 5] = id & 255;
    a[dst + 10] = a[dst + 11] = 0;
    const ipSum = ~fold(sum16(a, dst, dst + ihl, 0)) & 0xffff;
    a[dst + 10] = ipSum >> 8;
    a[dst + 11] = ipSum & 255;
    // TCP: sequence, flags (FIN/PSH only on the last segment, CWR only on the first), checksum.
    const seq = (this.#seq + i * this.#gso) >>> 0;
    const t = dst + ihl;
    a[t + 4] = seq >>> 24;
    a[t + 5] = (seq >>> 16) & 255;
    a[t + 6] = (seq >>> 8) & 255;
    a[t + 7] = seq & 255;
    let flags = this.#flags;
    if (i !== this.count - 1) flags &= ~(TCP_FIN | TCP_PSH);
    if (i !== 0) flags &= ~TCP_CWR;
    a[t + 13] = flags;
    a[t + 16] = a[t + 17] = 0;
    const tcpLen = total - ihl;
    const sum = sum16(a, dst + 12, dst + 20, 6 + tcpLen); // pseudo-header
    const c = ~fold(sum16(a, t, dst + total, sum)) & 0xffff;
    a[t + 16] = c >> 8;
    a[t + 17] = c & 255;
    return total;
  }
}

/**
 * Joins TCP segments into one GSO write. Packets stay where the caller decrypted them until a
 * second segment joins the first: a lone packet (a game's, an ACK) is written from its own
 * buffer without any copy; only a run of two or more is copied into the coalescing region at
 * `regionOff` ({@link GRO_REGION_BYTES} long).
 */
export class TcpCoalescer {
  /** The coalescing region: virtio header, then the joined packet (a view made once). */
  readonly buf: Uint8Array;
  /** The first packet's buffer index (as given to {@link add}), while it is the only one. */
  firstIndex = -1;
  /** Segments in the run (0: nothing pending). */
  segs = 0;
  /** Bytes of the joined packet without the virtio header (once two or more joined). */
  #len = 0;
  #firstOff = 0;
  #firstLen = 0;
  #gsoSize = 0;
  #hdrLen = 0;
  #nextSeq = 0;
  #lastShort = false;
  readonly #o: number;

  constructor(readonly all: Uint8Array, readonly regionOff: number) {
    this.buf = all.subarray(regionOff, regionOff + GRO_REGION_BYTES);
    this.#o = regionOff + VNET_HDR_BYTES;
  }

  /** True when a run is pending. */
  get pending(): boolean {
    return this.segs > 0;
  }

  /**
   * Offers the `n`-byte IPv4 packet at offset `off` of the arena (buffer `index` of the
   * caller's): continues the pending run, or starts one when nothing is pending and it can be
   * joined. Returns false when it did neither: the caller flushes what is pending (if anything)
   * and, if `add` still refuses, writes the packet on its own.
   */
  add(off: number, n: number, index: number): boolean {
    const a = this.all;
    const p = off;
    if (n < 40 || a[p] !== 0x45 || a[p + 9] !== 6) return false;
    if (((a[p + 6]! & 0x3f) | a[p + 7]!) !== 0) return false; // MF or fragment offset
    const total = (a[p + 2]! << 8) | a[p + 3]!;
    if (total !== n) return false;
    const doff = (a[p + 32]! >> 4) * 4;
    if (doff < 20 || 20 + doff > n) return false;
    const flags = a[p + 33]!;
    if ((flags & ~(TCP_ACK | TCP_PSH)) !== 0 || (flags & TCP_ACK) === 0) return false;
    const hdrLen = 20 + doff;
    const payload = n - hdrLen;
    if (payload <= 0) return false;
    const seq = ((a[p + 24]! << 24) | (a[p + 25]! << 16) | (a[p + 26]! << 8) | a[p + 27]!) >>> 0;
    if (this.segs === 0) {
      this.segs = 1;
      this.firstIndex = index;
      this.#firstOff = off;
      this.#firstLen = n;
      this.#gsoSize = payload;
      this.#hdrLen = hdrLen;
      this.#nextSeq = (seq + payload) >>> 0;
      this.#lastShort = false;
      return true;
    }
    // The run's headers: the first packet in place, or the joined one.
    const o = this.segs === 1 ? this.#firstOff : this.#o;
    const len = this.segs === 1 ? this.#firstLen : this.#len;
    // Continue only the same flow, in order, with identical headers apart from seq/ids/sums.
    if (
      this.#lastShort || hdrLen !== this.#hdrLen || seq !== this.#nextSeq ||
      payload > this.#gsoSize || this.segs >= MAX_SEGS || len + payload > MAX_TOTAL ||
      (a[o + 33]! & TCP_PSH) !== 0
    ) {
      return false;
    }
    // TOS, TTL, addresses (12..20), ports (20..24), ack and data offset (28..33), window
    // (34..36), and the TCP options after the urgent pointer must match the first segment.
    if (a[o + 1] !== a[p + 1] || a[o + 8] !== a[p + 8]) return false; // TOS (ECN marks), TTL
    for (let i = 12; i < 24; i++) if (a[o + i] !== a[p + i]) return false;
    for (let i = 28; i < 33; i++) if (a[o + i] !== a[p + i]) return false;
    if (a[o + 34] !== a[p + 34] || a[o + 35] !== a[p + 35]) return false;
    for (let i = 40; i < hdrLen; i++) if (a[o + i] !== a[p + i]) return false;
    if (this.segs === 1) {
      // A second segment: now the first is copied into the region.
      a.copyWithin(this.#o, this.#firstOff, this.#firstOff + this.#firstLen);
      this.#len = this.#firstLen;
      this.firstIndex = -1;
    }
    a.copyWithin(this.#o + this.#len, p + hdrLen, p + n);
    this.#len += payload;
    this.segs++;
    this.#nextSeq = (seq + payload) >>> 0;
    if (payload < this.#gsoSize) this.#lastShort = true;
    a[this.#o + 33] = a[this.#o + 33]! | (flags & TCP_PSH); // PSH of the last segment carries over
    return true;
  }

  /**
   * Finishes a run of two or more segments in the region: the virtio header, the total length,
   * the IP checksum and the partial TCP checksum the kernel completes per segment. Returns the
   * bytes of {@link buf} to write (header included) and empties the coalescer. A run of one
   * (`firstIndex >= 0`) is not finished here: the caller writes that packet from its own
   * buffer and calls {@link reset}.
   */
  finish(): number {
    const len = this.#len;
    const a = this.all;
    const h = this.regionOff;
    const o = this.#o;
    a[o + 2] = len >> 8;
    a[o + 3] = len & 255;
    a[o + 10] = a[o + 11] = 0;
    const ipSum = ~fold(sum16(a, o, o + 20, 0)) & 0xffff;
    a[o + 10] = ipSum >> 8;
    a[o + 11] = ipSum & 255;
    // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum (addresses, protocol, TCP
    // length), not complemented, as the kernel's own TSO path leaves it (__tcp_v4_send_check);
    // segmentation completes it for each segment.
    const tcpLen = len - 20;
    const pseudo = fold(sum16(a, o + 12, o + 20, 6 + tcpLen));
    a[o + 36] = pseudo >> 8;
    a[o + 37] = pseudo & 255;
    a[h] = NEEDS_CSUM;
    a[h + 1] = GSO_TCPV4;
    // hdr_len, gso_size, csum_start, csum_offset: little-endian u16 (virtio is LE here).
    a[h + 2] = this.#hdrLen & 255;
    a[h + 3] = this.#hdrLen >> 8;
    a[h + 4] = this.#gsoSize & 255;
    a[h + 5] = this.#gsoSize >> 8;
    a[h + 6] = 20;
    a[h + 7] = 0;
    a[h + 8] = 16;
    a[h + 9] = 0;
    this.reset();
    return VNET_HDR_BYTES + len;
  }

  /** Forgets the pending run. */
  reset(): void {
    this.segs = 0;
    this.#len = 0;
    this.firstIndex = -1;
  }
}
