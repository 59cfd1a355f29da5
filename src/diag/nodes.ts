/**
 * Round trip, jitter and loss to several nodes at once (`xvpn ping`, and `connect` choosing
 * its node): one diagnostic session per node (no address taken, a running tunnel with the same
 * key is not disturbed), each sending authenticated pings at a fixed interval and timing the
 * answers. The nodes are measured side by side, so a busy moment of this machine hits them all
 * alike.
 *
 * @module
 */
import { ClientCore } from "../core/client.ts";
import { PacketBuf } from "../core/packet.ts";
import type { RttReport } from "../core/rtt_stats.ts";
import { PROBE_LOST_AFTER_MS } from "../core/rtt_stats.ts";
import { loadAead } from "../crypto/aead.ts";
import { bestX25519 } from "../crypto/x25519.ts";
import { errnoName } from "../io/_libc.ts";
import { resolveHost } from "../io/resolve.ts";
import { PmtuSocket } from "../io/udp/pmtu.ts";

/** A node to measure. */
export interface NodeTarget {
  name: string;
  region?: string;
  host: string;
  port: number;
  publicKey: Uint8Array;
}

/** One node's figures. */
export interface NodeResult {
  name: string;
  region?: string;
  /** `address:port` as resolved (or the host as given, when it did not resolve). */
  endpoint: string;
  /** Handshake completed and at least one ping answered. */
  reachable: boolean;
  /** Why not, when not. */
  error?: string;
  /** The diagnostic handshake's round trip (ms), -1 without one. */
  handshakeMs: number;
  rtt: RttReport;
  /** Loss-penalized RTT, lower is better; Infinity when unreachable (see {@link nodeScore}). */
  score: number;
}

/** How a measurement runs. */
export interface PingOptions {
  /** The client's private key (one the nodes accept). */
  privateKey: Uint8Array;
  /** Pings per node (default 10). */
  count?: number;
  /** Between pings (ms, default 200). */
  intervalMs?: number;
  /** Give up on a handshake after (ms, default 3000). */
  handshakeTimeoutMs?: number;
}

/**
 * The figure nodes are ranked by: the median RTT, plus twice the jitter (a jittery node's
 * packets arrive late as often as not), plus 10 ms per percent of loss (a lost game packet
 * costs more than a few ms of delay). Infinity for a node that answered nothing.
 */
export function nodeScore(r: RttReport): number {
  if (r.answered === 0 || r.p50Ms < 0) return Infinity;
  return r.p50Ms + 2 * Math.max(0, r.jitterMs) + 10 * r.lossPct;
}

/** Measures every node at once; the results come in the nodes' order. */
export async function pingNodes(nodes: NodeTarget[], opts: PingOptions): Promise<NodeResult[]> {
  const aead = await loadAead("auto");
  return await Promise.all(nodes.map((n) => pingOne(n, opts, aead)));
}

