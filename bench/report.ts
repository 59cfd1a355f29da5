/**
 * Results of the tunnel benchmark: the per-peer record, the metrics compared, xvpn's ratios,
 * and the markdown table.
 *
 * @module
 */
import type { RttResult, TcpResult, UdpResult } from "./measure.ts";

/** Everything measured for one peer (metrics are absent when their step failed). */
export interface PeerResult {
  /** Peer id (`none`, `xvpn`, `wireguard`, `openvpn`). */
  id: string;
  /** Column title. */
  label: string;
  /** False when the tunnel could not be brought up; `reason` says why. */
  available: boolean;
  /** Why the peer is not available. */
  reason?: string;
  /** Client interface that traffic to the target leaves through. */
  clientDev?: string;
  /** TCP client -> target. */
  tcpUp?: TcpResult;
  /** TCP target -> client. */
  tcpDown?: TcpResult;
  /** UDP 64-byte datagrams client -> target. */
  udp64?: UdpResult;
  /** RTT with the tunnel idle. */
  idleRtt?: RttResult;
  /** RTT while one TCP stream saturates the tunnel; `loadMbps` is that stream's rate. */
  loadedRtt?: RttResult & { loadMbps: number };
  /** CPU seconds of all tunnel processes over the two TCP tests. */
  cpuSec?: number;
  /** Bytes moved by the two TCP tests. */
  bytesMoved?: number;
  /** `cpuSec` per 10^9 bytes moved. */
  cpuSecPerGB?: number;
  /** Peak RSS (VmHWM) of each tunnel process, KiB. */
  rss?: { role: string; hwmKiB: number }[];
  /** Steps that failed, with their errors. */
  errors?: string[];
}

/** A compared metric: how to read it from a result, its unit, and which way is better. */
interface Metric {
  key: string;
  title: string;
  better: "higher" | "lower";
  get: (r: PeerResult) => number | undefined;
}

/** Peak RSS of the tunnel process with `role`, MiB. */
const rssMiB = (role: string) => (r: PeerResult) => {
  const kib = r.rss?.find((p) => p.role === role)?.hwmKiB;
  return kib === undefined ? undefined : kib / 1024;
};

/** The metrics of the table, in order. */
export const METRICS: readonly Metric[] = [
  {
    key: "tcpUpMbps",
    title: "TCP client→target, Mbit/s",
    better: "higher",
    get: (r) => r.tcpUp?.mbps,
  },
  {
    key: "tcpDownMbps",
    title: "TCP target→client, Mbit/s",
    better: "higher",
    get: (r) => r.tcpDown?.mbps,
  },
  {
    key: "udp64Kpps",
    title: "UDP 64 B delivered, kpps",
    better: "higher",
    get: (r) => (r.udp64 ? r.udp64.pps / 1000 : undefined),
  },
  { key: "idleP50Ms", title: "idle RTT p50, ms", better: "lower", get: (r) => r.idleRtt?.p50 },
  { key: "idleP99Ms", title: "idle RTT p99, ms", better: "lower", get: (r) => r.idleRtt?.p99 },
  { key: "idleMaxMs", title: "idle RTT max, ms", better: "lower", get: (r) => r.idleRtt?.max },
  {
    key: "idleLossPct",
    title: "idle pings lost, %",
    better: "lower",
    get: (r) => r.idleRtt?.lossPercent,
  },
  {
    key: "loadedP50Ms",
    title: "loaded RTT p50, ms",
    better: "lower",
    get: (r) => r.loadedRtt?.p50,
  },
  {
    key: "loadedP99Ms",
    title: "loaded RTT p99, ms",
    better: "lower",
    get: (r) => r.loadedRtt?.p99,
  },
  {
    key: "loadedLossPct",
    title: "loaded pings lost, %",
    better: "lower",
    get: (r) => r.loadedRtt?.lossPercent,
  },
  {
    key: "loadMbps",
    title: "(load during loaded RTT, Mbit/s)",
    better: "higher",
    get: (r) => r.loadedRtt?.loadMbps,
  },
  { key: "cpuSecPerGB", title: "CPU s per GB (TCP)", better: "lower", get: (r) => r.cpuSecPerGB },
  { key: "clientRssMiB", title: "peak RSS client, MiB", better: "lower", get: rssMiB("client") },
  { key: "serverRssMiB", title: "peak RSS server, MiB", better: "lower", get: rssMiB("server") },
];

/** xvpn's value divided by each other peer's, per metric (only where both exist). */
export function ratios(results: readonly PeerResult[]): Record<string, Record<string, number>> {
  const x = results.find((r) => r.id === "xvpn" && r.available);
  const out: Record<string, Record<string, number>> = {};
  if (!x) return out;
  for (const peer of results) {
    if (peer.id === "xvpn" || !peer.available) continue;
    const row: Record<string, number> = {};
    for (const m of METRICS) {
      const a = m.get(x);
      const b = m.get(peer);
      if (a !== undefined && b !== undefined && b !== 0) row[m.key] = a / b;
    }
    out[peer.id] = row;
  }
  return out;
}

/** A number with about 3 significant digits (more for large values). */
export function fmt(v: number | undefined, digits = 3): string {
  if (v === undefined || !Number.isFinite(v)) return "—";
  if (v === 0) return "0";
  const mag = Math.floor(Math.log10(Math.abs(v)));
  return v.toFixed(Math.max(0, digits - 1 - mag));
}

/** The markdown table: one row per metric, one column per peer, then xvpn ÷ each peer. */
export function markdownTable(results: readonly PeerResult[]): string {
  const others = results.filter((r) => r.id !== "xvpn");
  const hasX = results.some((r) => r.id === "xvpn");
  const rat = ratios(results);
  const head = [
    "metric",
    ...results.map((r) => r.label),
    ...(hasX ? others.map((r) => `xvpn ÷ ${r.label}`) : []),
  ];
  const lines = [
    `| ${head.join(" | ")} |`,
    `| ${head.map((_, i) => (i ? "---:" : ":---")).join(" | ")} |`,
  ];
  for (const m of METRICS) {
    const cells = results.map((r) => (r.available ? fmt(m.get(r)) : "n/a"));
    const ratioCells = hasX ? others.map((r) => fmt(rat[r.id]?.[m.key], 2)) : [];
    const arrow = m.better === "higher" ? "↑" : "↓";
    lines.push(`| ${m.title} ${arrow} | ${[...cells, ...ratioCells].join(" | ")} |`);
  }
  const notes = results
    .filter((r) => !r.available)
    .map((r) => `- ${r.label}: not available: ${(r.reason ?? "").split("\n")[0]}`);
  const failed = results.flatMap((r) => (r.errors ?? []).map((e) => `- ${r.label}: ${e}`));
  return [...lines, ...(notes.length || failed.length ? ["", ...notes, ...failed] : [])].join(
    "\n",
  );
}
