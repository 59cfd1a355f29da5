/**
 * Checks on decrypted inner packets before they reach a TUN device. The kernel would reject
 * most garbage itself, but a clean reason in our counters beats an EINVAL in the write path.
 *
 * @module
 */
import { decapsulateEcn, ecnOf, setEcn } from "../lib/ecn.ts";

/** True when buf[0..n) looks like a whole IPv4 packet: version 4, a sane header length, and a
 * total-length field that fits in what we received. */
export function validInnerPacket(buf: Uint8Array, n: number): boolean {
  if (n < 20) return false;
  const b0 = buf[0]!;
  if (b0 >> 4 !== 4) return false;
  const ihl = (b0 & 15) * 4;
  if (ihl < 20) return false;
  const total = (buf[2]! << 8) | buf[3]!;
  return total >= ihl && total <= n;
}

/**
 * Applies the outer header's ECN field to the inner IPv4 packet at the start of `buf` (RFC 6040
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
