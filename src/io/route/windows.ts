/**
 * Route plans for Windows, as `netsh interface ipv4|ipv6` commands. Everything is `store=active`
 * where netsh has the option, so nothing of it survives a reboot if teardown never runs (DNS,
 * which netsh only stores persistently, is `src/io/dns/windows.ts`'s, with its own undo).
 *
 * What wireguard-windows does by the IP Helper API (tunnel/addressconfig.go, configureInterface)
 * is done here by netsh: addresses, on-link routes on the tunnel adapter, the MTU per family, a
 * low fixed interface metric, and on IPv6 no router discovery, no DHCPv6 and no DAD.
 *
 * @module
 */
import { formatCidr, formatIPv4 } from "../../lib/ip.ts";
import { type Cidr6, formatCidr6, formatIPv6 } from "../../lib/ip6.ts";
import {
  checkLinkState,
  DEFAULT_HALVES6,
  type Endpoint,
  formatMask,
  type LinkState,
  type RouteStep,
  tunnelRoutes,
  tunnelRoutes6,
  undoAll,
} from "./state.ts";
import { checkWindowsIfname } from "./windows_args.ts";

const V4 = ["netsh", "interface", "ipv4"];
const V6 = ["netsh", "interface", "ipv6"];

/**
 * The interface metric of the tunnel adapter. Windows adds it to each route's metric and, for
 * DNS, asks the servers of the lowest-metric adapter first; an automatic metric on a virtual
 * adapter is often higher than Ethernet's. wireguard-windows sets 0 with the automatic metric
 * off when a family has a default route (addressconfig.go: `ipif.Metric = 0`); 1 is below every
 * automatic metric Windows assigns, so it wins all the same, and netsh's `metric=` switches the
 * automatic metric off as that does.
 */
export const TUNNEL_METRIC = 1;

/** The smallest MTU IPv6 allows (RFC 8200); Windows refuses IPv6 on a smaller interface. */
const IPV6_MIN_MTU = 1280;

function routeArgs(prefix: string, iface: string, nexthop?: string): string[] {
  const args = [`prefix=${prefix}`, `interface=${iface}`];
  if (nexthop !== undefined) args.push(`nexthop=${nexthop}`);
  return [...args, "store=active"];
}

/** The host route to `ip` the way the endpoint was reached (its interface, its gateway). */
function hostRouteArgs(ep: Endpoint, ip: number, ifname: string): string[] {
  if (ep.dev === undefined) {
    throw new Error(
      `on Windows the route to the server ${formatIPv4(ep.ip)} needs its interface ` +
        `(endpoint.dev), not only the gateway; ${ifname} cannot be brought up without it`,
    );
  }
  checkWindowsIfname(ep.dev, "server interface");
  const gw = ep.gateway === undefined ? undefined : formatIPv4(ep.gateway);
  return routeArgs(`${formatIPv4(ip)}/32`, ep.dev, gw);
}

function step(family: string[], args: string[]): RouteStep {
  return {
    up: [...family, "add", "route", ...args],
    down: [...family, "delete", "route", ...args],
  };
}

/**
 * The Windows steps for `s`, each with its undo: MTU and metric, address (which also gives the
 * connected subnet route), the endpoint's host route via the old path and the same for the
 * client's other nodes (`bypass`), the tunnel routes, then IPv6. The Wintun adapter is up while
 * its session is open, so there is no link-up step; MTU and metric belong to our own adapter
 * and go with it, so they have no undo (as the MTU on Linux).
 */
export function planWindowsSteps(s: LinkState): RouteStep[] {
  const ep = checkLinkState(s);
  checkWindowsIfname(s.ifname, "tunnel interface");
  const ip = formatIPv4(s.address.addr);
  const steps: RouteStep[] = [
    { up: [...V4, "set", "subinterface", s.ifname, `mtu=${s.mtu}`, "store=active"] },
    // Low metric: Windows then prefers the tunnel's DNS servers and, between routes of equal
    // length, the tunnel's routes (wireguard-windows does the same on a default route).
    { up: [...V4, "set", "interface", s.ifname, `metric=${TUNNEL_METRIC}`, "store=active"] },
    {
      up: [
        ...V4,
        "add",
        "address",
        `name=${s.ifname}`,
        `address=${ip}`,
        `mask=${formatMask(s.address.prefix)}`,
        "store=active",
      ],
      down: [...V4, "delete", "address", `name=${s.ifname}`, `address=${ip}`, "store=active"],
    },
  ];
  if (ep) {
    steps.push(step(V4, hostRouteArgs(ep, ep.ip, s.ifname)));
    // The client's other nodes, the same way round (`xvpn ping` and node choice measure them
    // outside the tunnel, not through it), as linux.ts does.
    for (const other of s.bypass ?? []) {
      if (other !== ep.ip) steps.push(step(V4, hostRouteArgs(ep, other, s.ifname)));
    }
  }
  // tunnelRoutes() gives 0.0.0.0/0 as its two /1 halves: the original default route stays for
  // the host routes above and is there again, untouched, once the halves go.
  for (const r of tunnelRoutes(s)) steps.push(step(V4, routeArgs(formatCidr(r), s.ifname)));
  steps.push(...ipv6Steps(s));
  return steps;
}

