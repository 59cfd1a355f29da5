/**
 * The ECN field of IP headers (RFC 3168) and its handling at tunnel endpoints (RFC 6040), for
 * IPv4 and IPv6 packets at any offset of a buffer. Changing an IPv4 field keeps the header
 * checksum valid by the incremental update of RFC 1624 (IPv6 has no header checksum). In IPv6
 * the traffic class straddles bytes 0 and 1: its low two bits, the ECN field, are bits 4-5 of
 * byte 1.
 *
 * @module
 */

/** ECN codepoints: the low two bits of the IPv4 TOS / IPv6 traffic class byte. */
export const Ecn = {
  /** Not ECN-capable transport. */
  NotEct: 0,
  /** ECN-capable, ECT(1) (also the L4S identifier). */
  Ect1: 1,
  /** ECN-capable, ECT(0). */
  Ect0: 2,
  /** Congestion experienced. */
  Ce: 3,
} as const;

/** The ECN field of the IPv4 or IPv6 packet at `off` (0 for anything else). */
export function ecnOf(b: Uint8Array, off = 0): number {
  const v = b[off]! >> 4;
  return v === 4 ? b[off + 1]! & 3 : v === 6 ? (b[off + 1]! >> 4) & 3 : 0;
}

/** The DSCP (upper six bits of the TOS or traffic class) of the IP packet at `off`. */
export function dscpOf(b: Uint8Array, off = 0): number {
  const v = b[off]! >> 4;
  if (v === 4) return b[off + 1]! >> 2;
  return v === 6 ? ((b[off]! & 15) << 2) | (b[off + 1]! >> 6) : 0;
}

/**
 * Sets the ECN field of the IPv4 packet at `off` to `ecn`, updating the header checksum
 * incrementally (RFC 1624: HC' = ~(~HC + ~m + m') over the 16-bit word holding the TOS byte).
 */
export function setEcn(b: Uint8Array, off: number, ecn: number): void {
  if ((b[off]! >> 4) === 6) {
    b[off + 1] = (b[off + 1]! & 0xcf) | ((ecn & 3) << 4);
    return;
  }
  const oldTos = b[off + 1]!;
  const newTos = (oldTos & 0xfc) | (ecn & 3);
  if (newTos === oldTos) return;
  const oldWord = (b[off]! << 8) | oldTos;
  const newWord = (b[off]! << 8) | newTos;
  b[off + 1] = newTos;
  let sum = (~((b[off + 10]! << 8) | b[off + 11]!) & 0xffff) + (~oldWord & 0xffff) + newWord;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  const hc = ~sum & 0xffff;
  b[off + 10] = hc >> 8;
  b[off + 11] = hc & 255;
}

/**
 * Marks the IP packet at `off` "congestion experienced" instead of dropping it, when its
 * transport is ECN-capable (RFC 3168): returns true when it is (now) CE, false for a Not-ECT
 * packet, which the caller must drop instead.
 */
export function markCe(b: Uint8Array, off = 0): boolean {
  const v = b[off]! >> 4;
  if (v !== 4 && v !== 6) return false;
  const ecn = ecnOf(b, off);
  if (ecn === Ecn.NotEct) return false;
  if (ecn !== Ecn.Ce) setEcn(b, off, Ecn.Ce);
  return true;
}

/**
 * RFC 6040 decapsulation (section 4.2): the inner ECN field given the outer one. Returns the new
 * inner field, or -1 when the packet must be dropped (outer CE over a Not-ECT inner packet: the
 * congestion cannot be signalled any other way).
 */
export function decapsulateEcn(outer: number, inner: number): number {
  if (outer === Ecn.Ce) return inner === Ecn.NotEct ? -1 : Ecn.Ce;
  if (outer === Ecn.Ect1 && inner === Ecn.Ect0) return Ecn.Ect1;
  return inner;
}
