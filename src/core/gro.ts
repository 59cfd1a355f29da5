/**
 * Receive-side coalescing for TUN writes (what the kernel's GRO does for a NIC): consecutive TCP
 * segments of one flow, decrypted from one batch of datagrams, are joined into one large packet
 * and written to the TUN once, with a virtio-net header that tells the kernel it is a TCPv4 GSO
 * packet of `gso_size`-byte segments whose checksum is still to be completed. The kernel then
 * forwards or delivers one buffer instead of dozens: most of a tunnel's CPU goes into the
 * kernel's per-packet work, not into our code (profile in the README).
 *
 * Rules follow Linux's tcp_gro_receive: same addresses, ports, ack, window and TCP options; the
 * next sequence number exactly; every segment the size of the first except a shorter last one;
 * only ACK (and PSH on the last) set; no IP options or fragments; at most 64 KiB in all.
 *
 * Layout of `buf` (and of `inputWithHeader`): a 10-byte `struct virtio_net_hdr`, then the IPv4
 * packet.
 *
 * @module
 */
import { fold, sum16 } from "../lib/checksum.ts";

/** Size of `struct virtio_net_hdr` (linux/virtio_net.h) in front of every TUN read and write
 * once IFF_VNET_HDR is on. */
export const VNET_HDR_BYTES = 10;
const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
const TCP_ACK = 0x10;
const TCP_PSH = 0x08;
/** Largest coalesced IPv4 packet (total length is 16 bits). */
const MAX_TOTAL = 65535;
/** Most segments joined (the kernel's GSO limit is 64). */
const MAX_SEGS = 64;

/** Sums 16-bit big-endian words of b[from..to) into a 32-bit accumulator. */

/** Bytes of one region: a virtio header plus the largest packet. */
const REGION = VNET_HDR_BYTES + MAX_TOTAL + 1;

/**
 * Joins TCP segments into one GSO write. One instance per TUN writer. The caller decrypts each
 * packet into {@link input}; both that and the packet under construction live in one
 * ArrayBuffer, so joining is `copyWithin` and no per-packet view is ever made.
 */
export class TcpCoalescer {
  readonly #all = new Uint8Array(2 * REGION);
  /** Where the caller puts the next packet (its 10 header bytes before it stay zero). */
  readonly input: Uint8Array = this.#all.subarray(VNET_HDR_BYTES, REGION);
  /** `input` with its (zero) virtio header: write `n + 10` bytes of it for a plain packet. */
  readonly inputWithHeader: Uint8Array = this.#all.subarray(0, REGION);
  /** vnet header + packet under construction. */
  readonly buf: Uint8Array = this.#all.subarray(REGION);
  /** Bytes of the packet under construction (without the vnet header); 0 when empty. */
  len = 0;
  #segs = 0;
  #gsoSize = 0;
  #hdrLen = 0; // IP + TCP header bytes
  #nextSeq = 0;
  #lastShort = false;

  /** True when a packet is under construction. */
  get pending(): boolean {
    return this.len > 0;
  }

  /**
   * Takes the `n`-byte IPv4 packet in {@link input}: appends it to the packet under
   * construction when it continues it, or starts a new one when nothing is pending and it can
   * be joined. Returns false when it did neither: the caller flushes what is pending (if
   * anything) and, if `add` still refuses, writes the packet on its own.
   */
  add(n: number): boolean {
    const a = this.#all;
    const p = VNET_HDR_BYTES; // the input packet
    const o = REGION + VNET_HDR_BYTES; // the packet under construction
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
    if (this.len === 0) {
      a.copyWithin(o, p, p + n);
      this.len = n;
      this.#segs = 1;
      this.#gsoSize = payload;
      this.#hdrLen = hdrLen;
      this.#nextSeq = (seq + payload) >>> 0;
      this.#lastShort = false;
      return true;
    }
    // Continue only the same flow, in order, with identical headers apart from seq/ids/sums.
    if (
      this.#lastShort || hdrLen !== this.#hdrLen || seq !== this.#nextSeq ||
      payload > this.#gsoSize || this.#segs >= MAX_SEGS || this.len + payload > MAX_TOTAL ||
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
    a.copyWithin(o + this.len, p + hdrLen, p + n);
    this.len += payload;
    this.#segs++;
    this.#nextSeq = (seq + payload) >>> 0;
    if (payload < this.#gsoSize) this.#lastShort = true;
    a[o + 33] = a[o + 33]! | (flags & TCP_PSH); // PSH of the last segment carries over
    return true;
  }

  /**
   * Finishes the packet under construction: writes the vnet header (and, for more than one
   * segment, the total length, IP checksum and the partial TCP checksum the kernel completes
   * per segment). Returns the bytes of `buf` to write (header included) and empties the
   * coalescer; 0 when nothing was pending.
   */
  finish(): number {
    const len = this.len;
    if (len === 0) return 0;
    const b = this.buf;
    const o = VNET_HDR_BYTES;
    b.fill(0, 0, VNET_HDR_BYTES);
    if (this.#segs > 1) {
      b[o + 2] = len >> 8;
      b[o + 3] = len & 255;
      b[o + 10] = b[o + 11] = 0;
      const ipSum = ~fold(sum16(b, o, o + 20, 0)) & 0xffff;
      b[o + 10] = ipSum >> 8;
      b[o + 11] = ipSum & 255;
      // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum (addresses, protocol,
      // TCP length), not complemented, as the kernel's own TSO path leaves it
      // (__tcp_v4_send_check); segmentation completes it for each segment.
      const tcpLen = len - 20;
      const pseudo = fold(sum16(b, o + 12, o + 20, 6 + tcpLen));
      b[o + 36] = pseudo >> 8;
      b[o + 37] = pseudo & 255;
      b[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
      b[1] = VIRTIO_NET_HDR_GSO_TCPV4;
      // hdr_len, gso_size, csum_start, csum_offset: little-endian u16 (virtio is LE here).
      b[2] = this.#hdrLen & 255;
      b[3] = this.#hdrLen >> 8;
      b[4] = this.#gsoSize & 255;
      b[5] = this.#gsoSize >> 8;
      b[6] = 20;
      b[7] = 0;
      b[8] = 16;
      b[9] = 0;
    }
    this.len = 0;
    return VNET_HDR_BYTES + len;
  }
}
