/**
 * IPv4 addresses as unsigned 32-bit numbers, CIDR prefixes, and the few header fields the data
 * path reads from an inner packet. Pure functions; nothing here throws on packet bytes.
 *
 * @module
 */

/** An IPv4 prefix: network address (host byte order, u32) and prefix length. */
export interface Cidr {
  /** Address as given (may have host bits set, e.g. `10.7.0.1/24` for an interface). */
  addr: number;
  /** Prefix length, 0..32. */
  prefix: number;
}

/** Parses dotted-quad IPv4 text into a u32, or undefined when it is not one. */
export function parseIPv4(text: string): number | undefined {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text.trim());
  if (!m) return undefined;
  let v = 0;
  for (let i = 1; i <= 4; i++) {
    const part = Number(m[i]);
    if (part > 255) return undefined;
    v = v * 256 + part;
  }
  return v >>> 0;
}

/** Formats a u32 as dotted-quad text. */
export function formatIPv4(v: number): string {
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}`;
}

/** Parses `a.b.c.d/n` (or a bare address, as /32) into a {@link Cidr}, or undefined. */
export function parseCidr(text: string): Cidr | undefined {
  const [a, p, ...rest] = text.trim().split("/");
  if (a === undefined || rest.length) return undefined;
  const addr = parseIPv4(a);
  if (addr === undefined) return undefined;
  if (p === undefined) return { addr, prefix: 32 };
  if (!/^\d{1,2}$/.test(p)) return undefined;
  const prefix = Number(p);
  return prefix <= 32 ? { addr, prefix } : undefined;
}

/** The netmask of a prefix length as a u32. */
export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** The network address of a CIDR (host bits cleared). */
export function networkOf(c: Cidr): number {
  return (c.addr & maskOf(c.prefix)) >>> 0;
}

/** True when `ip` lies inside `c`. */
export function cidrContains(c: Cidr, ip: number): boolean {
  const m = maskOf(c.prefix);
  return ((ip & m) >>> 0) === ((c.addr & m) >>> 0);
}

/** Formats a CIDR as `a.b.c.d/n` using its network address. */
export function formatCidr(c: Cidr): string {
  return `${formatIPv4(networkOf(c))}/${c.prefix}`;
}

/** Size in bytes of the fixed IPv4 header. */
export const IPV4_MIN_HEADER_BYTES = 20;

/** IP version of a packet (4, 6, or 0 when empty). */
export function ipVersion(pkt: Uint8Array): number {
  return pkt.length === 0 ? 0 : pkt[0]! >> 4;
}

/** Destination of an IPv4 packet as u32, or -1 when the packet is too short to have one. */
export function ipv4Dst(pkt: Uint8Array): number {
  if (pkt.length < IPV4_MIN_HEADER_BYTES) return -1;
  return ((pkt[16]! << 24) | (pkt[17]! << 16) | (pkt[18]! << 8) | pkt[19]!) >>> 0;
}

/** Source of an IPv4 packet as u32, or -1 when the packet is too short to have one. */
export function ipv4Src(pkt: Uint8Array): number {
  if (pkt.length < IPV4_MIN_HEADER_BYTES) return -1;
  return ((pkt[12]! << 24) | (pkt[13]! << 16) | (pkt[14]! << 8) | pkt[15]!) >>> 0;
}
