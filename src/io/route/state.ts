/**
 * The desired state of a tunnel link and the OS-independent part of planning it: which routes
 * to install (full tunnel split into two halves, duplicates and the connected subnet dropped)
 * and whether the server endpoint needs a host route around the tunnel.
 *
 * Plans are pure: desired state in, argv lists out. Executing them is `RouteApplier`'s job.
 *
 * @module
 */
import { type Cidr, cidrContains, formatIPv4, maskOf, networkOf } from "../../lib/ip.ts";
import { type Cidr6, formatCidr6, network6 } from "../../lib/ip6.ts";

/** Where the VPN server is and how it was reached before the tunnel came up. */
export interface Endpoint {
  /** The server's IPv4 address (u32). */
  ip: number;
  /** The original next hop towards the server, when it is not on-link. */
  gateway?: number;
  /** The original outgoing interface towards the server. */
  dev?: string;
}

/** Desired configuration of a tunnel interface. */
export interface LinkState {
  /** Interface name (`xvpn0`, `utun3`, the Wintun adapter name). */
  ifname: string;
  /** The interface address with its prefix, e.g. 10.7.0.2/24. */
  address: Cidr;
  /** Link MTU in bytes. */
  mtu: number;
  /** The TUN's transmit queue, packets (Linux; default the client's short 64; 0 leaves the
   * device's own, as for a Wintun adapter, whose ring bounds it). */
  txqueuelen?: number;
  /** Destinations routed into the tunnel; 0.0.0.0/0 makes it a full tunnel. */
  routes: Cidr[];
  /** The server, needed when a route (such as 0.0.0.0/0) would swallow traffic to it. */
  endpoint?: Endpoint;
  /** Other IPv4 hosts to keep outside the tunnel the way the endpoint is (a client's other
   * nodes), when the endpoint needs its host route. */
  bypass?: number[];
  /** The server is reached over IPv6: IPv4 routes cannot swallow its traffic. */
  serverOverIPv6?: boolean;
  /** The interface's IPv6 address with its prefix (the server's pool6), when it has one. */
  address6?: Cidr6;
  /** IPv6 destinations routed into the tunnel; `::/0` becomes its two /1 halves. */
  routes6?: Cidr6[];
  /**
   * Block IPv6 instead of carrying it (a full IPv4 tunnel from a server without IPv6): the two
   * /1 halves become `unreachable` routes, so no IPv6 packet leaves outside the tunnel and
   * applications fall back to IPv4 at once (ENETUNREACH) instead of timing out.
   */
  blockIPv6?: boolean;
  /** An IPv6 server, when IPv6 routes or the block would swallow its datagrams: its address and
   * the original way to it (a /128 host route keeps the tunnel's own traffic outside). */
  endpoint6?: { ip6: Uint8Array; gateway?: Uint8Array; dev?: string };
}

/** The two halves that together cover ::/0 but win over any IPv6 default route. */
export const DEFAULT_HALVES6: readonly Cidr6[] = [
  { addr: new Uint8Array(16), prefix: 1 },
  { addr: Uint8Array.from({ length: 16 }, (_, i) => (i === 0 ? 0x80 : 0)), prefix: 1 },
];

/** The IPv6 routes to point at the tunnel: `::/0` as its halves, duplicates dropped. */
export function tunnelRoutes6(s: LinkState): Cidr6[] {
  const out: Cidr6[] = [];
  for (const r of s.routes6 ?? []) {
    for (const e of r.prefix === 0 ? DEFAULT_HALVES6 : [r]) {
      const c = { addr: network6(e), prefix: e.prefix };
      if (out.some((o) => formatCidr6(o) === formatCidr6(c))) continue;
      out.push(c);
    }
  }
  return out;
}

/** One change to the system: the argv that makes it and, when it has one, the argv undoing it. */
export interface RouteStep {
  /** Command that applies the change. */
  up: string[];
  /** Command that reverts it; absent when nothing needs reverting (e.g. setting the MTU). */
  down?: string[];
}

