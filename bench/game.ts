/**
 * The game benchmark: what a busy tunnel does to a game. A game-like flow (UDP, 64 Hz, 60-200
 * bytes, both directions, echoed: tests/lab/gameflow.ts) runs through the tunnel, idle and while
 * a cubic TCP download fills the same tunnel, for no tunnel, xvpn, wireguard-go and OpenVPN in
 * the same run, in these setups:
 *
 * - **cpu**: no link limit, the download takes whatever the CPUs give;
 * - **tbf first hop**: a 50 Mbit/s bottleneck with a deep buffer on the server's egress
 *   (`tbf rate 50mbit burst 64kb latency 100ms`), the queue a VPN node's uplink builds;
 * - **tbf remote**: the same bottleneck one hop further, on a router before the client (the
 *   player's ISP), without shaping;
 * - **tbf up**: the same bottleneck on the client's own uplink, with a cubic upload instead
 *   (the client's scheduler decides what waits: on Linux and on the Windows path alike);
 * - **tbf remote, shaped** (xvpn only): the same, with the client's `shaping: down` just under
 *   the bottleneck, so that the queue lives in xvpn's scheduler instead of the router.
 *
 * Peers: no tunnel, xvpn, xvpn with its client on the Windows data path over the fake wintun
 * (`xvpn-win`: that code's behaviour, not a Windows figure), wireguard-go, OpenVPN.
 *
 *   client ── router ── server ── target (game echo, iperf3)
 *
 * Per setup: game loss, RTT p50/p99/max, the download's rate, and the drop counters that grew
 * during the run (bench/drops.ts), listed under the table for a run that lost a game packet.
 * Usage (root):
 * `deno run -A bench/game.ts [--only none,xvpn,xvpn-win,wireguard,openvpn]
 * [--setups cpu,first,remote,up,shaped]
 * [--seconds 60]`. Prints a
 * markdown table, writes `bench/results/game-<time>.json` and `game-latest.json`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Topology, uniquePrefix } from "../src/demo/topology.ts";
import { sweepStale } from "../src/demo/owner.ts";
import { installTools } from "../tests/lab/tools.ts";
import { type GameResult, runGameClient, spawnGameEcho } from "../tests/lab/gameflow.ts";
import { startIperfServer, tcpThroughput } from "./measure.ts";
import { BENCH_PREFIX } from "./net.ts";
import { ALL_PEERS } from "./peers/all.ts";
import type { BenchNet, RunningTunnel, TunnelPeer } from "./peers/types.ts";
import { fmt } from "./report.ts";
import { type DropCounters, dropsBetween, readDrops } from "./drops.ts";

const MTU = 1420;
const GAME_PORT = 7777;
/** The bottleneck of the tbf setups, as the issue's reproduction had it. */
const TBF = ["tbf", "rate", "50mbit", "burst", "64kb", "latency", "100ms"];
/** xvpn's shaping for the remote bottleneck: just under its 50 Mbit/s, counting the 14-byte
 * Ethernet header tbf counts on a veth. */
const SHAPING = "shaping: { down: 49mbit, overhead: 14 }";

const log = (msg: string) => console.error(`[game] ${msg}`);

/** A setup: where the bottleneck is (or none). */
interface Setup {
  id: string;
  title: string;
  /** Host and its interface (towards `to`) that gets the tbf, if any. */
  tbf?: { host: string; to: string };
  /** Only for xvpn, with its shaping. */
  shaped?: boolean;
  /** The bulk transfer goes up (client -> target) instead of down. */
  upload?: boolean;
}

const SETUPS: Setup[] = [
  { id: "cpu", title: "CPU-bound (no link limit)" },
  {
    id: "first",
    title: "tbf 50 Mbit/s on the server's egress",
    tbf: { host: "server", to: "router" },
  },
  {
    id: "remote",
    title: "tbf 50 Mbit/s one hop further (router)",
    tbf: { host: "router", to: "client" },
  },
  {
    id: "up",
    title: "tbf 50 Mbit/s on the client's uplink, cubic upload",
    tbf: { host: "client", to: "router" },
    upload: true,
  },
  {
    id: "shaped",
    title: "the same, xvpn shaping down to 49 Mbit/s",
    tbf: { host: "router", to: "client" },
    shaped: true,
  },
];

/** One loaded run. */
interface LoadedResult {
  game: GameResult;
  downloadMbps: number;
  /** The drop counters that grew during the run (see drops.ts), to place a lost game packet. */
  drops: DropCounters;
}

/** Everything measured for one peer. */
interface PeerGame {
  id: string;
  label: string;
  available: boolean;
  reason?: string;
  idle?: GameResult;
  loaded: Record<string, LoadedResult>;
  errors: string[];
}

