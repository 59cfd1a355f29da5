/**
 * Lengths as BigInt for FFI parameters of 64-bit types, without allocating: `BigInt(n)` makes a
 * new heap object on every call (about 32 bytes per sealed packet in a profile with
 * `--trace-gc`, one scavenge per ~125k packets), so the data path looks them up instead. Only
 * lengths a packet can have are cached (0..65535), each made on first use.
 *
 * @module
 */

const CACHE: bigint[] = [];
const MAX = 65536;

/** `BigInt(n)` for a non-negative integer length; cached below 65536. */
export function bigLen(n: number): bigint {
  if (n < MAX) return CACHE[n] ??= BigInt(n);
  return BigInt(n);
}