/** The two halves that together cover 0.0.0.0/0 but win over any default route. */
export const DEFAULT_HALVES: readonly Cidr[] = [
  { addr: 0, prefix: 1 },
  { addr: 0x80000000, prefix: 1 },
];

/** Formats an interface address keeping its host bits: `10.7.0.2/24`. */
export function formatIfaceAddress(c: Cidr): string {
  return `${formatIPv4(c.addr)}/${c.prefix}`;
}

/** The subnet the kernel (or, on macOS, the plan) routes to the interface by itself. */
export function connectedSubnet(s: LinkState): Cidr {
  return { addr: networkOf(s.address), prefix: s.address.prefix };
}

/** Formats a prefix length as a dotted netmask (`255.255.255.0`). */
export function formatMask(prefix: number): string {
  return formatIPv4(maskOf(prefix));
}

function sameCidr(a: Cidr, b: Cidr): boolean {
  return a.prefix === b.prefix && networkOf(a) === networkOf(b);
}

/**
 * The routes to point at the tunnel, in the given order: host bits cleared, 0.0.0.0/0 replaced
 * by its two /1 halves (so the original default route stays for the endpoint and for restoring
 * later), duplicates and the interface's own connected subnet dropped.
 */
export function tunnelRoutes(s: LinkState): Cidr[] {
  const connected = connectedSubnet(s);
  const out: Cidr[] = [];
  for (const r of s.routes) {
    const expanded = r.prefix === 0 ? DEFAULT_HALVES : [r];
    for (const e of expanded) {
      const c = { addr: networkOf(e), prefix: e.prefix };
      if (sameCidr(c, connected) || out.some((o) => sameCidr(o, c))) continue;
      out.push(c);
    }
  }
  return out;
}

/**
 * True when traffic to the endpoint would enter the tunnel (a full tunnel, or a split route
 * covering the server) and so needs a host route via the original path.
 */
export function needsEndpointRoute(s: LinkState): boolean {
  if (s.serverOverIPv6) return false;
  const ep = s.endpoint;
  if (!ep) return s.routes.some((r) => r.prefix === 0);
  return [connectedSubnet(s), ...tunnelRoutes(s)].some((r) => cidrContains(r, ep.ip));
}

/**
 * Checks what every plan needs and returns the endpoint when it needs a host route. Throws an
 * Error that says what is missing (so a broken plan never half-applies).
 */
export function checkLinkState(s: LinkState): Endpoint | undefined {
  if (!s.ifname) throw new Error("link state has no interface name");
  if (!Number.isInteger(s.mtu) || s.mtu < 68 || s.mtu > 65535) {
    throw new Error(`MTU ${s.mtu} for ${s.ifname} is outside 68..65535`);
  }
  for (const c of [s.address, ...s.routes]) {
    if (!Number.isInteger(c.prefix) || c.prefix < 0 || c.prefix > 32) {
      throw new Error(`bad prefix length /${c.prefix} in the link state of ${s.ifname}`);
    }
  }
  if (!needsEndpointRoute(s)) return undefined;
  const ep = s.endpoint;
  if (!ep) {
    throw new Error(
      `a full tunnel on ${s.ifname} needs the server endpoint, or traffic to it would loop`,
    );
  }
  if (ep.gateway === undefined && ep.dev === undefined) {
    throw new Error(
      `the route to the server ${formatIPv4(ep.ip)} is unknown (no gateway or device); ` +
        `it is needed to keep the server reachable outside the tunnel`,
    );
  }
  if (ep.dev === s.ifname) {
    throw new Error(
      `the server ${formatIPv4(ep.ip)} is already routed through ${s.ifname}; ` +
        `tear the old tunnel down first`,
    );
  }
  return ep;
}

/** The undo commands of `steps`, last step first. */
export function undoAll(steps: readonly RouteStep[]): string[][] {
  return steps.flatMap((st) => (st.down ? [st.down] : [])).reverse();
}
