/**
 * Route plans for Linux, as `ip` (iproute2) commands.
 *
 * @module
 */
import { type Cidr, formatCidr, formatIPv4 } from "../../lib/ip.ts";
import { invalidIfnameReason } from "../tun/device.ts";
import {
  checkLinkState,
  DEFAULT_HALVES6,
  type Endpoint,
  formatIfaceAddress,
  type LinkState,
  type RouteStep,
  tunnelRoutes,
  tunnelRoutes6,
  undoAll,
} from "./state.ts";
import { formatCidr6, formatIPv6 } from "../../lib/ip6.ts";

function endpointSpec(ep: Endpoint): string[] {
  const spec = [`${formatIPv4(ep.ip)}/32`];
  if (ep.gateway !== undefined) spec.push("via", formatIPv4(ep.gateway));
  if (ep.dev !== undefined) spec.push("dev", ep.dev);
  return spec;
}

/** Transmit queue length set on a client's TUN device (packets). */
export const TUN_TXQUEUELEN = 64;

/**
 * Transmit queue length of a server's TUN (packets). One queue carries every client's
 * downstream, mostly small game packets: 64 of them are 2 ms of 1000 clients at 16 Hz, shorter
 * than a scheduling hiccup on a shared vCPU (bench/clients.ts lost 1.8% of its echoes there, all
 * in this queue). The loop reads the TUN eagerly into its scheduler, so the queue only fills
 * while the loop is held up; it then absorbs the stall instead of dropping at random.
 */
export const SERVER_TUN_TXQUEUELEN = 1000;

function routeSpec(r: Cidr, ifname: string): string[] {
  return [formatCidr(r), "dev", ifname];
}

/**
 * The Linux steps for `s`, each with its undo: MTU, address, link up, then the endpoint's host
 * route via the old path (before anything could divert it), then the tunnel routes.
 */
export function planLinuxSteps(s: LinkState): RouteStep[] {
  const ep = checkLinkState(s);
  const bad = invalidIfnameReason(s.ifname);
  if (bad) throw new Error(`bad interface name "${s.ifname}": ${bad}`);
  const dev = ["dev", s.ifname];
  const addr = formatIfaceAddress(s.address);
  const steps: RouteStep[] = [
    // The link is ours (a TUN that vanishes on close), so the old MTU is not worth restoring.
    // A short transmit queue: the TUN queue is where a bulk TCP flow parks packets in front of
    // a game's; 500 (the default) is ~14 ms at 400 Mbit/s, 64 is ~2 ms (no fq_codel here).
    // 32 was measured too short: TCP through the tunnel fell from ~550 to ~200 Mbit/s.
    {
      up: [
        "ip",
        "link",
        "set",
        ...dev,
        "mtu",
        String(s.mtu),
        // 0: the device's own queue stands (a Wintun adapter's ring, which the fake models).
        ...(s.txqueuelen === 0 ? [] : ["txqueuelen", String(s.txqueuelen ?? TUN_TXQUEUELEN)]),
      ],
    },
    {
      up: ["ip", "address", "add", addr, ...dev],
      down: ["ip", "address", "del", addr, ...dev],
    },
    { up: ["ip", "link", "set", ...dev, "up"], down: ["ip", "link", "set", ...dev, "down"] },
  ];
  if (ep) {
    steps.push({
      up: ["ip", "route", "add", ...endpointSpec(ep)],
      down: ["ip", "route", "del", ...endpointSpec(ep)],
    });
    // The client's other nodes, the same way round (`xvpn ping` and node choice measure them
    // outside the tunnel, not through it).
    for (const ip of s.bypass ?? []) {
      if (ip === ep.ip) continue;
      const other = endpointSpec({ ...ep, ip });
      steps.push({ up: ["ip", "route", "add", ...other], down: ["ip", "route", "del", ...other] });
    }
  }
  for (const r of tunnelRoutes(s)) {
    steps.push({
      up: ["ip", "route", "add", ...routeSpec(r, s.ifname)],
      down: ["ip", "route", "del", ...routeSpec(r, s.ifname)],
    });
  }
  steps.push(...ipv6Steps(s));
  return steps;
}

/**
 * IPv6: the address (IPv6 switched on for our own device, which may inherit "off"), the
 * server's /128 via its old way when IPv6 routes or the block would swallow it, then the IPv6
 * tunnel routes, or the `unreachable` halves that block IPv6 (no leak around a full tunnel).
 */
function ipv6Steps(s: LinkState): RouteStep[] {
  const steps: RouteStep[] = [];
  const dev = ["dev", s.ifname];
  if (s.address6) {
    // The device vanishes with the TUN: nothing to put back.
    steps.push({ up: ["sysctl", "-qw", `net.ipv6.conf.${s.ifname}.disable_ipv6=0`] });
    const a = `${formatIPv6(s.address6.addr)}/${s.address6.prefix}`;
    steps.push({
      up: ["ip", "-6", "address", "add", a, ...dev, "nodad"],
      down: ["ip", "-6", "address", "del", a, ...dev],
    });
  }
  const routes6 = tunnelRoutes6(s);
  const ep = s.endpoint6;
  if (ep && (routes6.length > 0 || s.blockIPv6)) {
    const spec = [`${formatIPv6(ep.ip6)}/128`];
    if (ep.gateway) spec.push("via", formatIPv6(ep.gateway));
    if (ep.dev) spec.push("dev", ep.dev);
    steps.push({
      up: ["ip", "-6", "route", "add", ...spec],
      down: ["ip", "-6", "route", "del", ...spec],
    });
  }
  for (const r of routes6) {
    const spec = [formatCidr6(r), ...dev];
    steps.push({
      up: ["ip", "-6", "route", "add", ...spec],
      down: ["ip", "-6", "route", "del", ...spec],
    });
  }
  if (s.blockIPv6 && routes6.length === 0) {
    for (const h of DEFAULT_HALVES6) {
      const spec = ["unreachable", formatCidr6(h)];
      steps.push({
        up: ["ip", "-6", "route", "add", ...spec],
        down: ["ip", "-6", "route", "del", ...spec],
      });
    }
  }
  return steps;
}

/** The argv lists that bring `s` up on Linux, in order. */
export function planLinuxUp(s: LinkState): string[][] {
  return planLinuxSteps(s).map((st) => st.up);
}

/** The argv lists that undo {@link planLinuxUp}, in reverse order. */
export function planLinuxDown(s: LinkState): string[][] {
  return undoAll(planLinuxSteps(s));
}
