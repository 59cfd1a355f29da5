/**
 * The client's own network on Windows, for the push policy and the IPv6 block: the connected
 * subnets, the default gateways and whether the host has IPv6 of its own, read from
 * `Get-NetRoute` (as `ip -j route show` gives them on Linux, `local.ts`). On-link routes
 * (next hop `0.0.0.0` / `::`) are the connected subnets; `0.0.0.0/0` / `::/0` are the defaults.
 *
 * @module
 */
import { type Cidr, parseCidr, parseIPv4 } from "../../lib/ip.ts";
import { type Cidr6, parseCidr6 } from "../../lib/ip6.ts";
import { psJsonRows } from "./windows_args.ts";

/** The argv listing one family's active routes as JSON. */
export function windowsRoutesArgv(family: "IPv4" | "IPv6"): string[] {
  return [
    "powershell",
    "-NoProfile",
    "-NonInteractive",
    "-Command",
    `Get-NetRoute -AddressFamily ${family} -PolicyStore ActiveStore | ` +
    "Select-Object -Property DestinationPrefix,NextHop,InterfaceAlias | ConvertTo-Json -Compress",
  ];
}

interface Row {
  DestinationPrefix?: unknown;
  NextHop?: unknown;
  InterfaceAlias?: unknown;
}

/** ConvertTo-Json gives an object for one route and an array for several; nothing usable is
 * no routes. */
function rows(json: string): Row[] {
  return (psJsonRows(json) ?? []) as Row[];
}

/** Connected IPv4 subnets and default gateways from `Get-NetRoute` (the tunnel `skip` left
 * out; host routes, multicast, broadcast and loopback too). */
export function parseWindowsRoutes4(
  json: string,
  skip?: string,
): { subnets: Cidr[]; gateways: number[] } {
  const subnets: Cidr[] = [];
  const gateways: number[] = [];
  for (const r of rows(json)) {
    if (
      (skip !== undefined && r.InterfaceAlias === skip) || typeof r.DestinationPrefix !== "string"
    ) {
      continue;
    }
    const hop = typeof r.NextHop === "string" ? r.NextHop : "";
    if (r.DestinationPrefix === "0.0.0.0/0") {
      const gw = parseIPv4(hop);
      if (gw !== undefined && gw !== 0 && !gateways.includes(gw)) gateways.push(gw);
      continue;
    }
    const c = parseCidr(r.DestinationPrefix);
    if (!c || hop !== "0.0.0.0" || c.prefix === 32 || c.prefix === 0) continue;
    const first = c.addr >>> 24;
    if (first === 127 || first >= 224) continue;
    subnets.push(c);
  }
  return { subnets, gateways };
}

/** Connected IPv6 subnets (link-local and multicast left out) and whether a default IPv6 route
 * exists outside the tunnel (the host has IPv6 of its own, which a full IPv4 tunnel must block). */
export function parseWindowsRoutes6(
  json: string,
  skip?: string,
): { subnets6: Cidr6[]; hasIPv6: boolean } {
  const subnets6: Cidr6[] = [];
  let hasIPv6 = false;
  for (const r of rows(json)) {
    if (
      (skip !== undefined && r.InterfaceAlias === skip) || typeof r.DestinationPrefix !== "string"
    ) {
      continue;
    }
    const hop = typeof r.NextHop === "string" ? r.NextHop : "";
    if (r.DestinationPrefix === "::/0") {
      if (hop && hop !== "::") hasIPv6 = true;
      continue;
    }
    const c = parseCidr6(r.DestinationPrefix);
    if (!c || hop !== "::" || c.prefix === 128 || c.prefix === 0) continue;
    if (c.addr[0] === 0xff || (c.addr[0] === 0xfe && (c.addr[1]! & 0xc0) === 0x80)) continue;
    subnets6.push(c);
  }
  return { subnets6, hasIPv6 };
}
