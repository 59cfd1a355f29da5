/**
 * The send side of TUN offloads: with TUNSETOFFLOAD (TUN_F_CSUM | TUN_F_TSO4) the kernel hands
 * us a TCP flow's data as up-to-64 KiB super-packets with the checksum left to complete, instead
 * of segmenting and checksumming each 1.4 KB packet itself on the way to the TUN. We cut them
 * into MSS-sized IPv4 packets here (what a NIC's TSO would do), each with its own IP id, sequence
 * number, flags and complete checksums, and seal each as one datagram.
 *
 * Every read begins with a 10-byte `struct virtio_net_hdr`: flags (NEEDS_CSUM), gso_type,
 * hdr_len, gso_size, csum_start, csum_offset (u16 little endian).
 *
 * @module
 */
import { fold, sum16 } from "../lib/checksum.ts";
import { VNET_HDR_BYTES } from "./gro.ts";

const NEEDS_CSUM = 1;
const GSO_NONE = 0;
const GSO_TCPV4 = 1;
const GSO_ECN = 0x80;
const TCP_FIN = 0x01;
const TCP_PSH = 0x08;
const TCP_CWR = 0x80;

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
  /** Something we cannot handle (an unknown GSO type): drop it. */
  Bad: 2,
} as const;

/** Bytes of one region: a virtio header plus the largest read. */
const REGION = VNET_HDR_BYTES + 65536;

/**
 * Cuts TCPv4 super-packets from a TUN read into segments. One instance per TUN reader. The
 * caller reads the TUN into {@link read}; segments are built in {@link seg}. Both live in one
 * ArrayBuffer, so cutting is `copyWithin` and no per-packet view is ever made.
 */
export class TsoSplitter {
  readonly #all = new Uint8Array(2 * REGION);
  /** Where the caller reads the TUN into (virtio header first). */
  readonly read: Uint8Array = this.#all.subarray(0, REGION);
  /** The packet of a plain read (after its virtio header). */
  readonly readPacket: Uint8Array = this.#all.subarray(VNET_HDR_BYTES, REGION);
  /** Where {@link segment} puts each segment. */
  readonly seg: Uint8Array = this.#all.subarray(REGION);
  /** Segments in the current super-packet. */
  count = 0;
  #len = 0;
  #hdrLen = 0;
  #gso = 0;
  #seq = 0;
  #id = 0;
  #flags = 0;

  /**
   * Looks at a read of `n` bytes in {@link read} (virtio header first): completes a pending
   * checksum of a plain packet in place, or prepares a super-packet for {@link segment}.
   */
  begin(n: number): number {
    const buf = this.#all;
    if (n <= VNET_HDR_BYTES) return ReadKind.Bad;
    const o = VNET_HDR_BYTES;
    const gsoType = buf[1]! & ~GSO_ECN;
    const csumStart = buf[6]! | (buf[7]! << 8);
    const csumOffset = buf[8]! | (buf[9]! << 8);
    if (gsoType === GSO_NONE) {
      if ((buf[0]! & NEEDS_CSUM) !== 0) {
        if (csumStart + csumOffset + 2 > n - o) return ReadKind.Bad;
        completeChecksum(buf, o + csumStart, csumOffset, n, buf[o + 9] === 17);
      }
      return ReadKind.Plain;
    }
    if (gsoType !== GSO_TCPV4) return ReadKind.Bad;
    const ihl = (buf[o]! & 15) * 4;
    if (buf[o]! >> 4 !== 4 || ihl < 20 || ihl + 20 > n - o) return ReadKind.Bad;
    const tcpHdr = (buf[o + ihl + 12]! >> 4) * 4;
    const hdrLen = ihl + tcpHdr;
    const gso = buf[4]! | (buf[5]! << 8);
    if (gso === 0 || hdrLen >= n - o) return ReadKind.Bad;
    this.#len = n - o;
    this.#hdrLen = hdrLen;
    this.#gso = gso;
    this.#seq = ((buf[o + ihl + 4]! << 24) | (buf[o + ihl + 5]! << 16) | (buf[o + ihl + 6]! << 8) |
      buf[o + ihl + 7]!) >>> 0;
    this.#id = (buf[o + 4]! << 8) | buf[o + 5]!;
    this.#flags = buf[o + ihl + 13]!;
    this.count = Math.ceil((this.#len - hdrLen) / gso);
    return ReadKind.Segments;
  }

  /** Builds segment `i` (a complete IPv4 packet with valid checksums) in {@link seg}; returns
   * its length. */
  segment(i: number): number {
    const a = this.#all;
    const o = VNET_HDR_BYTES;
    const out = this.seg;
    const hdrLen = this.#hdrLen;
    const ihl = (a[o]! & 15) * 4;
    const payloadStart = hdrLen + i * this.#gso;
    const payload = Math.min(this.#gso, this.#len - payloadStart);
    const total = hdrLen + payload;
    a.copyWithin(REGION, o, o + hdrLen);
    a.copyWithin(REGION + hdrLen, o + payloadStart, o + payloadStart + payload);
    // IP: length, id (+i, as the kernel's GSO does), checksum.
    out[2] = total >> 8;
    out[3] = total & 255;
    const id = (this.#id + i) & 0xffff;
    out[4] = id >> 8;
    out[5] = id & 255;
    out[10] = out[11] = 0;
    const ipSum = ~fold(sum16(out, 0, ihl, 0)) & 0xffff;
    out[10] = ipSum >> 8;
    out[11] = ipSum & 255;
    // TCP: sequence, flags (FIN/PSH only on the last segment, CWR only on the first), checksum.
    const seq = (this.#seq + i * this.#gso) >>> 0;
    out[ihl + 4] = seq >>> 24;
    out[ihl + 5] = (seq >>> 16) & 255;
    out[ihl + 6] = (seq >>> 8) & 255;
    out[ihl + 7] = seq & 255;
    let flags = this.#flags;
    if (i !== this.count - 1) flags &= ~(TCP_FIN | TCP_PSH);
    if (i !== 0) flags &= ~TCP_CWR;
    out[ihl + 13] = flags;
    out[ihl + 16] = out[ihl + 17] = 0;
    const tcpLen = total - ihl;
    const sum = sum16(out, 12, 20, 6 + tcpLen); // pseudo-header: addresses, protocol, length
    const c = ~fold(sum16(out, ihl, total, sum)) & 0xffff;
    out[ihl + 16] = c >> 8;
    out[ihl + 17] = c & 255;
    return total;
  }
}