async function pingOne(
  n: NodeTarget,
  opts: PingOptions,
  aead: Awaited<ReturnType<typeof loadAead>>,
): Promise<NodeResult> {
  const count = opts.count ?? 10;
  const intervalMs = opts.intervalMs ?? 200;
  const base = { name: n.name, ...(n.region ? { region: n.region } : {}) };
  let host: string;
  try {
    host = await resolveHost(n.host);
  } catch (err) {
    return failed(base, n.host + ":" + n.port, (err as Error).message);
  }
  const endpoint = `${host.includes(":") ? `[${host}]` : host}:${n.port}`;
  let sock: PmtuSocket;
  try {
    // Pings are small: DF (set) never matters for them, and no cached path MTU stops one.
    sock = PmtuSocket.open(host, n.port, "probe");
  } catch (err) {
    return failed(base, endpoint, `cannot open a UDP socket: ${(err as Error).message}`);
  }
  const core = new ClientCore({
    privateKey: opts.privateKey,
    serverPublicKey: n.publicKey,
    aead,
    dh: bestX25519(),
    diag: true,
    probeMs: intervalMs,
  });
  const rx = new Uint8Array(65536);
  const out = new Uint8Array(65536);
  let sendError = "";
  const flush = () => {
    for (const d of core.outbox.splice(0)) {
      const e = sock.send(d);
      if (e !== 0) sendError = errnoName(e);
    }
    core.events.splice(0);
  };
  try {
    const t0 = performance.now();
    core.start(t0, Date.now());
    flush();
    const hsDeadline = t0 + (opts.handshakeTimeoutMs ?? 3000);
    let handshakeMs = -1;
    let lastSent = Infinity;
    for (;;) {
      const now = performance.now();
      if (handshakeMs < 0 && core.ready) handshakeMs = now - t0;
      if (handshakeMs < 0 && now >= hsDeadline) {
        return failed(
          base,
          endpoint,
          sendError
            ? `cannot send to it: ${sendError}`
            : `no answer to the handshake within ${Math.round(now - t0)} ms (down, UDP blocked, ` +
              `or it does not accept this client's key)`,
        );
      }
      if (core.rtt.sent >= count && lastSent === Infinity) lastSent = now;
      // After the last ping, wait for its answer (at most the loss limit), then report.
      const outstanding = core.rtt.sent - core.rtt.answered - core.rtt.lost;
      if (lastSent !== Infinity && (outstanding <= 0 || now - lastSent > PROBE_LOST_AFTER_MS)) {
        break;
      }
      // The last ping goes out at `count`; no more after it.
      const due = core.rtt.sent >= count ? Infinity : core.deadline();
      const until = Math.min(due, handshakeMs < 0 ? hsDeadline : lastSent + PROBE_LOST_AFTER_MS);
      const r = await sock.receive(rx, Math.max(1, Math.min(250, until - now)));
      const t = performance.now();
      if (r.kind === "datagram") {
        core.receive(t, new PacketBuf(rx.subarray(0, r.length), r.length), out);
      }
      if (core.rtt.sent < count) core.tick(t, Date.now());
      flush();
    }
    const rtt = core.rtt.report(performance.now() + PROBE_LOST_AFTER_MS + 1);
    return {
      ...base,
      endpoint,
      reachable: rtt.answered > 0,
      ...(rtt.answered > 0 ? {} : { error: "the handshake completed, but no ping was answered" }),
      handshakeMs: Math.round(handshakeMs * 100) / 100,
      rtt,
      score: nodeScore(rtt),
    };
  } finally {
    try {
      core.close();
      flush();
    } finally {
      sock.close();
    }
  }
}

function failed(
  base: { name: string; region?: string },
  endpoint: string,
  error: string,
): NodeResult {
  const rtt: RttReport = {
    rttMs: -1,
    lastMs: -1,
    minMs: -1,
    p50Ms: -1,
    p99Ms: -1,
    jitterMs: -1,
    lossPct: 100,
    sent: 0,
    answered: 0,
    lost: 0,
    recent: [],
  };
  return { ...base, endpoint, reachable: false, error, handshakeMs: -1, rtt, score: Infinity };
}

/**
 * The node to use from `results`: the best score, or undefined when none is reachable. `current`
 * (a node in use) is kept unless another is better by the margin Tailscale uses for its DERP
 * choice: at least `minGainMs` (10 ms) faster and below `ratio` (2/3) of the current score.
 */
export function chooseNode(
  results: NodeResult[],
  current?: string,
  minGainMs = 10,
  ratio = 2 / 3,
): NodeResult | undefined {
  const ok = results.filter((r) => r.reachable).sort((a, b) => a.score - b.score);
  const best = ok[0];
  if (!best || current === undefined) return best;
  const cur = results.find((r) => r.name === current);
  if (!cur || !cur.reachable) return best;
  if (best.name === cur.name) return cur;
  return cur.score - best.score >= minGainMs && best.score < ratio * cur.score ? best : cur;
}
