/**
 * Sliding anti-replay window in the style of RFC 6479: a ring of 64-bit blocks (kept as pairs
 * of u32 words) indexed by counter, so advancing the window clears whole blocks instead of
 * shifting a bitmap. Accepts each counter at most once and rejects counters older than the
 * window.
 *
 * @module
 */

/** Counters kept: WireGuard uses 8192 minus one block; reordering across paths needs room. */
export const REPLAY_WINDOW_BITS = 8192;
const BLOCK_BITS = 32;
const BLOCKS = REPLAY_WINDOW_BITS / BLOCK_BITS; // ring size, a power of two
const BLOCK_MASK = BLOCKS - 1;
/** Usable window: one block is kept as the "next" block being filled (RFC 6479 section 2). */
export const REPLAY_WINDOW_USABLE = REPLAY_WINDOW_BITS - BLOCK_BITS;

/** One direction's replay state. */
export class ReplayWindow {
  #ring = new Uint32Array(BLOCKS);
  /** Highest counter accepted so far, -1 before the first. */
  #top = -1;

  /** Highest counter accepted so far (-1 before any). */
  get top(): number {
    return this.#top;
  }

  /**
   * True when `counter` would be accepted (new, and not older than the window). Does not
   * change state: call {@link accept} only after the packet authenticated, so forged packets
   * cannot move the window.
   */
  check(counter: number): boolean {
    if (counter < 0) return false;
    if (counter > this.#top) return true;
    if (this.#top - counter >= REPLAY_WINDOW_USABLE) return false;
    const block = Math.floor(counter / BLOCK_BITS) & BLOCK_MASK;
    return (this.#ring[block]! & (1 << (counter % BLOCK_BITS))) === 0;
  }

  /** Records `counter` as seen. Returns false (and changes nothing) if it is a replay or too old. */
  accept(counter: number): boolean {
    if (!this.check(counter)) return false;
    const index = Math.floor(counter / BLOCK_BITS);
    if (counter > this.#top) {
      const current = this.#top < 0 ? -1 : Math.floor(this.#top / BLOCK_BITS);
      // Clear every block we jump over (at most the whole ring).
      const diff = Math.min(index - current, BLOCKS);
      for (let i = 1; i <= diff; i++) this.#ring[(current + i) & BLOCK_MASK] = 0;
      this.#top = counter;
    }
    this.#ring[index & BLOCK_MASK]! |= 1 << (counter % BLOCK_BITS);
    return true;
  }
}
