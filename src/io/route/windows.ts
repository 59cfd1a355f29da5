/**
 * Route plans for Windows, as `netsh interface ipv4` commands (`store=active`, so nothing
 * survives a reboot if teardown never runs).
 *
 * @module
 */
import { type Cidr, formatCidr, formatIPv4 } from "../../lib/ip.ts";
import {
  checkLinkState,
  type Endpoint,
  formatMask,
  type LinkState,
  type RouteStep,
  tunnelRoutes,
  undoAll,
} from "./state.ts";

const NETSH = ["netsh", "interface", "ipv4"];

function routeArgs(prefix: string, iface: string, nexthop?: number): string[] {
  const args = [`prefix=${prefix}`, `interface=${iface}`];
  if (nexthop !== undefined) args.push(`nexthop=${formatIPv4(nexthop)}`);
  return [...args, "store=active"];
}

function endpointArgs(ep: Endpoint, ifname: string): string[] {
  if (ep.dev === undefined) {
    throw new Error(
      `on Windows the route to the server ${formatIPv4(ep.ip)} needs its interface ` +
        `(endpoint.dev), not only the gateway; ${ifname} cannot be brought up without it`,
    );
  }
  return routeArgs(`${formatIPv4(ep.ip)}/32`, ep.dev, ep.gateway);
}

function tunnelRouteArgs(r: Cidr, ifname: string): string[] {
  return routeArgs(formatCidr(r), ifname);
}

/**
 * The Windows steps for `s`, each with its undo: MTU, address (which also gives the connected
 * subnet route), the endpoint's host route via the old path, then the tunnel routes. The
 * Wintun adapter is up while its session is open, so there is no link-up step.
 */
export function planWindowsSteps(s: LinkState): RouteStep[] {
  const ep = checkLinkState(s);
  const ip = formatIPv4(s.address.addr);
  const steps: RouteStep[] = [
    {
      up: [...NETSH, "set", "subinterface", s.ifname, `mtu=${s.mtu}`, "store=active"],
    },
    {
      up: [
        ...NETSH,
        "add",
        "address",
        `name=${s.ifname}`,
        `address=${ip}`,
        `mask=${formatMask(s.address.prefix)}`,
        "store=active",
      ],
      down: [...NETSH, "delete", "address", `name=${s.ifname}`, `address=${ip}`, "store=active"],
    },
  ];
  if (ep) {
    const args = endpointArgs(ep, s.ifname);
    steps.push({
      up: [...NETSH, "add", "route", ...args],
      down: [...NETSH, "delete", "route", ...args],
    });
  }
  for (const r of tunnelRoutes(s)) {
    steps.push({
      up: [...NETSH, "add", "route", ...tunnelRouteArgs(r, s.ifname)],
      down: [...NETSH, "delete", "route", ...tunnelRouteArgs(r, s.ifname)],
    });
  }
  return steps;
}

/** The argv lists that bring `s` up on Windows, in order. */
export function planWindowsUp(s: LinkState): string[][] {
  return planWindowsSteps(s).map((st) => st.up);
}

/** The argv lists that undo {@link planWindowsUp}, in reverse order. */
export function planWindowsDown(s: LinkState): string[][] {
  return undoAll(planWindowsSteps(s));
}