/**
 * IPv6: interface settings and the address when the tunnel carries IPv6, the server's /128 via
 * its old way when IPv6 routes or the block would swallow it, then the IPv6 tunnel routes, or
 * the block.
 *
 * The block: Linux adds `unreachable` routes for the two ::/1 halves; Windows routes have no
 * such type. wireguard-windows keeps IPv6 from leaking around a full tunnel with WFP filters
 * (tunnel/firewall/blocker.go: `blockAll`, with `permitTunInterface` for its own adapter),
 * which netsh cannot install; what it does by routing is put every AllowedIP, ::/0 included,
 * on the tunnel adapter (addressconfig.go). So the block here is that routing half: the ::/1
 * halves go into the tunnel adapter, which has no IPv6 address. Windows then has no global
 * source address for an IPv6 destination on that interface, so connections fail there, and
 * whatever is still sent (from a link-local source) enters the tunnel, whose server has no
 * IPv6 to forward it to: nothing leaves outside the tunnel. (A loopback "blackhole" route would
 * need the loopback's interface index, which Windows does not fix, and hands the packets to the
 * local stack instead of dropping them.)
 */
function ipv6Steps(s: LinkState): RouteStep[] {
  const steps: RouteStep[] = [];
  const routes6 = tunnelRoutes6(s);
  const carried = s.address6 !== undefined || routes6.length > 0;
  if (carried) {
    if (s.mtu < IPV6_MIN_MTU) {
      throw new Error(
        `MTU ${s.mtu} for ${s.ifname} is below ${IPV6_MIN_MTU}, the least IPv6 allows; ` +
          `IPv6 cannot be carried`,
      );
    }
    steps.push({ up: [...V6, "set", "subinterface", s.ifname, `mtu=${s.mtu}`, "store=active"] });
    // As wireguard-windows (RouterDiscoveryDisabled, no DHCPv6 flags, DadTransmits = 0): the
    // address is ours, no router will answer on a tunnel, and DAD would delay the address by a
    // second for a neighbour that cannot exist (Linux: `nodad`).
    steps.push({
      up: [
        ...V6,
        "set",
        "interface",
        s.ifname,
        `metric=${TUNNEL_METRIC}`,
        "routerdiscovery=disabled",
        "managedaddress=disabled",
        "otherstateful=disabled",
        "dadtransmits=0",
        "store=active",
      ],
    });
  }
  if (s.address6) {
    const a = formatIPv6(s.address6.addr);
    steps.push({
      up: [
        ...V6,
        "add",
        "address",
        `interface=${s.ifname}`,
        `address=${a}/${s.address6.prefix}`,
        "store=active",
      ],
      down: [...V6, "delete", "address", `interface=${s.ifname}`, `address=${a}`, "store=active"],
    });
  }
  const ep = s.endpoint6;
  if (ep && (routes6.length > 0 || s.blockIPv6)) {
    if (ep.dev === undefined) {
      throw new Error(
        `on Windows the route to the server ${formatIPv6(ep.ip6)} needs its interface ` +
          `(endpoint6.dev); ${s.ifname} cannot route IPv6 without it`,
      );
    }
    checkWindowsIfname(ep.dev, "server interface");
    const gw = ep.gateway ? formatIPv6(ep.gateway) : undefined;
    steps.push(step(V6, routeArgs(`${formatIPv6(ep.ip6)}/128`, ep.dev, gw)));
  }
  const tunnel6: readonly Cidr6[] = routes6.length > 0
    ? routes6
    : s.blockIPv6
    ? DEFAULT_HALVES6
    : [];
  for (const r of tunnel6) steps.push(step(V6, routeArgs(formatCidr6(r), s.ifname)));
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
