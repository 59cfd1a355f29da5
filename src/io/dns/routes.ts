/**
 * `dns_route`: host routes that send the pushed DNS servers through the tunnel even when no
 * pushed route covers them (e.g. a public resolver the exit node should query for us).
 *
 * @module
 */
import { type Cidr, cidrContains, formatIPv4, networkOf } from "../../lib/ip.ts";

/** The /32 routes to add for `servers`, and the servers left out with the reason. */
export interface DnsRoutes {
  /** Host routes to append to the link's routes. */
  routes: Cidr[];
  /** Servers that got no route, each with why (for the log). */
  skipped: { server: number; why: string }[];
}

/**
 * One /32 per DNS server, except for servers already inside the tunnel's subnet or a route into
 * the tunnel (nothing to add), and the VPN server's own address: routing it into the tunnel
 * would carry the tunnel's own datagrams into itself.
 */
export function dnsHostRoutes(
  servers: readonly number[],
  link: { address: Cidr; routes: readonly Cidr[]; endpoint?: number },
): DnsRoutes {
  const out: DnsRoutes = { routes: [], skipped: [] };
  const subnet = { addr: networkOf(link.address), prefix: link.address.prefix };
  for (const server of servers) {
    if (server === link.endpoint) {
      out.skipped.push({
        server,
        why: `${formatIPv4(server)} is the VPN server itself and must stay outside the tunnel`,
      });
    } else if ([subnet, ...link.routes].some((r) => cidrContains(r, server))) {
      out.skipped.push({ server, why: `${formatIPv4(server)} is already routed into the tunnel` });
    } else if (!out.routes.some((r) => r.addr === server)) {
      out.routes.push({ addr: server, prefix: 32 });
    }
  }
  return out;
}
