/**
 * Seeded loss, duplication, reordering, delay and jitter for one direction of a link, as a pure
 * state machine (smoltcp's `phy/fault_injector.rs`): time comes in as `now`, what to deliver
 * and when comes out. The UDP relay of the root tests wraps it in sockets and timers; the
 * root-free harnesses (two cores, two data-plane loops) use it on their virtual clocks.
 *
 * Every decision for the n-th datagram comes from the injector's own seeded generator, a fixed
 * number of draws per datagram, so the same seed and the same traffic give the same fate to every
 * datagram, and a failure replays. Reordering holds a datagram until `holdPackets` later ones
 * have passed (then order does not depend on timing at all), or for `holdMs` when no later
 * traffic comes.
 *
 * @module
 */
import { seededRandom } from "./prng.ts";

/** Impairment of one direction. All optional; the default delivers at once and untouched. */
export interface Impairment {
  /** Base one-way delay, ms. */
  delayMs?: number;
  /** Uniform jitter added to the delay, ±ms (the sum is floored at 0; can reorder). */
  jitterMs?: number;
  /** Percentage of datagrams dropped. */
  lossPercent?: number;
  /** Percentage of datagrams sent twice. */
  duplicatePercent?: number;
  /** Percentage of datagrams held back so that later ones overtake them. */
  reorderPercent?: number;
  /** A held datagram is released after this many later datagrams passed (default 1). */
  holdPackets?: number;
  /** ...or after this long without enough later traffic, ms (default 50). */
  holdMs?: number;
}

/** Counters of one direction. */
export interface FaultStats {
  /** Datagrams pushed in. */
  received: number;
  /** Datagrams delivered (copies included). */
  sent: number;
  /** Datagrams dropped by `lossPercent`. */
  dropped: number;
  /** Extra copies made by `duplicatePercent`. */
  duplicated: number;
  /** Datagrams held back by `reorderPercent`. */
  held: number;
}

/** A datagram to deliver at `at` (ms, the same clock as `now`). */
export interface Delivery {
  at: number;
  data: Uint8Array;
}

interface Held {
  data: Uint8Array;
  copies: number;
  jitterDraw: number;
  left: number;
  until: number;
}

/** One direction's pipeline: loss -> hold (reorder) -> delay/jitter -> deliveries. */
export class FaultInjector {
  readonly stats: FaultStats = { received: 0, sent: 0, dropped: 0, duplicated: 0, held: 0 };
  readonly #rand: () => number;
  readonly #held: Held[] = [];

  constructor(seed: number, readonly imp: Impairment = {}) {
    this.#rand = seededRandom(seed);
  }

  /** A datagram enters at `now`: returns what that makes leave (it, held ones it overtook). */
  push(data: Uint8Array, now: number): Delivery[] {
    this.stats.received++;
    // Always four draws, so datagram n's fate depends only on n and the seed.
    const rLoss = this.#rand(), rDup = this.#rand(), rHold = this.#rand(), rJitter = this.#rand();
    const imp = this.imp;
    if (rLoss * 100 < (imp.lossPercent ?? 0)) {
      this.stats.dropped++;
      return [];
    }
    const copies = rDup * 100 < (imp.duplicatePercent ?? 0) ? 2 : 1;
    if (rHold * 100 < (imp.reorderPercent ?? 0)) {
      this.stats.held++;
      this.#held.push({
        data,
        copies,
        jitterDraw: rJitter,
        left: Math.max(1, imp.holdPackets ?? 1),
        until: now + (imp.holdMs ?? 50),
      });
      return [];
    }
    const out: Delivery[] = [];
    this.#emit(out, data, copies, rJitter, now);
    // This datagram overtook the held ones; release those that have waited long enough.
    for (const h of [...this.#held]) if (--h.left <= 0) this.#release(out, h, now);
    return out;
  }

  /** Held datagrams whose `holdMs` ran out by `now`. */
  expire(now: number): Delivery[] {
    const out: Delivery[] = [];
    for (const h of [...this.#held]) if (h.until <= now) this.#release(out, h, now);
    return out;
  }

  /** When {@link expire} next has something (Infinity: nothing held). */
  deadline(): number {
    let next = Infinity;
    for (const h of this.#held) next = Math.min(next, h.until);
    return next;
  }

  /** Forgets what is held. */
  clear(): void {
    this.#held.length = 0;
  }

  #release(out: Delivery[], h: Held, now: number): void {
    const i = this.#held.indexOf(h);
    if (i < 0) return;
    this.#held.splice(i, 1);
    this.#emit(out, h.data, h.copies, h.jitterDraw, now);
  }

  #emit(out: Delivery[], data: Uint8Array, copies: number, jitterDraw: number, now: number) {
    const jitter = this.imp.jitterMs ?? 0;
    const delay = Math.max(0, (this.imp.delayMs ?? 0) + (jitterDraw * 2 - 1) * jitter);
    for (let c = 0; c < copies; c++) {
      this.stats.sent++;
      if (c > 0) this.stats.duplicated++;
      out.push({ at: now + delay, data });
    }
  }
}
