/**
 * Side-by-side tunnel benchmark: no tunnel, xvpn, wireguard-go and OpenVPN, one after the other
 * in the same run, each in fresh namespaces (client -- server -- target, bench/net.ts) with the
 * same tunnel MTU, measured by the same code (bench/measure.ts):
 *
 * 1. TCP throughput, one iperf3 stream each way;
 * 2. UDP 64-byte datagrams at unlimited rate, delivered per second;
 * 3. idle RTT, 10 ms pings, p50/p99/max;
 * 4. RTT while a TCP stream saturates the tunnel;
 * 5. CPU seconds per GB moved and peak RSS of the tunnel processes.
 *
 * xvpn also runs with its client on the Windows data path over the fake wintun (`xvpn-win`):
 * not a Windows figure, the cost of that code against the Linux Worker on the same machine.
 *
 * Usage (root): `deno run -A bench/tunnel.ts [--only none,xvpn,xvpn-win,wireguard,openvpn]
 * [--duration 10] [--quick]`. Prints a markdown table and writes
 * `bench/results/<timestamp>.json` and `bench/results/latest.json`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ProcessRunner } from "../src/io/command.ts";
import { sweepStale } from "../src/demo/owner.ts";
import { installTools, missingTools } from "../tests/lab/tools.ts";
import {
  loadedRtt,
  pingRtt,
  procSample,
  startIperfServer,
  tcpThroughput,
  udpSmallPackets,
} from "./measure.ts";
import { BENCH_PREFIX, createBenchNet } from "./net.ts";
import { ALL_PEERS } from "./peers/all.ts";
import type { RunningTunnel, TunnelPeer } from "./peers/types.ts";
import { markdownTable, type PeerResult, ratios } from "./report.ts";

/** The tunnel MTU every peer uses. */
const MTU = 1420;

/** How long each measurement runs. */
interface Settings {
  /** Seconds per iperf3 test. */
  durationSec: number;
  /** Pings per RTT test. */
  pings: number;
  /** Ping interval, ms. */
  pingIntervalMs: number;
  /** Tunnel MTU. */
  mtu: number;
  /** Whether `--quick` was given. */
  quick: boolean;
}

const log = (msg: string) => console.error(`[bench] ${msg}`);

