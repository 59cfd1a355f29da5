/**
 * The client's policy on what a server pushes (audit finding 4), and the inner-source rule that
 * follows from it (audit finding 1, WireGuard's AllowedIPs).
 *
 * A server is trusted to carry traffic, not to rearrange the client's network: before this, a
 * client applied whatever came (a route over its own LAN or its gateway, MTU 65535, a 100 ms
 * keepalive, DNS) at any time. Now each push goes through {@link applyPolicy}, which keeps what
 * the policy accepts and says why it refused the rest (each refusal is logged). Defaults:
 * - a full tunnel (0.0.0.0/0) is accepted (the README and the game profiles rely on it;
 *   `full_tunnel: false` refuses it). DNS servers are the runtime's business (`dns: false`
 *   leaves the system's DNS as it is, and says so);
 * - a route that equals or lies inside one of the client's connected subnets, or a host route
 *   to its gateway, is refused (`local_routes: true` accepts them): it would cut the client off
 *   its own LAN, or send the tunnel's own datagrams into the tunnel. The two /1 halves of a
 *   full tunnel do not count: the connected routes and the host route to the server stay more
 *   specific;
 * - `accept_routes`, when given, is the only space pushed routes may lie in;
 * - the MTU is capped by the underlay (device MTU minus the tunnel's overhead), the keepalive
 *   floored at {@link MIN_KEEPALIVE_MS}.
 *
 * Then {@link SourceFilter}: an inner packet from the server is delivered only when its source
 * lies inside what the client routes into the tunnel (accepted routes, its own `routes`, the
 * tunnel subnet and the accepted DNS servers), so a host beside the server cannot pass a packet
 * off as coming from the client's own LAN.
 *
 * @module
 */
import { type Cidr, cidrContains, formatCidr, maskOf, networkOf } from "../lib/ip.ts";
import type { SessionConfig } from "./control.ts";
import { type Cidr6, cidr6Contains, formatCidr6 } from "../lib/ip6.ts";

/** The keepalive floor: a pushed interval below it is raised to it. */
export const MIN_KEEPALIVE_MS = 1000;
/** The lowest MTU a cap may bring a push down to (IPv4's minimum datagram every host takes). */
export const MIN_MTU = 576;

/** What the client knows of its own network, taken once at start (a later network change does
 * not re-judge the push; the next start does). */
export interface LocalNetwork {
  /** Connected subnets (the kernel's `proto kernel scope link` routes), tunnel excluded. */
  subnets: Cidr[];
  /** Next hops of the default routes. */
  gateways: number[];
  /** MTU of the device that reaches the server, if known. */
  underlayMtu?: number;
  /** Connected IPv6 subnets (link-local ones left out). */
  subnets6?: Cidr6[];
}

/** The client's policy (config keys in brackets). */
export interface ClientPolicy {
  /** Accept a pushed 0.0.0.0/0 (`full_tunnel`, default true). */
  fullTunnel: boolean;
  /** Accept routes over connected subnets or to the gateway (`local_routes`, default false). */
  localRoutes: boolean;
  /** When given, pushed routes must lie inside one of these (`accept_routes`). */
  acceptRoutes?: Cidr[];
  /** The IPv6 part of `accept_routes` (used whenever `acceptRoutes` is given). */
  acceptRoutes6?: Cidr6[];
  /** The tunnel's overhead on the underlay (60 for IPv4, 80 for IPv6): caps the MTU. */
  overhead: number;
}

/** The default policy. */
export const DEFAULT_POLICY: ClientPolicy = {
  fullTunnel: true,
  localRoutes: false,
  overhead: 60,
};

/** A push after the policy, and what was refused (one sentence each, for the log). */
export interface PolicyResult {
  config: SessionConfig;
  refused: string[];
}

/** True when `inner` equals or lies inside `outer`. */
export function cidrInside(inner: Cidr, outer: Cidr): boolean {
  return inner.prefix >= outer.prefix && cidrContains(outer, networkOf(inner));
}

