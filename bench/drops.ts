/**
 * Where packets were dropped during a benchmark phase, to place a lost game packet: per
 * namespace, the kernel's UDP buffer errors (`/proc/net/snmp`) and every device's dropped
 * counters (`ip -s -j link`: a TUN's `tx` drops are its queue towards the tunnel process
 * overflowing), every qdisc's drops (`tc -s -j qdisc`: a tbf bottleneck's full queue), and,
 * for xvpn, its own drop counters by reason (`xvpn status --json`). The counters count bulk and
 * game packets alike: they say where loss happened, not whose. `udp_SndbufErrors` counts sends
 * that would block: backpressure, which xvpn's scheduler answers by holding, not a drop.
 *
 * @module
 */
import type { Topology } from "../src/demo/topology.ts";

/** Counter name (`host:what`) to value. */
export type DropCounters = Record<string, number>;

/** The xvpn command line the benchmark runs (`deno run ... main.ts`). */
const MAIN = new URL("../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../deno.json", import.meta.url).pathname;

/** Reads every counter of `hosts` now; `xvpnHosts` also have a running xvpn to ask. */
export async function readDrops(
  topo: Topology,
  hosts: readonly string[],
  xvpnHosts: readonly string[] = [],
): Promise<DropCounters> {
  const out: DropCounters = {};
  for (const host of hosts) {
    const snmp = (await topo.exec(host, ["cat", "/proc/net/snmp"])).stdout.split("\n")
      .filter((l) => l.startsWith("Udp:"));
    if (snmp.length >= 2) {
      const names = snmp[0]!.split(/\s+/), vals = snmp[1]!.split(/\s+/).map(Number);
      for (const k of ["RcvbufErrors", "SndbufErrors", "InErrors"]) {
        out[`${host}:udp_${k}`] = vals[names.indexOf(k)] ?? 0;
      }
    }
    const links = JSON.parse(
      (await topo.exec(host, ["ip", "-s", "-j", "link", "show"])).stdout || "[]",
    ) as { ifname?: string; stats64?: { rx?: { dropped?: number }; tx?: { dropped?: number } } }[];
    for (const l of links) {
      if (!l.ifname || l.ifname === "lo") continue;
      out[`${host}:${l.ifname}:rx_dropped`] = l.stats64?.rx?.dropped ?? 0;
      out[`${host}:${l.ifname}:tx_dropped`] = l.stats64?.tx?.dropped ?? 0;
    }
    // A qdisc's own drops (the tbf bottleneck's full queue) are not in the device's counters.
    const qdiscs = JSON.parse(
      (await topo.exec(host, ["tc", "-s", "-j", "qdisc", "show"], { allowFailure: true }))
        .stdout || "[]",
    ) as { kind?: string; dev?: string; drops?: number }[];
    for (const q of qdiscs) {
      if (!q.dev || q.dev === "lo" || !q.drops) continue;
      out[`${host}:${q.dev}:${q.kind}_drops`] = q.drops;
    }
  }
  for (const host of xvpnHosts) {
    const r = await topo.exec(
      host,
      [Deno.execPath(), "run", "-A", "--config", CONFIG, MAIN, "status", "--json"],
      { allowFailure: true },
    );
    try {
      const doc = JSON.parse(r.stdout) as { drops?: Record<string, number> };
      for (const [k, v] of Object.entries(doc.drops ?? {})) out[`${host}:xvpn_${k}`] = v;
    } catch {
      // no status (not running, or not an xvpn): nothing to add
    }
  }
  return out;
}

/** The counters that grew from `before` to `after`, by how much. */
export function dropsBetween(before: DropCounters, after: DropCounters): DropCounters {
  const out: DropCounters = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}
