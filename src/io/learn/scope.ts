/**
 * Which learnt addresses belong in a game profile. A game also talks to the LAN (a console, a
 * printer, the router's UPnP), and routing those into the tunnel would cut it off from them,
 * so private addresses are left out unless asked for; addresses that can never be routed
 * (loopback, link-local, multicast, broadcast, unspecified) are always left out.
 *
 * @module
 */
import { cidrContains, parseCidr, parseIPv4 } from "../../lib/ip.ts";
import { cidr6Contains, isV4Mapped, parseCidr6, parseIPv6 } from "../../lib/ip6.ts";

/** `public`: goes in a profile; `private`: only when asked; `local`: never. */
export type AddressScope = "public" | "private" | "local";

const v4 = (list: string[]) => list.map((s) => parseCidr(s)!);
const v6 = (list: string[]) => list.map((s) => parseCidr6(s)!);

const LOCAL4 = v4([
  "0.0.0.0/8",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "224.0.0.0/4",
  "255.255.255.255/32",
]);
// RFC 1918, shared address space (RFC 6598: carrier-grade NAT).
const PRIVATE4 = v4(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]);
const LOCAL6 = v6(["::/128", "::1/128", "fe80::/10", "ff00::/8"]);
const PRIVATE6 = v6(["fc00::/7"]); // unique local addresses

/** The scope of an IPv4 (u32) address. */
export function scope4(ip: number): AddressScope {
  if (LOCAL4.some((c) => cidrContains(c, ip))) return "local";
  return PRIVATE4.some((c) => cidrContains(c, ip)) ? "private" : "public";
}

/** The scope of an IPv6 address (16 bytes); an IPv4-mapped one has its IPv4 address's. */
export function scope6(ip: Uint8Array): AddressScope {
  if (isV4Mapped(ip)) {
    return scope4(((ip[12]! << 24) | (ip[13]! << 16) | (ip[14]! << 8) | ip[15]!) >>> 0);
  }
  if (LOCAL6.some((c) => cidr6Contains(c, ip))) return "local";
  return PRIVATE6.some((c) => cidr6Contains(c, ip)) ? "private" : "public";
}

/** The scope of an address as text; `local` for text that is not an address. */
export function scopeOf(text: string): AddressScope {
  const a = parseIPv4(text);
  if (a !== undefined) return scope4(a);
  const b = text.includes(":") ? parseIPv6(text) : undefined;
  return b ? scope6(b) : "local";
}
