/**
 * Multipath bookkeeping for the client (dual channel: Wi-Fi plus 4G/5G, two ISPs): which of its
 * paths to the server are alive, how far away and how lossy each is, and which ones carry the
 * traffic. Sans-I/O like the rest of `src/core/`: time comes in as `now`, nothing is sent here;
 * the client core sends the probes this decides on and feeds back their answers.
 *
 * Liveness: every path gets a probe (a flagged, sealed ping) every {@link PATH_PROBE_MS}, in
 * both modes, so a backup path is known to work before it is needed. A path goes down after
 * {@link PATH_DEAD_PROBES} probes in a row went unanswered (the last one given three smoothed
 * round trips, at least {@link PATH_PROBE_TIMEOUT_MIN_MS}, at most one probe interval), and up
 * again on the next answer.
 *
 * Modes (ZeroTier's `broadcast` and `active-backup` bonds are the nearest open precedent):
 * - `redundant`: every packet goes out on every live path; the receiver keeps the first copy
 *   and its replay window drops the others. Loss on one path is hidden by the other.
 * - `failover`: one active path. When it goes down, the most preferred live path (the earliest
 *   in the config) takes over at once; a more preferred path that comes back takes over again
 *   only after staying up for {@link PATH_FAILBACK_MS} (hysteresis against a flapping link).
 * Both modes keep an "active" path: in `redundant` it is the one whose probes may move the
 * server's idea of where the client is (PING_FLAG_ACTIVE).
 *
 * @module
 */
import { type RttReport, RttStats } from "./rtt_stats.ts";
import {
  PATH_DEAD_PROBES,
  PATH_FAILBACK_MS,
  PATH_LOSS_AFTER_MS,
  PATH_PROBE_MS,
  PATH_PROBE_TIMEOUT_MIN_MS,
} from "./timers.ts";

/** How several paths share the traffic. */
export const MULTIPATH_MODES = ["redundant", "failover"] as const;

/** One of {@link MULTIPATH_MODES}. */
export type MultipathMode = typeof MULTIPATH_MODES[number];

/** Most paths one client may use (the path index travels in 4 bits of the ping flags). */
export const MAX_PATHS = 8;

/** Probes remembered per path while waiting for their answers. */
const OUTSTANDING = 8;

/** A path's figures, for logs. */
export interface PathReport {
  /** Path index (0-based, config order). */
  index: number;
  /** Whether the path is considered alive. */
  up: boolean;
  /** Smoothed round trip of its probes (ms), or -1 before the first answer. */
  rttMs: number;
  /** Probes lost since the last report, in percent of those resolved (0 when none). */
  lossPct: number;
  /** Probes resolved (answered or given up on) since the last report. */
  probes: number;
}

/** A change worth telling the user about. */
export type PathChange =
  | { kind: "down"; path: number; reason: string }
  | { kind: "up"; path: number }
  | { kind: "switch"; path: number; from: number };

interface PathState {
  up: boolean;
  /** When the path last came up (-Infinity: up from the start). */
  upSinceMs: number;
  lastProbeMs: number;
  /** Probes sent since the last answer. */
  sinceAnswer: number;
  /** Smoothed RTT (RFC 6298 style, 1/8 gain), -1 before the first sample. */
  srttMs: number;
  /** Outstanding probes: sequence numbers and send times (ring; seq 0 = free). */
  seqs: number[];
  sentMs: number[];
  answered: number;
  lost: number;
  /** Round trip, jitter and loss over the recent probes, for `xvpn status`. */
  stats: RttStats;
}

/** Liveness, RTT, loss and path choice for a client with several paths. */
export class PathSet {
  /** Changes since the last drain (the client core turns them into events). */
  readonly changes: PathChange[] = [];
  /** Paths that carry data and control now, the active one first (replaced on change, never
   * mutated, so a holder of the old array is not surprised). */
  route: readonly number[];
  /** Incremented whenever {@link route} changes, so users can cache what they derive from it. */
  routeVersion = 0;