/** Applies `p` to a pushed config, given what the client knows of its own network. */
export function applyPolicy(c: SessionConfig, p: ClientPolicy, local: LocalNetwork): PolicyResult {
  const refused: string[] = [];
  const routes: Cidr[] = [];
  for (const r of c.routes) {
    const text = formatCidr(r);
    if (r.prefix === 0 && !p.fullTunnel) {
      refused.push(`route ${text}: a full tunnel is not accepted (full_tunnel: false)`);
      continue;
    }
    if (p.acceptRoutes && !p.acceptRoutes.some((a) => cidrInside(r, a))) {
      refused.push(`route ${text}: outside accept_routes`);
      continue;
    }
    if (!p.localRoutes && r.prefix > 1) {
      const lan = local.subnets.find((s) => cidrInside(r, s));
      if (lan) {
        refused.push(
          `route ${text}: inside the connected subnet ${
            formatCidr(lan)
          } (local_routes: true to accept)`,
        );
        continue;
      }
      if (r.prefix === 32 && local.gateways.includes(networkOf(r))) {
        refused.push(`route ${text}: the gateway (local_routes: true to accept)`);
        continue;
      }
    }
    routes.push(r);
  }
  let mtu = c.mtu;
  if (local.underlayMtu !== undefined) {
    const cap = Math.max(MIN_MTU, local.underlayMtu - p.overhead);
    if (mtu > cap) {
      refused.push(
        `MTU ${mtu}: capped at ${cap} (underlay MTU ${local.underlayMtu} - ${p.overhead})`,
      );
      mtu = cap;
    }
  }
  let keepaliveMs = c.keepaliveMs;
  if (keepaliveMs < MIN_KEEPALIVE_MS) {
    refused.push(`keepalive ${keepaliveMs} ms: raised to ${MIN_KEEPALIVE_MS} ms`);
    keepaliveMs = MIN_KEEPALIVE_MS;
  }
  const routes6: Cidr6[] = [];
  for (const r of c.routes6) {
    const text = formatCidr6(r);
    if (r.prefix === 0 && !p.fullTunnel) {
      refused.push(`route ${text}: a full tunnel is not accepted (full_tunnel: false)`);
      continue;
    }
    if (p.acceptRoutes && !(p.acceptRoutes6 ?? []).some((a) => cidr6Inside(r, a))) {
      refused.push(`route ${text}: outside accept_routes`);
      continue;
    }
    const lan = p.localRoutes || r.prefix <= 1
      ? undefined
      : (local.subnets6 ?? []).find((l) => cidr6Inside(r, l));
    if (lan) {
      refused.push(
        `route ${text}: inside the connected subnet ${
          formatCidr6(lan)
        } (local_routes: true to accept)`,
      );
      continue;
    }
    routes6.push(r);
  }
  return { config: { ...c, routes, routes6, mtu, keepaliveMs }, refused };
}

/** True when `inner` equals or lies inside `outer` (IPv6). */
export function cidr6Inside(inner: Cidr6, outer: Cidr6): boolean {
  return inner.prefix >= outer.prefix && cidr6Contains(outer, inner.addr);
}

/**
 * The inner-source rule: a set of prefixes, checked for every packet from the server, so kept
 * as parallel typed arrays of network and mask (a handful of entries; a full tunnel is a flag).
 */
export class SourceFilter {
  #any = false;
  #net = new Uint32Array(0);
  #mask = new Uint32Array(0);
  #prefixes: readonly Cidr[] = [];

  /** Replaces the set (no prefixes: nothing is accepted). */
  set(prefixes: readonly Cidr[]): void {
    this.#prefixes = prefixes;
    this.#any = prefixes.some((c) => c.prefix === 0);
    this.#net = Uint32Array.from(prefixes, networkOf);
    this.#mask = Uint32Array.from(prefixes, (c) => maskOf(c.prefix));
  }

  /** True when IPv4 address `ip` lies inside the set. */
  accepts(ip: number): boolean {
    if (this.#any) return true;
    const net = this.#net, mask = this.#mask;
    for (let i = 0; i < net.length; i++) if (((ip & mask[i]!) >>> 0) === net[i]) return true;
    return false;
  }

  /** The prefixes, for logs. */
  describe(): string {
    return this.#any ? "any" : this.#prefixes.map(formatCidr).join(", ") || "none";
  }
}

/** The sources a client accepts under config `c` (after the policy) and its own `routes`. */
export function acceptedSources(c: SessionConfig, ownRoutes: readonly Cidr[]): Cidr[] {
  return [
    { addr: networkOf(c.address), prefix: c.address.prefix },
    ...c.routes,
    ...ownRoutes,
    ...c.dns.map((addr) => ({ addr, prefix: 32 })),
  ];
}

/** The IPv6 sources a client accepts (none when the server has no IPv6 pool). */
export function acceptedSources6(c: SessionConfig, ownRoutes6: readonly Cidr6[]): Cidr6[] {
  if (!c.address6) return [];
  return [
    c.address6,
    ...c.routes6,
    ...ownRoutes6,
    ...c.dns6.map((addr) => ({ addr, prefix: 128 })),
  ];
}

/** The IPv6 side of the inner-source rule (a linear scan: a handful of prefixes). */
export class SourceFilter6 {
  #any = false;
  #prefixes: readonly Cidr6[] = [];

  /** Replaces the set (none: no IPv6 source is accepted). */
  set(prefixes: readonly Cidr6[]): void {
    this.#prefixes = prefixes;
    this.#any = prefixes.some((c) => c.prefix === 0);
  }

  /** True when the IPv6 address at `pkt[off..off+16)` lies inside the set. */
  accepts(pkt: Uint8Array, off: number): boolean {
    if (this.#any) return true;
    const ps = this.#prefixes;
    for (let i = 0; i < ps.length; i++) if (cidr6Contains(ps[i]!, pkt, off)) return true;
    return false;
  }
}