/** client ── router ── server ── target, forwarding on router and server. */
async function createGameNet(mtu: number): Promise<BenchNet> {
  const topo = await Topology.create({
    prefix: uniquePrefix(BENCH_PREFIX),
    hosts: ["client", "router", "server", "target"],
    links: [
      { a: "client", b: "router", subnet: "10.201.1.0/24" },
      { a: "router", b: "server", subnet: "10.201.4.0/24" },
      { a: "server", b: "target", subnet: "10.201.2.0/24" },
    ],
    forwarding: ["router", "server"],
    routes: [
      { host: "client", to: "10.201.4.0/24", via: "router" },
      { host: "router", to: "10.201.2.0/24", via: "server" },
      { host: "server", to: "10.201.1.0/24", via: "router" },
      { host: "target", to: "default", via: "server" },
    ],
  });
  topo.destroyOnSignal();
  const dir = await Deno.makeTempDir({ prefix: "xvpn-game-" });
  topo.onDestroy(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
  return {
    topo,
    serverUnderlay: topo.addr("server", "router"),
    targetAddr: topo.addr("target"),
    targetSubnet: "10.201.2.0/24",
    mtu,
    dir,
    clientNextHop: topo.addr("router", "client"),
    clientIface: topo.iface("client", "router"),
  };
}

async function tbf(net: BenchNet, s: Setup, on: boolean): Promise<void> {
  if (!s.tbf) return;
  const dev = net.topo.iface(s.tbf.host, s.tbf.to);
  const argv = on
    ? ["tc", "qdisc", "replace", "dev", dev, "root", ...TBF]
    : ["tc", "qdisc", "del", "dev", dev, "root"];
  await net.topo.exec(s.tbf.host, argv, { allowFailure: !on });
}

/** The game for `seconds` while a cubic download (target -> client), or upload, fills the path. */
async function loaded(
  net: BenchNet,
  tun: RunningTunnel,
  seconds: number,
  upload = false,
  xvpnHosts: readonly string[] = [],
): Promise<LoadedResult> {
  const hosts = ["client", "router", "server", "target"];
  const before = await readDrops(net.topo, hosts, xvpnHosts);
  const download = tcpThroughput(
    net.topo,
    "client",
    tun.targetAddr,
    seconds + 3,
    !upload,
    "cubic",
  );
  await new Promise((r) => setTimeout(r, 1500)); // the download fills the queues first
  const game = await runGameClient(net.topo, "client", `${tun.targetAddr}:${GAME_PORT}`, seconds);
  const d = await download;
  const drops = dropsBetween(before, await readDrops(net.topo, hosts, xvpnHosts));
  return { game, downloadMbps: d.mbps, drops };
}

async function startChecked(peer: TunnelPeer, net: BenchNet): Promise<RunningTunnel> {
  const tun = await peer.start(net);
  const route = await net.topo.exec("client", ["ip", "-j", "route", "get", net.targetAddr]);
  const dev = (JSON.parse(route.stdout) as { dev?: string }[])[0]?.dev;
  if (dev !== tun.clientDev) {
    throw new Error(`client routes ${net.targetAddr} via ${dev}, not ${tun.clientDev}`);
  }
  await net.topo.exec("client", ["ping", "-c", "3", "-i", "0.2", "-W", "2", net.targetAddr]);
  return tun;
}

async function benchPeer(peer: TunnelPeer, seconds: number): Promise<PeerGame> {
  const r: PeerGame = { id: peer.id, label: peer.label, available: false, loaded: {}, errors: [] };
  for (const shaped of [false, true]) {
    if (shaped && peer.id !== "xvpn") continue;
    const net = await createGameNet(MTU);
    if (shaped) net.xvpnClientExtra = SHAPING;
    try {
      startIperfServer(net.topo, "target");
      await spawnGameEcho(net.topo, "target", GAME_PORT);
      let tun: RunningTunnel;
      try {
        log(`${peer.label}${shaped ? " (shaped)" : ""}: starting`);
        tun = await startChecked(peer, net);
      } catch (err) {
        r.reason = (err as Error).message;
        log(`${peer.label}: not available: ${r.reason}`);
        return r;
      }
      r.available = true;
      if (!shaped) {
        log(`${peer.label}: idle game, 10 s`);
        r.idle = await runGameClient(net.topo, "client", `${tun.targetAddr}:${GAME_PORT}`, 10);
      }
      for (const s of SETUPS.filter((s) => (s.shaped ?? false) === shaped)) {
        log(`${peer.label}: ${s.title}, game + cubic transfer, ${seconds} s`);
        try {
          await tbf(net, s, true);
          const xvpnHosts = peer.id.startsWith("xvpn") ? ["client", "server"] : [];
          r.loaded[s.id] = await loaded(net, tun, seconds, s.upload, xvpnHosts);
          log(`${peer.label}: ${s.id}: ${JSON.stringify(r.loaded[s.id])}`);
        } catch (err) {
          r.errors.push(`${s.id}: ${(err as Error).message.split("\n")[0]}`);
        } finally {
          await tbf(net, s, false);
        }
      }
      await tun.stop();
    } finally {
      await net.topo.destroy();
    }
  }
  return r;
}

/** Rows: per setup, the game's loss and RTT and the download's rate. */
function table(results: PeerGame[]): string {
  const head = ["setup", "metric", ...results.map((r) => r.label)];
  const lines = [
    `| ${head.join(" | ")} |`,
    `| ${head.map((_, i) => (i < 2 ? ":---" : "---:")).join(" | ")} |`,
  ];
  const row = (setup: string, metric: string, get: (r: PeerGame) => number | undefined) =>
    lines.push(
      `| ${setup} | ${metric} | ${
        results.map((r) => (r.available ? fmt(get(r)) : "n/a")).join(" | ")
      } |`,
    );
  row("idle", "game loss, %", (r) => r.idle?.lossPercent);
  lines.push(
    `| idle | game RTT p50 / p99 / max, ms | ${
      results.map((r) =>
        r.idle ? `${fmt(r.idle.p50)} / ${fmt(r.idle.p99)} / ${fmt(r.idle.max)}` : "n/a"
      ).join(" | ")
    } |`,
  );
  for (const s of SETUPS) {
    const has = results.some((r) => r.loaded[s.id]);
    if (!has) continue;
    const get = (r: PeerGame) => r.loaded[s.id];
    lines.push(
      `| ${s.title} | game loss, % | ${
        results.map((r) => get(r) ? fmt(get(r)!.game.lossPercent) : "—").join(" | ")
      } |`,
    );
    lines.push(
      `| ${s.title} | game RTT p50 / p99 / max, ms | ${
        results.map((r) => {
          const g = get(r)?.game;
          return g ? `${fmt(g.p50)} / ${fmt(g.p99)} / ${fmt(g.max)}` : "—";
        }).join(" | ")
      } |`,
    );
    lines.push(
      `| ${s.title} | ${s.upload ? "upload" : "download"}, Mbit/s | ${
        results.map((r) => get(r) ? fmt(get(r)!.downloadMbps) : "—").join(" | ")
      } |`,
    );
  }
  // Where loss happened, for every run that lost a game packet (the counters count bulk too).
  const placed = results.flatMap((r) =>
    SETUPS.flatMap((s) => {
      const l = r.loaded[s.id];
      if (!l || l.game.received >= l.game.sent) return [];
      const where = Object.entries(l.drops ?? {}).map(([k, v]) => `${k} +${v}`).join(", ");
      return [
        `- ${r.label}, ${s.id}: ${l.game.sent - l.game.received} game packets lost; drops ` +
        `during the run: ${where || "none counted"}`,
      ];
    })
  );
  const notes = [
    ...results.flatMap((r) => [
      ...(r.available ? [] : [`- ${r.label}: not available: ${(r.reason ?? "").split("\n")[0]}`]),
      ...r.errors.map((e) => `- ${r.label}: ${e}`),
    ]),
    ...placed,
  ];
  return [...lines, ...(notes.length ? ["", ...notes] : [])].join("\n");
}

function stamp(d: Date): string {
  return d.toISOString().replace(/\.\d+Z$/, "Z").replaceAll(":", "-");
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      only: { type: "string" },
      setups: { type: "string" },
      seconds: { type: "string", default: "60" },
    },
  });
  if (Deno.uid() !== 0) {
    console.error("bench/game.ts needs root (network namespaces, TUN devices, tc)");
    return 2;
  }
  const seconds = Number(values.seconds);
  if (values.setups) {
    const keep = values.setups.split(",");
    for (let i = SETUPS.length - 1; i >= 0; i--) {
      if (!keep.includes(SETUPS[i]!.id)) SETUPS.splice(i, 1);
    }
  }
  const ids = values.only?.split(",").map((s) => s.trim());
  const peers = ids ? ALL_PEERS.filter((p) => ids.includes(p.id)) : [...ALL_PEERS];
  const started = new Date();
  await sweepStale(BENCH_PREFIX);
  await installTools(["ip", "ping", "iperf3", "tc", ...peers.flatMap((p) => p.tools)]);
  const results: PeerGame[] = [];
  for (const p of peers) results.push(await benchPeer(p, seconds));
  const md = table(results);
  console.log(`\n${md}\n`);
  const finished = new Date();
  const report = {
    schema: 1,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    elapsedSec: (finished.getTime() - started.getTime()) / 1000,
    settings: { seconds, mtu: MTU, tbf: TBF.join(" "), shaping: SHAPING, game: "64 Hz, 60-200 B" },
    setups: SETUPS,
    peers: results,
    table: md,
  };
  const dir = new URL("./results/", import.meta.url).pathname;
  await Deno.mkdir(dir, { recursive: true });
  const json = JSON.stringify(report, null, 2) + "\n";
  const file = `${dir}game-${stamp(started)}.json`;
  await Deno.writeTextFile(file, json);
  await Deno.writeTextFile(`${dir}game-latest.json`, json);
  log(`wrote ${file} (${report.elapsedSec.toFixed(0)} s)`);
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
