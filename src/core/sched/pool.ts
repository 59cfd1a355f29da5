/**
 * The packet pool the flow scheduler queues into: a fixed number of slots, one owner each
 * (field notes, trap 1: a queued packet must own its bytes). The bytes live in buffers the
 * runtime owns (the TUN's read buffers, slot `i` is buffer `i`); this holds what the scheduler
 * needs to know about each queued packet, in typed arrays, so nothing is allocated per packet.
 *
 * @module
 */

/** Per-slot bits in {@link PacketPool.meta}. */
export const Meta = {
  /** The ECN field of the inner packet (two bits). */
  ECN_MASK: 0x03,
  /** The packet belongs to an interactive flow (sparse, or an explicit priority class). */
  INTERACTIVE: 0x04,
  /** The packet matched an explicit priority rule. */
  PRIORITY: 0x08,
  /** The scheduler marked the packet CE: the runtime sets it in the bytes before sealing. */
  MARK_CE: 0x10,
} as const;

/** Slots and their metadata; a stack of free slots. */
export class PacketPool {
  /** Packet length by slot. */
  readonly len: Int32Array;
  /** When the packet was queued (monotonic ms), for CoDel's sojourn time. */
  readonly at: Float64Array;
  /** The next slot in the same flow queue, -1 at the end. */
  readonly next: Int32Array;
  /** {@link Meta} bits. */
  readonly meta: Uint8Array;
  readonly #free: Int32Array;
  #top: number;

  /** A pool of `size` slots, all free. */
  constructor(readonly size: number) {
    this.len = new Int32Array(size);
    this.at = new Float64Array(size);
    this.next = new Int32Array(size).fill(-1);
    this.meta = new Uint8Array(size);
    this.#free = new Int32Array(size);
    for (let i = 0; i < size; i++) this.#free[i] = size - 1 - i;
    this.#top = size;
  }

  /** Free slots. */
  get available(): number {
    return this.#top;
  }

  /** Slots in use (queued, or handed out and not yet released). */
  get used(): number {
    return this.size - this.#top;
  }

  /** Takes a free slot; -1 when none is left. */
  alloc(): number {
    return this.#top > 0 ? this.#free[--this.#top]! : -1;
  }

  /** Gives slot `i` back. */
  release(i: number): void {
    this.next[i] = -1;
    this.meta[i] = 0;
    this.#free[this.#top++] = i;
  }
}
