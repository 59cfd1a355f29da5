/**
 * How Windows reaches an address now: the gateway and interface the server's host route needs
 * before a full tunnel takes the default route over (what `ip route get` answers on Linux).
 *
 * Asked of `Find-NetRoute` (NetTCPIP module, Windows 8 / Server 2012 and later). Microsoft
 * documents that it returns two objects for one destination: the best local address (an
 * MSFT_NetIPAddress: IPAddress, InterfaceIndex, InterfaceAlias, no NextHop) and the best route
 * (an MSFT_NetRoute: DestinationPrefix, NextHop, InterfaceIndex, InterfaceAlias), see
 * https://learn.microsoft.com/powershell/module/nettcpip/find-netroute. `Select-Object` keeps
 * the four properties xvpn needs (a property an object lacks comes out as null) and
 * `ConvertTo-Json` prints one object, or an array of them.
 *
 * The interface is kept as its index: netsh takes an index wherever it takes a name, and an
 * index is plain digits, while an alias may hold spaces and letters of any language.
 *
 * @module
 */
import { formatIPv4, parseIPv4 } from "../../lib/ip.ts";
import { formatIPv6, parseIPv6 } from "../../lib/ip6.ts";
import type { OriginalRoute } from "./applier.ts";
import { powershell, psJsonRows, psQuote } from "./windows_args.ts";

/** What Find-NetRoute says about one destination. */
export interface FoundRoute {
  /** The outgoing interface's index (`InterfaceIndex`). */
  ifIndex: number;
  /** Its alias (`InterfaceAlias`, e.g. `Wi-Fi`), for messages and to recognise our adapter. */
  alias?: string;
  /** The next hop as Windows prints it; absent when the destination is on-link. */
  nextHop?: string;
  /** The local address Windows would send from (`IPAddress` of the address object). */
  source?: string;
}

/** The argv asking Windows how it reaches `ip` (IPv4 or IPv6 text, checked here). */
export function findNetRouteArgv(ip: string): string[] {
  const v4 = parseIPv4(ip);
  const v6 = v4 === undefined ? parseIPv6(ip) : undefined;
  if (v4 === undefined && v6 === undefined) throw new Error(`not an IP address: ${ip}`);
  const text = v4 !== undefined ? formatIPv4(v4) : formatIPv6(v6!);
  return powershell(
    `Find-NetRoute -RemoteIPAddress ${psQuote(text)} | ` +
      "Select-Object -Property InterfaceAlias,NextHop,InterfaceIndex,IPAddress | ConvertTo-Json",
  );
}

interface Row {
  InterfaceAlias?: unknown;
  NextHop?: unknown;
  InterfaceIndex?: unknown;
  IPAddress?: unknown;
}

/**
 * Parses the JSON of {@link findNetRouteArgv}. Undefined when Windows printed nothing (no route
 * at all); throws when the output is not what Find-NetRoute prints. The route object decides
 * the interface and next hop (`0.0.0.0` or `::`, on-link, means none); the address object gives
 * the source address.
 */
export function parseFindNetRoute(output: string): FoundRoute | undefined {
  const text = output.replace(/^\uFEFF/, "").trim();
  const rows = psJsonRows(output) as Row[] | undefined;
  if (!rows) throw new Error(`unexpected output from Find-NetRoute: ${text.slice(0, 200)}`);
  if (rows.length === 0 && text === "") return undefined;
  const route = rows.find((r) => typeof r.NextHop === "string");
  const addr = rows.find((r) => typeof r.IPAddress === "string");
  const chosen = route ?? addr;
  const index = chosen?.InterfaceIndex;
  if (typeof index !== "number" || !Number.isInteger(index) || index < 0) {
    throw new Error(`no interface index in Find-NetRoute output: ${text.slice(0, 200)}`);
  }
  const out: FoundRoute = { ifIndex: index };
  if (typeof chosen!.InterfaceAlias === "string") out.alias = chosen!.InterfaceAlias;
  const hop = route?.NextHop as string | undefined;
  if (hop !== undefined && hop !== "0.0.0.0" && hop !== "::") out.nextHop = hop;
  if (typeof addr?.IPAddress === "string") out.source = addr.IPAddress;
  return out;
}

/** The tunnel itself already carries traffic to the server: a host route through it loops. */
function refuseOwnAdapter(found: FoundRoute, server: string, ifname: string): void {
  if (found.alias === ifname) {
    throw new Error(
      `the server ${server} is already routed through ${ifname}; tear the old tunnel down first`,
    );
  }
}

/**
 * The IPv4 endpoint's original route from what Find-NetRoute found: the interface index as
 * `dev`, the next hop as `gateway`. Throws for an IPv6 next hop (an IPv4 route cannot use it)
 * and when the way to the server is already the tunnel `ifname`.
 */
export function windowsOriginalRoute(
  found: FoundRoute,
  server: string,
  ifname: string,
): OriginalRoute {
  refuseOwnAdapter(found, server, ifname);
  const out: OriginalRoute = { dev: String(found.ifIndex) };
  if (found.nextHop !== undefined) {
    const gw = parseIPv4(found.nextHop);
    if (gw === undefined) throw new Error(`cannot use the IPv6 next hop ${found.nextHop}`);
    out.gateway = gw;
  }
  return out;
}

/** The same for an IPv6 endpoint: interface index and IPv6 next hop (often link-local). */
export function windowsOriginalRoute6(
  found: FoundRoute,
  server: string,
  ifname: string,
): { gateway?: Uint8Array; dev: string } {
  refuseOwnAdapter(found, server, ifname);
  const out: { gateway?: Uint8Array; dev: string } = { dev: String(found.ifIndex) };
  if (found.nextHop !== undefined) {
    const gw = parseIPv6(found.nextHop);
    if (gw === undefined) throw new Error(`cannot use the next hop ${found.nextHop} for IPv6`);
    out.gateway = gw;
  }
  return out;
}
