/**
 * Made-up measurement results for the node-choice tests: an {@link RttReport} with a given median,
 * and a node's {@link NodeResult} (unreachable when no median is given).
 *
 * @module
 */
import type { RttReport } from "../../src/core/rtt_stats.ts";
import { type NodeResult, nodeScore } from "../../src/diag/nodes.ts";

/** An RTT report of `answered` probes with median `p50` (every figure the same). */
export function rttReport(p50: number, jitter = 0, loss = 0, answered = 10): RttReport {
  return {
    rttMs: p50,
    lastMs: p50,
    minMs: p50,
    p50Ms: p50,
    p99Ms: p50,
    jitterMs: jitter,
    lossPct: loss,
    sent: 10,
    answered,
    lost: 10 - answered,
    recent: [],
  };
}

/** Node `name` measured at `r`, or unreachable without it. */
export function nodeResult(name: string, r: RttReport | undefined): NodeResult {
  return r
    ? { name, endpoint: "x", reachable: true, handshakeMs: 1, rtt: r, score: nodeScore(r) }
    : {
      name,
      endpoint: "x",
      reachable: false,
      error: "down",
      handshakeMs: -1,
      rtt: rttReport(-1, -1, 100, 0),
      score: Infinity,
    };
}
