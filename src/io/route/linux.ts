/**
 * Route plans for Linux, as `ip` (iproute2) commands.
 *
 * @module
 */
import { type Cidr, formatCidr, formatIPv4 } from "../../lib/ip.ts";
import { invalidIfnameReason } from "../tun/device.ts";
import {
  checkLinkState,
  type Endpoint,
  formatIfaceAddress,
  type LinkState,
  type RouteStep,
  tunnelRoutes,
  undoAll,
} from "./state.ts";

function endpointSpec(ep: Endpoint): string[] {
  const spec = [`${formatIPv4(ep.ip)}/32`];
  if (ep.gateway !== undefined) spec.push("via", formatIPv4(ep.gateway));
  if (ep.dev !== undefined) spec.push("dev", ep.dev);
  return spec;
}

/** Transmit queue length set on the TUN device (packets). */
export const TUN_TXQUEUELEN = 64;

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
      up: ["ip", "link", "set", ...dev, "mtu", String(s.mtu), "txqueuelen", String(TUN_TXQUEUELEN)],
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
  }
  for (const r of tunnelRoutes(s)) {
    steps.push({
      up: ["ip", "route", "add", ...routeSpec(r, s.ifname)],
      down: ["ip", "route", "del", ...routeSpec(r, s.ifname)],
    });
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
