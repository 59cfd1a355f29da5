/**
 * Round trip, jitter and loss of a stream of probes (authenticated pings), for `xvpn status`
 * and `xvpn ping`: what a player watches, measured at least once a second rather than read off
 * the 10 s keepalives. Sans-I/O: time comes in as `now` (monotonic ms).
 *
 * - RTT: smoothed as RFC 6298 (1/8 gain), plus the last, the minimum, and p50/p99 over the
 *   window of recent probes.
 * - Jitter: RFC 3550's estimator (1/16 gain on the difference between consecutive round
 *   trips), the figure VoIP and game overlays show.
 * - Loss: probes unanswered after {@link PROBE_LOST_AFTER_MS}, over the window; a late answer
 *   after that still counts as lost (for a game it is).
 *
 * @module
 */

/** A probe with no answer for this long is lost. */
export const PROBE_LOST_AFTER_MS = 2_000;

/** Probes whose send times are remembered while waiting for their answers. */
const OUTSTANDING = 8;

/** What {@link RttStats.report} gives (every time in ms, -1 when not measured yet). */
export interface RttReport {
  /** Smoothed round trip. */
  rttMs: number;
  /** The last answered probe's round trip. */
  lastMs: number;
  /** The smallest round trip seen. */
  minMs: number;
  /** Median and 99th percentile over the window. */
  p50Ms: number;
  p99Ms: number;
  /** RFC 3550 jitter. */
  jitterMs: number;
  /** Lost probes over the window, in percent of those resolved (0 when none resolved). */
  lossPct: number;
  /** Probes sent, answered and lost over the meter's whole life. */
  sent: number;
  answered: number;
  lost: number;
  /** The window's round trips, oldest first (-1: lost), for a sparkline. */
  recent: number[];
}

/** RTT, jitter and loss of one probe stream. */
export class RttStats {
  /** Outstanding probes: sequence numbers (0 = free slot) and send times. */
  readonly #seqs = new Uint32Array(OUTSTANDING);
  readonly #sentAt = new Float64Array(OUTSTANDING);
  /** The window: round trips of resolved probes (-1 lost), a ring. */
  readonly #window: Float32Array;
  #head = 0;
  #filled = 0;
  #srtt = -1;
  #last = -1;
  #min = Infinity;
  #jitter = 0;
  sent = 0;
  answered = 0;
  lost = 0;

  /** @param window how many resolved probes the percentiles and the loss figure cover */
  constructor(window = 60) {
    this.#window = new Float32Array(window);
  }

  /** Probe `seq` (non-zero) went out at `now`. */
  probeSent(seq: number, now: number): void {
    this.expire(now);
    this.sent++;
    // A free slot, or else the oldest probe's.
    let slot = 0;
    for (let i = 0; i < OUTSTANDING; i++) {
      if (this.#seqs[i] === 0) {
        slot = i;
        break;
      }
      if (this.#sentAt[i]! < this.#sentAt[slot]!) slot = i;
    }
    // A full ring forgets its oldest probe: that one counts as lost.
    if (this.#seqs[slot] !== 0) this.#resolve(-1);
    this.#seqs[slot] = seq >>> 0;
    this.#sentAt[slot] = now;
  }

  /** The answer to probe `seq` arrived at `now`; returns its round trip, or -1 for a probe not
   * outstanding (unknown, duplicate, or already given up on). */
  answer(seq: number, now: number): number {
    const s = seq >>> 0;
    if (s === 0) return -1;
    for (let i = 0; i < OUTSTANDING; i++) {
      if (this.#seqs[i] !== s) continue;
      this.#seqs[i] = 0;
      const rtt = Math.max(0, now - this.#sentAt[i]!);
      if (now - this.#sentAt[i]! > PROBE_LOST_AFTER_MS) {
        this.#resolve(-1);
        return -1;
      }
      this.answered++;
      if (this.#last >= 0) this.#jitter += (Math.abs(rtt - this.#last) - this.#jitter) / 16;
      this.#last = rtt;
      this.#srtt = this.#srtt < 0 ? rtt : this.#srtt + (rtt - this.#srtt) / 8;
      if (rtt < this.#min) this.#min = rtt;
      this.#resolve(rtt);
      return rtt;
    }
    return -1;
  }

  /** Gives up on probes older than {@link PROBE_LOST_AFTER_MS} (counted lost). */
  expire(now: number): void {
    for (let i = 0; i < OUTSTANDING; i++) {
      if (this.#seqs[i] !== 0 && now - this.#sentAt[i]! > PROBE_LOST_AFTER_MS) {
        this.#seqs[i] = 0;
        this.#resolve(-1);
      }
    }
  }

  #resolve(rtt: number): void {
    if (rtt < 0) this.lost++;
    this.#window[this.#head] = rtt;
    this.#head = (this.#head + 1) % this.#window.length;
    if (this.#filled < this.#window.length) this.#filled++;
  }

  /** The figures at `now` (probes overdue by then count as lost). */
  report(now: number): RttReport {
    this.expire(now);
    const n = this.#filled, w = this.#window;
    const recent: number[] = [];
    for (let k = 0; k < n; k++) {
      const v = w[(this.#head - n + k + w.length) % w.length]!;
      recent.push(v < 0 ? -1 : Math.round(v * 100) / 100);
    }
    const answered = recent.filter((v) => v >= 0).sort((a, b) => a - b);
    const pick = (q: number) =>
      answered.length
        ? answered[Math.min(answered.length - 1, Math.floor(q * answered.length))]!
        : -1;
    const r2 = (v: number) => Math.round(v * 100) / 100;
    return {
      rttMs: this.#srtt < 0 ? -1 : r2(this.#srtt),
      lastMs: r2(this.#last),
      minMs: this.#min === Infinity ? -1 : r2(this.#min),
      p50Ms: pick(0.5),
      p99Ms: pick(0.99),
      jitterMs: this.#last < 0 ? -1 : r2(this.#jitter),
      lossPct: n ? r2((100 * (n - answered.length)) / n) : 0,
      sent: this.sent,
      answered: this.answered,
      lost: this.lost,
      recent,
    };
  }
}