  readonly #p: PathState[];
  readonly #all: readonly number[];
  #active = 0;

  /** `count` paths (1..{@link MAX_PATHS}), all presumed up until their probes say otherwise. */
  constructor(readonly count: number, readonly mode: MultipathMode) {
    if (!Number.isInteger(count) || count < 1 || count > MAX_PATHS) {
      throw new RangeError(`a client has 1..${MAX_PATHS} paths, not ${count}`);
    }
    this.#p = Array.from({ length: count }, () => ({
      up: true,
      upSinceMs: -Infinity,
      lastProbeMs: -Infinity,
      sinceAnswer: 0,
      srttMs: -1,
      seqs: new Array<number>(OUTSTANDING).fill(0),
      sentMs: new Array<number>(OUTSTANDING).fill(0),
      answered: 0,
      lost: 0,
      stats: new RttStats(),
    }));
    this.#all = Array.from({ length: count }, (_, i) => i);
    this.route = this.#routeFor();
  }

  /** The active path: the one failover sends on, and whose probes carry PING_FLAG_ACTIVE. */
  get active(): number {
    return this.#active;
  }

  /** All path indexes, in preference order. */
  get all(): readonly number[] {
    return this.#all;
  }

  /** True when path `i` is considered alive. */
  isUp(i: number): boolean {
    return this.#p[i]!.up;
  }

  /** True when at least one path is alive. */
  get anyUp(): boolean {
    return this.#p.some((p) => p.up);
  }

  /** Smoothed RTT of path `i` (ms), -1 before the first answer. */
  rttMs(i: number): number {
    return this.#p[i]!.srttMs;
  }

  /** Path `i`'s round trip, jitter and loss over its recent probes, at `now`. */
  status(i: number, now: number): RttReport {
    return this.#p[i]!.stats.report(now);
  }

  /** True when path `i` should get a probe now. */
  probeDue(i: number, now: number): boolean {
    return now - this.#p[i]!.lastProbeMs >= PATH_PROBE_MS;
  }

  /** Records that probe `seq` (non-zero) went out on path `i`. */
  probeSent(i: number, seq: number, now: number): void {
    const p = this.#p[i]!;
    p.lastProbeMs = now;
    p.sinceAnswer++;
    p.stats.probeSent(seq, now);
    // The oldest slot makes room; whatever it held counts as lost.
    let slot = 0;
    for (let k = 0; k < OUTSTANDING; k++) {
      if (p.seqs[k] === 0) {
        slot = k;
        break;
      }
      if (p.sentMs[k]! < p.sentMs[slot]!) slot = k;
    }
    if (p.seqs[slot] !== 0) p.lost++;
    p.seqs[slot] = seq;
    p.sentMs[slot] = now;
  }

  /**
   * Records the answer to probe `seq` on path `i`. `echoRttMs` is the RTT from the echoed
   * clock, used when the probe is no longer remembered (a very late answer). Any answer, however
   * late, proves the path alive.
   */
  pongReceived(i: number, seq: number, echoRttMs: number, now: number): void {
    const p = this.#p[i];
    if (!p) return;
    let rtt = echoRttMs;
    p.stats.answer(seq, now);
    for (let k = 0; k < OUTSTANDING; k++) {
      if (p.seqs[k] === seq && seq !== 0) {
        rtt = now - p.sentMs[k]!;
        p.seqs[k] = 0;
        p.answered++;
        break;
      }
    }
    if (rtt >= 0) p.srttMs = p.srttMs < 0 ? rtt : p.srttMs + (rtt - p.srttMs) / 8;
    p.sinceAnswer = 0;
    if (!p.up) {
      p.up = true;
      p.upSinceMs = now;
      this.changes.push({ kind: "up", path: i });
    }
    this.#select(now);
  }

  /** How long path `i`'s last probe is given before it counts as unanswered. */
  #timeout(p: PathState): number {
    if (p.srttMs < 0) return PATH_PROBE_MS;
    return Math.min(PATH_PROBE_MS, Math.max(PATH_PROBE_TIMEOUT_MIN_MS, 3 * p.srttMs));
  }

  /** Declares silent paths down, counts lost probes, picks the active path. Returns the next
   * time something here is due (see {@link deadline}). */
  tick(now: number): number {
    for (let i = 0; i < this.count; i++) {
      const p = this.#p[i]!;
      for (let k = 0; k < OUTSTANDING; k++) {
        if (p.seqs[k] !== 0 && now - p.sentMs[k]! >= PATH_LOSS_AFTER_MS) {
          p.seqs[k] = 0;
          p.lost++;
        }
      }
      if (p.up && p.sinceAnswer >= PATH_DEAD_PROBES && now - p.lastProbeMs >= this.#timeout(p)) {
        p.up = false;
        this.changes.push({ kind: "down", path: i, reason: `${p.sinceAnswer} probes unanswered` });
      }
    }
    this.#select(now);
    return this.deadline();
  }

  /** The next time a probe, a probe timeout, a loss count or a failback is due (call after
   * sending the probes that were due, so that it lies ahead). */
  deadline(): number {
    let next = Infinity;
    for (const p of this.#p) {
      for (let k = 0; k < OUTSTANDING; k++) {
        if (p.seqs[k] !== 0) next = Math.min(next, p.sentMs[k]! + PATH_LOSS_AFTER_MS);
      }
      if (p.up && p.sinceAnswer >= PATH_DEAD_PROBES) {
        next = Math.min(next, p.lastProbeMs + this.#timeout(p));
      }
      next = Math.min(next, p.lastProbeMs + PATH_PROBE_MS);
    }
    const pref = this.#preferred();
    if (pref >= 0 && pref < this.#active) {
      next = Math.min(next, this.#p[pref]!.upSinceMs + PATH_FAILBACK_MS);
    }
    return next;
  }

  /** The most preferred live path, or -1. */
  #preferred(): number {
    for (let i = 0; i < this.count; i++) if (this.#p[i]!.up) return i;
    return -1;
  }

  #select(now: number): void {
    const pref = this.#preferred();
    const was = this.#active;
    if (pref >= 0) {
      const active = this.#p[was]!;
      if (!active.up) this.#active = pref;
      else if (pref < was && now - this.#p[pref]!.upSinceMs >= PATH_FAILBACK_MS) {
        this.#active = pref;
      }
    }
    if (this.#active !== was) this.changes.push({ kind: "switch", path: this.#active, from: was });
    const route = this.#routeFor();
    if (route.length !== this.route.length || route.some((r, k) => r !== this.route[k])) {
      this.route = route;
      this.routeVersion++;
    }
  }

  /** Failover: the active path. Redundant: every live path, the active one first. With no path
   * alive, all of them: one may work again, and there is nothing to lose by trying. */
  #routeFor(): readonly number[] {
    if (!this.anyUp) return [this.#active, ...this.#all.filter((i) => i !== this.#active)];
    if (this.mode === "failover") return [this.#active];
    return [this.#active, ...this.#all.filter((i) => i !== this.#active && this.#p[i]!.up)];
  }

  /** Figures of every path. With `reset`, the loss counts start over (periodic reports). */
  report(reset = false): PathReport[] {
    return this.#p.map((p, index) => {
      const probes = p.answered + p.lost;
      const r: PathReport = {
        index,
        up: p.up,
        rttMs: p.srttMs < 0 ? -1 : Math.round(p.srttMs * 10) / 10,
        lossPct: probes ? Math.round(p.lost / probes * 1000) / 10 : 0,
        probes,
      };
      if (reset) p.answered = p.lost = 0;
      return r;
    });
  }
}
