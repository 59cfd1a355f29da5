/**
 * IPv6 addresses as 16-byte arrays: parsing, RFC 5952 text, prefixes, and the key the handshake
 * rate limiter files a source under. Pure functions; nothing here throws on input text.
 *
 * @module
 */
import { formatIPv4, parseIPv4 } from "./ip.ts";

/** An IPv6 prefix: address (16 bytes, may have host bits set) and prefix length 0..128. */
export interface Cidr6 {
  /** Address bytes. */
  addr: Uint8Array;
  /** Prefix length, 0..128. */
  prefix: number;
}

/**
 * Parses IPv6 text (`fd00::1`, `::ffff:192.0.2.1`, an optional `%zone` is dropped) into 16
 * bytes, or undefined when it is not an IPv6 address.
 */
export function parseIPv6(text: string): Uint8Array | undefined {
  let t = text.trim();
  if (t.startsWith("[") && t.endsWith("]")) t = t.slice(1, -1);
  const zone = t.indexOf("%");
  if (zone >= 0) t = t.slice(0, zone);
  if (!t.includes(":") || !/^[0-9a-fA-F:.]+$/.test(t)) return undefined;
  // A trailing dotted quad stands for the last two groups: parse "0:0" there, then fill them.
  let v4: number | undefined;
  if (t.includes(".")) {
    const lastColon = t.lastIndexOf(":");
    v4 = parseIPv4(t.slice(lastColon + 1));
    if (v4 === undefined) return undefined;
    t = `${t.slice(0, lastColon + 1)}0:0`;
  }
  const halves = t.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string): number[] | undefined => {
    if (s === "") return [];
    const out: number[] = [];
    for (const g of s.split(":")) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !rest) return undefined;
  const fill = 8 - head.length - rest.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return undefined;
  const words = [...head, ...new Array<number>(fill).fill(0), ...rest];
  if (v4 !== undefined) [words[6], words[7]] = [v4 >>> 16, v4 & 0xffff];
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[2 * i] = w >>> 8;
    out[2 * i + 1] = w & 255;
  });
  return out;
}

/** RFC 5952 text of 16 address bytes (`::ffff:a.b.c.d` for IPv4-mapped ones). */
export function formatIPv6(b: Uint8Array): string {
  if (isV4Mapped(b)) {
    return `::ffff:${formatIPv4(((b[12]! << 24) | (b[13]! << 16) | (b[14]! << 8) | b[15]!) >>> 0)}`;
  }
  const w = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
  // The longest run of two or more zero groups becomes "::" (the first one on a tie).
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (w[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && w[j] === 0) j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(w);
  return `${hex(w.slice(0, best))}::${hex(w.slice(best + bestLen))}`;
}

/** True for `::ffff:a.b.c.d`. */
export function isV4Mapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Parses `addr/n` (or a bare address, as /128), or undefined. */
export function parseCidr6(text: string): Cidr6 | undefined {
  const [a, p, ...rest] = text.trim().split("/");
  if (a === undefined || rest.length) return undefined;
  const addr = parseIPv6(a);
  if (!addr) return undefined;
  if (p === undefined) return { addr, prefix: 128 };
  if (!/^\d{1,3}$/.test(p) || Number(p) > 128) return undefined;
  return { addr, prefix: Number(p) };
}

/** True when `ip` (16 bytes, read from `off`) lies inside `c`. */
export function cidr6Contains(c: Cidr6, ip: Uint8Array, off = 0): boolean {
  const full = c.prefix >>> 3, bits = c.prefix & 7;
  for (let i = 0; i < full; i++) if (c.addr[i] !== ip[off + i]) return false;
  if (bits === 0) return true;
  const m = (0xff << (8 - bits)) & 0xff;
  return (c.addr[full]! & m) === (ip[off + full]! & m);
}

/** The network bytes of a prefix (host bits cleared). */
export function network6(c: Cidr6): Uint8Array {
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, c.prefix - 8 * i));
    out[i] = c.addr[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

/**
 * The address of host number `host` in an IPv6 pool (/96 or shorter): its network with `host`
 * in the low 32 bits. A client's IPv6 address is its IPv4 address's host number there.
 */
export function hostIn6(pool6: Cidr6, host: number): Uint8Array {
  const a = network6(pool6);
  a[12] = host >>> 24;
  a[13] = host >>> 16;
  a[14] = host >>> 8;
  a[15] = host;
  return a;
}

/** `network/prefix` text. */
export function formatCidr6(c: Cidr6): string {
  return `${formatIPv6(network6(c))}/${c.prefix}`;
}

/**
 * The key a per-source limit files an address under: the address itself for IPv4 (and
 * IPv4-mapped IPv6), its /64 for IPv6, as WireGuard does, since one host usually holds a whole
 * /64 and could otherwise take a fresh bucket per address.
 */
export function sourceKey(hostname: string): string {
  if (!hostname.includes(":")) return hostname;
  const b = parseIPv6(hostname);
  if (!b) return hostname;
  if (isV4Mapped(b)) {
    return formatIPv4(((b[12]! << 24) | (b[13]! << 16) | (b[14]! << 8) | b[15]!) >>> 0);
  }
  return formatCidr6({ addr: b, prefix: 64 });
}
