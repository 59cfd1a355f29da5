/**
 * Checks on decrypted inner packets before they reach a TUN device. The kernel would reject
 * most garbage itself, but a clean reason in our counters beats an EINVAL in the write path.
 *
 * @module
 */
import { decapsulateEcn, ecnOf, setEcn } from "../lib/ecn.ts";

/** Bytes of the fixed IPv6 header. */
export const IPV6_HEADER_BYTES = 40;

/** True when buf[0..n) looks like a whole IP packet: IPv4 with a sane header length and a
 * total length that fits in what we received, or IPv6 whose payload length fits. */
export function validInnerPacket(buf: Uint8Array, n: number): boolean {
  if (n < 20) return false;
  const b0 = buf[0]!;
  if (b0 >> 4 === 6) {
    return n >= IPV6_HEADER_BYTES && IPV6_HEADER_BYTES + ((buf[4]! << 8) | buf[5]!) <= n;
  }
  if (b0 >> 4 !== 4) return false;
  const ihl = (b0 & 15) * 4;
  if (ihl < 20) return false;
  const total = (buf[2]! << 8) | buf[3]!;
  return total >= ihl && total <= n;
}

/** The length of the (valid) IP packet at the start of `buf`, from its header: what trims any
 * padding after it. */
export function innerLength(buf: Uint8Array): number {
  return buf[0]! >> 4 === 6
    ? IPV6_HEADER_BYTES + ((buf[4]! << 8) | buf[5]!)
    : (buf[2]! << 8) | buf[3]!;
}

/**
 * Applies the outer header's ECN field to the inner IP packet at the start of `buf` (RFC 6040
 * decapsulation): CE on the outside becomes CE inside. Returns false when the packet must be
 * dropped (outer CE over a Not-ECT inner packet).
 */
export function decapsulate(buf: Uint8Array, outerEcn: number): boolean {
  const inner = ecnOf(buf);
  const ecn = decapsulateEcn(outerEcn, inner);
  if (ecn < 0) return false;
  if (ecn !== inner) setEcn(buf, 0, ecn);
  return true;
}
