/**
 * Measurements shared by every tunnel peer of the benchmark: iperf3 TCP throughput and UDP
 * small-packet rate, ping RTT percentiles, and CPU time / peak RSS of processes from /proc.
 *
 * All traffic runs between the benchmark's own namespaces (client -> target).
 *
 * @module
 */
import type { Topology } from "../src/demo/topology.ts";

/** TCP throughput of one iperf3 stream. */
export interface TcpResult {
  /** Receiver-side goodput, Mbit/s. */
  mbps: number;
  /** Bytes received. */
  bytes: number;
  /** TCP retransmissions seen by the sender. */
  retransmits: number;
}

/** UDP small-packet rate. */
export interface UdpResult {
  /** Datagrams delivered per second (sent minus lost, over the test time). */
  pps: number;
  /** Datagrams sent. */
  sent: number;
  /** Datagrams lost. */
  lost: number;
  /** Payload bytes per datagram. */
  payload: number;
}

/** RTT distribution of a ping run. */
export interface RttResult {
  /** Median, ms. */
  p50: number;
  /** 99th percentile, ms. */
  p99: number;
  /** Maximum, ms. */
  max: number;
  /** Share of probes without a reply, percent. */
  lossPercent: number;
  /** Probes sent. */
  count: number;
}

/** CPU time and peak memory of one process. */
export interface ProcSample {
  /** user + system CPU seconds so far. */
  cpuSec: number;
  /** Peak resident set size (VmHWM), KiB. */
  hwmKiB: number;
}

const IPERF_PORT = 5201;
const CLK_TCK = 100; // USER_HZ: fixed at 100 on Linux for /proc/<pid>/stat

/** The value at quantile `q` (0..1) of ascending `sorted`, nearest-rank. */
export function percentile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

/** CPU seconds and VmHWM of `pid`, from /proc. */
export async function procSample(pid: number): Promise<ProcSample> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  // Fields after the command name, which may itself contain spaces: utime is field 14.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const cpuSec = (Number(f[11]) + Number(f[12])) / CLK_TCK;
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const hwm = /^VmHWM:\s+(\d+) kB/m.exec(status);
  return { cpuSec, hwmKiB: hwm ? Number(hwm[1]) : NaN };
}

/** Starts an iperf3 server on the target host; `topology.destroy()` stops it. */
export function startIperfServer(topo: Topology, host: string): Deno.ChildProcess {
  return topo.spawn(host, ["iperf3", "-s", "-p", String(IPERF_PORT)]);
}

interface IperfJson {
  error?: string;
  end?: {
    sum_received?: { bytes: number; bits_per_second: number; seconds: number };
    sum_sent?: { retransmits?: number };
    sum?: { packets: number; lost_packets: number; seconds: number };
  };
}

/**
 * Runs an iperf3 client; retries while the server is not yet listening or still busy with the
 * previous test (it serves one test at a time).
 */
async function iperf(topo: Topology, host: string, args: string[]): Promise<IperfJson> {
  let last = "";
  for (let attempt = 0; attempt < 20; attempt++) {
    const r = await topo.exec(host, ["iperf3", "-J", "--connect-timeout", "3000", ...args], {
      allowFailure: true,
      timeoutMs: 120_000,
    });
    let json: IperfJson;
    try {
      json = JSON.parse(r.stdout) as IperfJson;
    } catch {
      throw new Error(`iperf3 ${args.join(" ")}: no JSON (exit ${r.code}): ${r.stderr.trim()}`);
    }
    if (!json.error) return json;
    last = json.error;
    if (!/busy|connect|refused/i.test(json.error)) break;
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error(`iperf3 ${args.join(" ")}: ${last}`);
}

/**
 * One TCP stream from `host` to `target` (or back, with `reverse`) for `seconds`; `cc` sets the
 * congestion control on the data socket (`-C`, on the sending side also with `-R`): the
 * namespaces default to BBR, most downloads a player meets use cubic.
 */
export async function tcpThroughput(
  topo: Topology,
  host: string,
  target: string,
  seconds: number,
  reverse = false,
  cc?: string,
): Promise<TcpResult> {
  // No -O (omit): CPU time is sampled around the whole run, so all its bytes must count.
  const args = ["-c", target, "-p", String(IPERF_PORT), "-t", String(seconds)];
  if (cc) args.push("-C", cc);
  const j = await iperf(topo, host, reverse ? [...args, "-R"] : args);
  const rx = j.end?.sum_received;
  if (!rx) throw new Error("iperf3 TCP result has no end.sum_received");
  return {
    mbps: rx.bits_per_second / 1e6,
    bytes: rx.bytes,
    retransmits: j.end?.sum_sent?.retransmits ?? 0,
  };
}

/** UDP datagrams of `payload` bytes, unlimited rate, for `seconds`; delivered per second. */
export async function udpSmallPackets(
  topo: Topology,
  host: string,
  target: string,
  seconds: number,
  payload = 64,
): Promise<UdpResult> {
  const j = await iperf(topo, host, [
    ...["-c", target, "-p", String(IPERF_PORT), "-u", "-b", "0"],
    ...["-l", String(payload), "-t", String(seconds)],
  ]);
  const sum = j.end?.sum;
  if (!sum) throw new Error("iperf3 UDP result has no end.sum");
  const delivered = Math.max(0, sum.packets - sum.lost_packets);
  return { pps: delivered / sum.seconds, sent: sum.packets, lost: sum.lost_packets, payload };
}

/** `count` pings from `host` to `target`, `intervalMs` apart; per-probe RTT percentiles. */
export async function pingRtt(
  topo: Topology,
  host: string,
  target: string,
  count: number,
  intervalMs = 10,
): Promise<RttResult> {
  const deadline = Math.ceil((count * intervalMs) / 1000) + 5;
  const r = await topo.exec(host, [
    ...["ping", "-n", "-c", String(count), "-i", String(intervalMs / 1000)],
    ...["-W", "1", "-w", String(deadline), target],
  ], { allowFailure: true }); // exit 1 when some replies are missing; loss is reported instead
  const times = [...r.stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  if (!times.length) throw new Error(`no ping replies from ${target}: ${r.stdout}${r.stderr}`);
  times.sort((a, b) => a - b);
  const sent = Number(/(\d+) packets transmitted/.exec(r.stdout)?.[1] ?? count);
  const received = Number(/(\d+) received/.exec(r.stdout)?.[1] ?? times.length);
  return {
    p50: percentile(times, 0.5),
    p99: percentile(times, 0.99),
    max: times[times.length - 1]!,
    lossPercent: sent ? (100 * (sent - received)) / sent : 0,
    count: sent,
  };
}

/** Pings `target` while one TCP stream saturates the path in the same direction. */
export async function loadedRtt(
  topo: Topology,
  host: string,
  target: string,
  count: number,
  intervalMs = 10,
): Promise<RttResult & { loadMbps: number }> {
  const pingSeconds = (count * intervalMs) / 1000;
  const load = tcpThroughput(topo, host, target, Math.ceil(pingSeconds) + 2);
  await new Promise((res) => setTimeout(res, 1000)); // let the stream fill the queues first
  const rtt = await pingRtt(topo, host, target, count, intervalMs);
  const tcp = await load;
  return { ...rtt, loadMbps: tcp.mbps };
}