function settingsFrom(args: string[]): { settings: Settings; only: TunnelPeer[] } {
  const { values } = parseArgs({
    args,
    options: {
      only: { type: "string" },
      duration: { type: "string" },
      quick: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(
      "usage: deno run -A bench/tunnel.ts [--only none,xvpn,xvpn-win,wireguard,openvpn] " +
        "[--duration SECONDS] [--quick]",
    );
    Deno.exit(0);
  }
  const quick = values.quick ?? false;
  const durationSec = Number(values.duration ?? (quick ? 2 : 10));
  if (!(durationSec >= 1 && durationSec <= 60)) throw new Error("--duration wants 1..60 seconds");
  const ids = values.only?.split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = ids?.filter((id) => !ALL_PEERS.some((p) => p.id === id)) ?? [];
  if (unknown.length) {
    throw new Error(`--only: unknown ${unknown.join(", ")}; know ${ALL_PEERS.map((p) => p.id)}`);
  }
  return {
    settings: { durationSec, pings: quick ? 200 : 1000, pingIntervalMs: 10, mtu: MTU, quick },
    only: ids ? ALL_PEERS.filter((p) => ids.includes(p.id)) : [...ALL_PEERS],
  };
}

/** Runs one measurement step; a failure is recorded and the other steps still run. */
async function step<T>(r: PeerResult, what: string, fn: () => Promise<T>): Promise<T | undefined> {
  log(`${r.label}: ${what}`);
  try {
    return await fn();
  } catch (err) {
    const msg = `${what} failed: ${(err as Error).message.split("\n")[0]}`;
    log(`${r.label}: ${msg}`);
    (r.errors ??= []).push(msg);
    return undefined;
  }
}

async function cpuOf(tun: RunningTunnel): Promise<number> {
  let sum = 0;
  for (const p of tun.pids) sum += (await procSample(p.pid)).cpuSec;
  return sum;
}

async function benchPeer(peer: TunnelPeer, s: Settings): Promise<PeerResult> {
  const r: PeerResult = { id: peer.id, label: peer.label, available: false };
  const net = await createBenchNet(s.mtu);
  const { topo } = net;
  try {
    let tun: RunningTunnel;
    try {
      log(`${peer.label}: starting`);
      tun = await peer.start(net);
      // The tunnel must really carry the traffic: the route to the target leaves through it,
      // and the target answers.
      const route = await topo.exec("client", ["ip", "-j", "route", "get", net.targetAddr]);
      const dev = (JSON.parse(route.stdout) as { dev?: string }[])[0]?.dev;
      if (dev !== tun.clientDev) {
        throw new Error(`client routes ${net.targetAddr} via ${dev}, not ${tun.clientDev}`);
      }
      await topo.exec("client", ["ping", "-c", "3", "-i", "0.2", "-W", "2", net.targetAddr]);
    } catch (err) {
      r.reason = (err as Error).message;
      log(`${peer.label}: not available: ${r.reason}`);
      return r;
    }
    r.available = true;
    r.clientDev = tun.clientDev;
    startIperfServer(topo, "target");
    const target = tun.targetAddr;
    const d = s.durationSec;

    const cpu0 = await cpuOf(tun);
    r.tcpUp = await step(
      r,
      `TCP client→target ${d} s`,
      () => tcpThroughput(topo, "client", target, d),
    );
    r.tcpDown = await step(
      r,
      `TCP target→client ${d} s`,
      () => tcpThroughput(topo, "client", target, d, true),
    );
    const cpu1 = await cpuOf(tun);
    if (tun.pids.length && r.tcpUp && r.tcpDown) {
      r.cpuSec = cpu1 - cpu0;
      r.bytesMoved = r.tcpUp.bytes + r.tcpDown.bytes;
      r.cpuSecPerGB = r.cpuSec / (r.bytesMoved / 1e9);
    }
    r.udp64 = await step(
      r,
      `UDP 64 B unlimited ${d} s`,
      () => udpSmallPackets(topo, "client", target, d),
    );
    r.idleRtt = await step(
      r,
      `idle RTT, ${s.pings} pings`,
      () => pingRtt(topo, "client", target, s.pings, s.pingIntervalMs),
    );
    r.loadedRtt = await step(
      r,
      `RTT under TCP load, ${s.pings} pings`,
      () => loadedRtt(topo, "client", target, s.pings, s.pingIntervalMs),
    );
    if (tun.pids.length) {
      r.rss = [];
      for (const p of tun.pids) {
        r.rss.push({ role: p.role, hwmKiB: (await procSample(p.pid)).hwmKiB });
      }
    }
    await tun.stop();
    return r;
  } finally {
    await topo.destroy();
  }
}

/**
 * The commit xvpn was measured at, and whether its sources differed from it (the working tree is
 * what runs), so that a result can be traced to the code that produced it.
 */
async function gitState(): Promise<{ commit: string; dirty: boolean } | undefined> {
  const root = new URL("../", import.meta.url).pathname;
  const git = new ProcessRunner();
  const head = await git.run(["git", "-C", root, "rev-parse", "HEAD"], { allowFailure: true });
  if (head.code !== 0) return undefined;
  const status = await git.run(
    ["git", "-C", root, "status", "--porcelain", "--", "main.ts", "src", "deno.json"],
    { allowFailure: true },
  );
  return { commit: head.stdout.trim(), dirty: status.stdout.trim() !== "" };
}

/** `2026-11-27T16-05-09Z`: ISO 8601 with `-` for `:`, so the name is valid on every filesystem. */
function stamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, "Z").replaceAll(":", "-");
}

async function main(args: string[]): Promise<number> {
  const { settings, only } = settingsFrom(args);
  if (Deno.uid() !== 0) {
    console.error("bench/tunnel.ts needs root (network namespaces, TUN devices)");
    return 2;
  }
  const started = new Date();
  const swept = await sweepStale(BENCH_PREFIX);
  if (swept.length) log(`removed stale namespaces of an earlier run: ${swept.join(", ")}`);
  const tools = ["ip", "ping", "iperf3", ...only.flatMap((p) => p.tools)];
  const missing = await missingTools(tools);
  if (missing.length) log(`installing ${missing.join(", ")} with apt-get`);
  await installTools(tools);

  const results: PeerResult[] = [];
  for (const peer of only) results.push(await benchPeer(peer, settings));

  const table = markdownTable(results);
  console.log(`\n${table}\n`);
  const finished = new Date();
  const report = {
    schema: 1,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    elapsedSec: (finished.getTime() - started.getTime()) / 1000,
    machine: {
      kernel: Deno.osRelease(),
      cpus: navigator.hardwareConcurrency,
      deno: Deno.version.deno,
    },
    git: await gitState(),
    settings,
    peers: results,
    ratios: ratios(results),
    table,
  };
  const dir = new URL("./results/", import.meta.url).pathname;
  await Deno.mkdir(dir, { recursive: true });
  const file = `${dir}${stamp(started)}.json`;
  const json = JSON.stringify(report, null, 2) + "\n";
  await Deno.writeTextFile(file, json);
  await Deno.writeTextFile(`${dir}latest.json`, json);
  log(`wrote ${file} and latest.json (${report.elapsedSec.toFixed(0)} s)`);
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
