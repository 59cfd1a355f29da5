/**
 * The path-MTU search of `xvpn diag mtu`, free of I/O: it asks a {@link Prober} whether a UDP
 * payload of some size reaches the server and reads the answers. The real prober
 * (`prober.ts`) sends sealed probes with DF set; the unit tests use a scripted one.
 *
 * How the search reasons:
 *
 * - A size counts as passing when the server acknowledged it. A size counts as too big only
 *   after `tries` probes of it all went unanswered, so a lossy path does not talk the result
 *   down (one lost probe out of three tries is just loss).
 * - When the kernel refuses a send with EMSGSIZE, or an ICMP "fragmentation needed" arrives for
 *   a probe, the prober reports the path MTU the kernel now knows. That size is too big at once
 *   (retrying cannot change the kernel's mind), and the reported MTU is tried next: normally it
 *   passes, and the search is over after a handful of probes.
 * - Otherwise it is a binary search between the largest size known to pass and the smallest
 *   known to fail. It starts with the largest size the local device allows (the common case,
 *   a clean 1500-byte path, takes one probe) after a 548-byte probe (576-byte path MTU, which
 *   every IPv4 path must carry) has shown the server answers probes at all.
 * - The size just above the result, when it vanished rather than being refused, gets a second
 *   round of `tries` probes before it is believed: on a lossy path an unlucky size would
 *   otherwise end the search too low.
 * - Sizes above the result that vanished on every try, with no ICMP and no EMSGSIZE telling
 *   why, make a PMTU black hole.
 *
 * @module
 */
import { MIN_PATH_MTU, pathMtuOfPayload, payloadOfPathMtu } from "../core/mtu.ts";

/** What one probe of a size came to. */
export type ProbeOutcome =
  /** The server acknowledged it: it received `received` bytes; its TUN MTU is `serverMtu`. */
  | { kind: "ack"; received: number; serverMtu: number; rttMs: number }
  /** No answer within the probe timeout. */
  | { kind: "timeout" }
  /**
   * The kernel refused the size: EMSGSIZE on send (`via: "emsgsize"`), or an ICMP
   * "fragmentation needed" arrived for it (`via: "icmp"`); `pmtu` is the path MTU the kernel
   * knows now (`IP_MTU`).
   */
  | { kind: "too_big"; pmtu: number; via: "emsgsize" | "icmp" };

/** Sends probes of a given UDP payload size; see {@link ProbeOutcome}. */
export interface Prober {
  /** Probes once with a UDP payload of `size` bytes and waits for the answer (or a timeout). */
  probe(size: number): Promise<ProbeOutcome>;
}

/** Parameters of {@link searchPathMtu}. */
export interface SearchOptions {
  /** Largest UDP payload the local side can send: the kernel's path MTU at start - 28. */
  maxPayload: number;
  /**
   * The local device's MTU (or the kernel's PMTU at start): a too-big report below it came from
   * the network, not from the local device limit.
   */
  localMtu: number;
  /** Probes of one size before it counts as too big (default 3). */
  tries?: number;
  /** The first, small probe (default 548: a 576-byte path MTU, which every path carries). */
  minPayload?: number;
  /** IP + UDP header bytes: 28 (IPv4, default) or 48 (IPv6). */
  headers?: number;
}

/** One size the search tried, and what it found. */
export interface SearchStep {
  /** UDP payload bytes. */
  size: number;
  /** `pass`: acknowledged; `lost`: unanswered on every try; `too_big`: the kernel refused. */
  result: "pass" | "lost" | "too_big";
  /** Probes sent for this size. */
  tries: number;
  /** For `too_big`: the path MTU the kernel reported, and how it learned it. */
  pmtu?: number;
  /** For `too_big`: EMSGSIZE on send, or an ICMP error on the socket. */
  via?: "emsgsize" | "icmp";
}

/** What {@link searchPathMtu} found. */
export interface SearchResult {
  /** Largest UDP payload acknowledged, or undefined when not even the first probe was. */
  largestPayload: number | undefined;
  /** largestPayload + 28, or undefined. */
  pathMtu: number | undefined;
  /** The server's TUN MTU from the acknowledgements (undefined when none came). */
  serverMtu: number | undefined;
  /**
   * The smallest path MTU below `localMtu` reported through too-big (EMSGSIZE or ICMP): what
   * the network said via ICMP "fragmentation needed". Undefined when the network said nothing.
   */
  reportedMtu: number | undefined;
  /** Whether an ICMP error for a probe arrived during the search (not only a cached value). */
  icmpSeen: boolean;
  /** The smallest size above the result that vanished on every try without any ICMP. */
  silentPayload: number | undefined;
  /**
   * A PMTU black hole: a size the network should carry by everything it reported, and larger
   * than what passed, vanished on every try without ICMP or EMSGSIZE.
   */
  blackHole: boolean;
  /** The sizes tried, in order. */
  steps: SearchStep[];
  /** Probes sent in total. */
  probes: number;
  /** Probes that went unanswered on sizes that passed on a later try: loss, not size. */
  lostRetried: number;
  /** Round trip of the fastest acknowledged probe, ms. */
  bestRttMs: number | undefined;
  /** Probes of one size before it counted as too big. */
  tries: number;
}

