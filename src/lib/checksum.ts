/**
 * The Internet checksum (RFC 1071) in pieces the data path combines: a running sum over byte
 * ranges, and the fold to 16 bits. Callers complement the folded sum where the header wants it.
 *
 * @module
 */

/** Adds the big-endian 16-bit words of b[from..to) to `acc` (an odd last byte is padded). */
export function sum16(b: Uint8Array, from: number, to: number, acc: number): number {
  let i = from;
  for (; i + 1 < to; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  if (i < to) acc += b[i]! << 8;
  return acc;
}

/** Folds a running sum to 16 bits (ones' complement addition of the carries). */
export function fold(sum: number): number {
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}
