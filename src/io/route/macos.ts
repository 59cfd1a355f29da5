/**
 * Route plans for macOS, as `ifconfig` and `route` commands on a utun interface.
 *
 * @module
 */
import { type Cidr, formatCidr, formatIPv4 } from "../../lib/ip.ts";
import {
  checkLinkState,
  connectedSubnet,
  type Endpoint,
  formatMask,
  type LinkState,
  type RouteStep,
  tunnelRoutes,
  undoAll,
} from "./state.ts";

function endpointArgs(ep: Endpoint): string[] {
  const host = ["-host", formatIPv4(ep.ip)];
  // A gateway is the usual case; an on-link server (no gateway) is reached via the interface.
  return ep.gateway !== undefined
    ? [...host, formatIPv4(ep.gateway)]
    : [...host, "-interface", ep.dev!];
}

function netArgs(r: Cidr, ifname: string): string[] {
  return ["-net", formatCidr(r), "-interface", ifname];
}

/**
 * The macOS steps for `s`, each with its undo. utun is point-to-point, so (like OpenVPN's
 * `topology subnet` on macOS) the address is set with itself as the peer, and the connected
 * subnet gets an explicit route, which the kernel does not add for a point-to-point link. Then
 * the endpoint's host route via the old path, then the tunnel routes.
 */
export function planMacosSteps(s: LinkState): RouteStep[] {
  const ep = checkLinkState(s);
  const ip = formatIPv4(s.address.addr);
  const steps: RouteStep[] = [
    {
      up: [
        "ifconfig",
        s.ifname,
        "inet",
        ip,
        ip,
        "netmask",
        formatMask(s.address.prefix),
        "mtu",
        String(s.mtu),
        "up",
      ],
      down: ["ifconfig", s.ifname, "inet", ip, "-alias"],
    },
  ];
  if (s.address.prefix < 32) {
    const args = netArgs(connectedSubnet(s), s.ifname);
    steps.push({ up: ["route", "-n", "add", ...args], down: ["route", "-n", "delete", ...args] });
  }
  if (ep) {
    const args = endpointArgs(ep);
    steps.push({ up: ["route", "-n", "add", ...args], down: ["route", "-n", "delete", ...args] });
  }
  for (const r of tunnelRoutes(s)) {
    const args = netArgs(r, s.ifname);
    steps.push({ up: ["route", "-n", "add", ...args], down: ["route", "-n", "delete", ...args] });
  }
  return steps;
}

/** The argv lists that bring `s` up on macOS, in order. */
export function planMacosUp(s: LinkState): string[][] {
  return planMacosSteps(s).map((st) => st.up);
}

/** The argv lists that undo {@link planMacosUp}, in reverse order. */
export function planMacosDown(s: LinkState): string[][] {
  return undoAll(planMacosSteps(s));
}