/** Default probes per size. */
export const DEFAULT_TRIES = 3;
/** How often a vanished boundary size is probed again before it is believed (see below). */
const MAX_RECHECKS = 3;

/** Finds the largest UDP payload that reaches the server; see the module docs. */
export async function searchPathMtu(prober: Prober, opts: SearchOptions): Promise<SearchResult> {
  const tries = Math.max(1, opts.tries ?? DEFAULT_TRIES);
  const h = opts.headers ?? 28;
  const steps: SearchStep[] = [];
  let probes = 0;
  let lostRetried = 0;
  let serverMtu: number | undefined;
  let reportedMtu: number | undefined;
  let icmpSeen = false;
  let bestRttMs: number | undefined;

  const trySize = async (size: number): Promise<SearchStep> => {
    let lost = 0;
    for (let t = 1; t <= tries; t++) {
      probes++;
      const o = await prober.probe(size);
      if (o.kind === "ack") {
        lostRetried += lost;
        serverMtu = o.serverMtu;
        bestRttMs = bestRttMs === undefined ? o.rttMs : Math.min(bestRttMs, o.rttMs);
        return push({ size, result: "pass", tries: t });
      }
      if (o.kind === "too_big") {
        if (o.via === "icmp") icmpSeen = true;
        if (o.pmtu < opts.localMtu) {
          reportedMtu = reportedMtu === undefined ? o.pmtu : Math.min(reportedMtu, o.pmtu);
        }
        return push({ size, result: "too_big", tries: t, pmtu: o.pmtu, via: o.via });
      }
      lost++;
    }
    return push({ size, result: "lost", tries });
  };
  const push = (s: SearchStep) => (steps.push(s), s);

  const result = (largest: number | undefined): SearchResult => {
    const silent = steps.filter((s) => s.result === "lost" && (largest ?? 0) < s.size)
      .map((s) => s.size);
    const silentPayload = silent.length ? Math.min(...silent) : undefined;
    const blackHole = largest !== undefined && silentPayload !== undefined &&
      (reportedMtu === undefined || pathMtuOfPayload(silentPayload, h) <= reportedMtu);
    return {
      largestPayload: largest,
      pathMtu: largest === undefined ? undefined : pathMtuOfPayload(largest, h),
      serverMtu,
      reportedMtu,
      icmpSeen,
      silentPayload,
      blackHole,
      steps,
      probes,
      lostRetried,
      bestRttMs,
      tries,
    };
  };

  const min = Math.min(opts.minPayload ?? payloadOfPathMtu(MIN_PATH_MTU, h), opts.maxPayload);
  if ((await trySize(min)).result !== "pass") return result(undefined);

  let lo = min; // largest size known to pass
  let hi = opts.maxPayload; // largest size not yet known to fail
  let next: number | undefined = hi;
  for (let rechecks = 0;; rechecks++) {
    while (lo < hi) {
      const size = next ?? Math.ceil((lo + hi) / 2);
      next = undefined;
      const s = await trySize(size);
      if (s.result === "pass") {
        lo = size;
        continue;
      }
      hi = size - 1;
      if (s.pmtu !== undefined) {
        // The kernel knows a limit now: nothing above it can be sent, and it is the likeliest
        // answer, so try it exactly.
        const hint = payloadOfPathMtu(s.pmtu, h);
        if (hint < hi) hi = hint;
        if (hint > lo && hint <= hi) next = hint;
      }
    }
    // The size just above the result vanished `tries` times. That is the black-hole signature,
    // but also what bad luck on a lossy path looks like: try it once more (another `tries`
    // probes) before believing it. If it passes now, the search goes on above it.
    const boundary = lo + 1;
    const last = steps.findLast((s) => s.size === boundary);
    if (last?.result !== "lost" || rechecks >= MAX_RECHECKS) break;
    if ((await trySize(boundary)).result !== "pass") break;
    lo = boundary;
    hi = Math.min(
      opts.maxPayload,
      ...steps.filter((s) => s.result !== "pass" && s.size > lo).map((s) => s.size - 1),
    );
  }
  return result(lo);
}
