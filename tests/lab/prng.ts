/**
 * A tiny seeded pseudo-random generator for impairments that must replay exactly: the same seed
 * gives the same sequence on every run and machine, so a failing test can be reproduced.
 *
 * @module
 */

/** Returns numbers in [0, 1) from a 32-bit seed (mulberry32: small, fast, good enough here). */
export function seededRandom(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Derives an independent 32-bit seed for sub-stream `index` of `seed`, so that e.g. the two
 * directions of a relay draw from separate streams and one direction's traffic cannot shift the
 * other's decisions.
 */
export function deriveSeed(seed: number, index: number): number {
  // splitmix32-style finaliser over (seed, index).
  let z = (seed ^ Math.imul(index + 1, 0x9e3779b9)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}
