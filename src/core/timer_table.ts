/**
 * One table of named deadlines per protocol core (quinn-proto's `connection/timer.rs`, boringtun's
 * `noise/timers.rs`): every action that needs something done later sets its own timer, the next
 * wake-up is the minimum over the table, and a timer that has fired is stopped or set again by
 * the code that handles it. Nothing computes "the next deadline" with a separate formula, and
 * nothing clamps a deadline into the future: a timer left in the past is a bug that the tests'
 * wake-up budgets catch, not something to hide.
 *
 * Deadlines are monotonic milliseconds, `Infinity` when stopped. The table is a Float64Array, so
 * setting a timer on the per-packet path is one store.
 *
 * @module
 */

/** Named timers of one core: a fixed number of slots, each a deadline or stopped. */
export class TimerTable {
  /** Deadlines by timer id (`Infinity` = stopped); exposed for one-store updates on hot paths. */
  readonly at: Float64Array;

  /** A table of `count` timers, all stopped. */
  constructor(readonly count: number) {
    this.at = new Float64Array(count).fill(Infinity);
  }

  /** Sets timer `id` to fire at `when` (monotonic ms). */
  set(id: number, when: number): void {
    this.at[id] = when;
  }

  /** Stops timer `id`. */
  stop(id: number): void {
    this.at[id] = Infinity;
  }

  /** The deadline of timer `id` (`Infinity` when stopped). */
  get(id: number): number {
    return this.at[id]!;
  }

  /** True when timer `id` is set. */
  isSet(id: number): boolean {
    return this.at[id] !== Infinity;
  }

  /** True when timer `id` is set and due at `now`; it stays set until its handler acts. */
  expired(id: number, now: number): boolean {
    return this.at[id]! <= now;
  }

  /** Stops every timer. */
  stopAll(): void {
    this.at.fill(Infinity);
  }

  /** The earliest deadline in the table (`Infinity` when every timer is stopped). */
  next(): number {
    const at = this.at;
    let min = Infinity;
    for (let i = 0; i < at.length; i++) if (at[i]! < min) min = at[i]!;
    return min;
  }

  /** The id of the earliest timer, or -1 when every timer is stopped (for tests and logs). */
  nextId(): number {
    const at = this.at;
    let id = -1;
    for (let i = 0; i < at.length; i++) if (at[i]! < (id < 0 ? Infinity : at[id]!)) id = i;
    return id;
  }
}
