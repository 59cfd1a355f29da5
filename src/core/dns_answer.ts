/**
 * Following a game profile's domain names: read the DNS answers that come back through the
 * tunnel (inner IPv4 or IPv6 packets, UDP from port 53), keep the A and AAAA records of names
 * the profile lists (directly or through a CNAME chain), and remember each address for as long
 * as its TTL says and traffic keeps using it.
 *
 * Pure and sans-I/O: time comes in as `now` (ms). {@link isDnsResponse} is the per-packet check
 * and allocates nothing; only packets that pass it are parsed. Malformed input (a truncated
 * packet, a name pointer out of bounds or pointing forward, a pointer loop, bad lengths) makes
 * {@link parseDnsAnswer} return undefined: it never throws.
 *
 * @module
 */

/** The record types read from an answer. */
export type DnsRecordType = "A" | "AAAA" | "CNAME";

/** One record of an answer section. */
export interface DnsRecord {
  /** Owner name, lower case, without the trailing dot. */
  name: string;
  /** Record type. */
  type: DnsRecordType;
  /** Time to live in seconds (RFC 2181: a value with the top bit set counts as 0). */
  ttl: number;
  /** The IPv4 address of an A record, as a u32. */
  addr?: number;
  /** The IPv6 address of an AAAA record (16 bytes, a copy). */
  addr6?: Uint8Array;
  /** The target of a CNAME record, lower case, without the trailing dot. */
  target?: string;
}

/** What a DNS response says about its question. */
export interface DnsAnswer {
  /** The question name, lower case, without the trailing dot. */
  question: string;
  /** The A, AAAA and CNAME records of class IN in the answer section, in order (the authority
   * and additional sections are not read: nothing there answers the question). */
  records: DnsRecord[];
}

const PROTO_UDP = 17;
const DNS_PORT = 53;
const DNS_HEADER = 12;
const TYPE_A = 1, TYPE_CNAME = 5, TYPE_AAAA = 28, CLASS_IN = 1;
const MAX_NAME = 255;
// IPv6 extension headers skipped on the way to UDP (hop-by-hop, routing, destination options).
const EXT_HOP = 0, EXT_ROUTING = 43, EXT_DSTOPTS = 60;
const MAX_EXT_HEADERS = 4;

const u16 = (b: Uint8Array, o: number) => (b[o]! << 8) | b[o + 1]!;

/**
 * Where the UDP payload of a DNS response lies in `pkt[0..len)`: packed as `start * 65536 +
 * end` so the check allocates nothing; -1 when the packet is not an unfragmented UDP datagram
 * from port 53 carrying at least a DNS header with the response bit set.
 */
function dnsPayload(pkt: Uint8Array, len: number): number {
  const n = Math.min(len, pkt.length);
  if (n < 1) return -1;
  const version = pkt[0]! >> 4;
  let end: number, udp: number;
  if (version === 4) {
    if (n < 20) return -1;
    const ihl = (pkt[0]! & 15) * 4;
    end = u16(pkt, 2);
    if (ihl < 20 || end < ihl || end > n || pkt[9] !== PROTO_UDP) return -1;
    if ((u16(pkt, 6) & 0x3fff) !== 0) return -1; // MF set or a fragment offset: a fragment
    udp = ihl;
  } else if (version === 6) {
    if (n < 40) return -1;
    end = 40 + u16(pkt, 4);
    if (end > n) return -1;
    let next = pkt[6]!;
    udp = 40;
    for (let i = 0; next !== PROTO_UDP; i++) {
      if (i === MAX_EXT_HEADERS || udp + 8 > end) return -1;
      // A fragment header (44), like any other, ends the walk: only whole datagrams are read.
      if (next !== EXT_HOP && next !== EXT_ROUTING && next !== EXT_DSTOPTS) return -1;
      next = pkt[udp]!;
      udp += (pkt[udp + 1]! + 1) * 8;
    }
  } else return -1;
  if (udp + 8 + DNS_HEADER > end || u16(pkt, udp) !== DNS_PORT) return -1;
  const udpLen = u16(pkt, udp + 4);
  if (udpLen < 8 + DNS_HEADER || udp + udpLen > end) return -1;
  const dns = udp + 8;
  if ((pkt[dns + 2]! & 0x80) === 0) return -1; // QR = 0: a query, not a response
  return dns * 65536 + (udp + udpLen);
}

/**
 * True when `pkt[0..len)` is an IPv4 or IPv6 packet holding an unfragmented UDP datagram from
 * port 53 with a DNS response header. Allocates nothing: the per-packet filter.
 */
export function isDnsResponse(pkt: Uint8Array, len: number): boolean {
  return dnsPayload(pkt, len) >= 0;
}

/** A name read from a message: its text and the offset just after it where it started. */
interface ReadName {
  name: string;
  next: number;
}

/**
 * Reads a (possibly compressed) name at `off` of the DNS message `msg[base..end)`. A pointer
 * must point to a "prior occurrence" (RFC 1035): before the start of the stretch of labels it
 * ends, which also rules out loops; labels of other types, overlong names and reads past `end` give undefined.
 * Label bytes other than letters, digits, `-` and `_` are written `\DDD` (the zone-file form),
 * so a label holding a dot can never pass for two labels.
 */
function readName(msg: Uint8Array, base: number, end: number, off: number): ReadName | undefined {
  let name = "";
  let length = 0;
  let next = -1;
  let pos = off;
  // Each pointer must land before the start of the stretch it was read from, so every jump
  // goes strictly backwards and the walk ends.
  let low = off;
  for (;;) {
    if (pos >= end) return undefined;
    const b = msg[pos]!;
    if (b === 0) {
      if (next < 0) next = pos + 1;
      return { name, next };
    }
    if ((b & 0xc0) === 0xc0) {
      if (pos + 1 >= end) return undefined;
      const target = base + (((b & 0x3f) << 8) | msg[pos + 1]!);
      if (target >= low) return undefined; // forward, or into itself: malformed or a loop
      if (next < 0) next = pos + 2;
      pos = low = target;
      continue;
    }
    if ((b & 0xc0) !== 0) return undefined; // 0x40 / 0x80: obsolete or reserved label types
    if (pos + 1 + b > end) return undefined;
    length += b + 1;
    if (length > MAX_NAME) return undefined;
    if (name) name += ".";
    for (let i = pos + 1; i <= pos + b; i++) {
      let c = msg[i]!;
      if (c >= 0x41 && c <= 0x5a) c += 0x20; // ASCII upper to lower case
      const plain = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d ||
        c === 0x5f;
      name += plain ? String.fromCharCode(c) : `\\${String(c).padStart(3, "0")}`;
    }
    pos += 1 + b;
  }
}

/**
 * Parses the DNS response in `pkt[0..len)` (see {@link isDnsResponse}): the question name and
 * the A, AAAA and CNAME records of its answer section. Undefined when the packet is not a DNS
 * response, has no single question, or anything in it is malformed; an error response (or a
 * truncated one, TC) gives the records it holds, usually none.
 */
export function parseDnsAnswer(pkt: Uint8Array, len: number): DnsAnswer | undefined {
  const where = dnsPayload(pkt, len);
  if (where < 0) return undefined;
  const base = Math.floor(where / 65536), end = where % 65536;
  if (u16(pkt, base + 4) !== 1) return undefined; // QDCOUNT: every resolver sends one
  const ancount = u16(pkt, base + 6);
  const q = readName(pkt, base, end, base + DNS_HEADER);
  if (!q || q.next + 4 > end) return undefined;
  let pos = q.next + 4;
  const records: DnsRecord[] = [];
  for (let i = 0; i < ancount; i++) {
    const owner = readName(pkt, base, end, pos);
    if (!owner || owner.next + 10 > end) return undefined;
    const p = owner.next;
    const type = u16(pkt, p), cls = u16(pkt, p + 2);
    const rawTtl = (pkt[p + 4]! << 24) | (pkt[p + 5]! << 16) | (pkt[p + 6]! << 8) | pkt[p + 7]!;
    const ttl = rawTtl < 0 ? 0 : rawTtl; // top bit set: 0, as RFC 2181 section 8 says
    const rdlen = u16(pkt, p + 8);
    const rdata = p + 10;
    if (rdata + rdlen > end) return undefined;
    pos = rdata + rdlen;
    if (cls !== CLASS_IN) continue;
    if (type === TYPE_A) {
      if (rdlen !== 4) return undefined;
      const addr = ((pkt[rdata]! << 24) | (pkt[rdata + 1]! << 16) | (pkt[rdata + 2]! << 8) |
        pkt[rdata + 3]!) >>> 0;
      records.push({ name: owner.name, type: "A", ttl, addr });
    } else if (type === TYPE_AAAA) {
      if (rdlen !== 16) return undefined;
      records.push({ name: owner.name, type: "AAAA", ttl, addr6: pkt.slice(rdata, rdata + 16) });
    } else if (type === TYPE_CNAME) {
      const target = readName(pkt, base, rdata + rdlen, rdata);
      if (!target || target.next !== rdata + rdlen) return undefined;
      records.push({ name: owner.name, type: "CNAME", ttl, target: target.name });
    }
  }
  return { question: q.name, records };
}

/** Normalizes a domain for matching: lower case, no leading `*.`, no trailing dot. */
function norm(domain: string): string {
  let d = domain.trim().toLowerCase();
  if (d.startsWith("*.")) d = d.slice(2);
  if (d.endsWith(".")) d = d.slice(0, -1);
  return d;
}

/**
 * Matches names against a list of domains: a domain matches itself and every name under it,
 * on label boundaries (`example.com` matches `a.example.com`, not `badexample.com`), ignoring
 * case; `*.example.com` means the same as `example.com`.
 */
export class DomainMatcher {
  readonly #domains = new Set<string>();

  /** Builds a matcher for `domains`. */
  constructor(domains: Iterable<string>) {
    for (const d of domains) {
      const n = norm(d);
      if (n) this.#domains.add(n);
    }
  }

  /** How many distinct domains the matcher holds. */
  get size(): number {
    return this.#domains.size;
  }

  /** True when `name` is one of the domains or lies under one. */
  matches(name: string): boolean {
    if (this.#domains.size === 0) return false;
    let n = norm(name);
    for (;;) {
      if (this.#domains.has(n)) return true;
      const dot = n.indexOf(".");
      if (dot < 0) return false;
      n = n.slice(dot + 1);
    }
  }
}

/** An address an answer gave for a followed name. */
export interface FollowedAddress {
  /** IPv4 address (u32), for an A record. */
  addr?: number;
  /** IPv6 address (16 bytes), for an AAAA record. */
  addr6?: Uint8Array;
  /** Seconds the address may be used: the least TTL of its record and the CNAMEs leading to
   * it. */
  ttl: number;
  /** The owner name of the address record. */
  name: string;
}

/** Longest CNAME chain followed: resolvers stop well before this (RFC 1034 suggests ~8). */
const MAX_CHAIN = 16;

/**
 * The addresses `answer` gives for its question, when the question or any name on its CNAME
 * chain matches `matcher`. An address record counts only if its owner is the question or is
 * reached from it through the answer's CNAMEs (records about other names are not answers to
 * this question, and could be planted).
 */
export function followedAddresses(answer: DnsAnswer, matcher: DomainMatcher): FollowedAddress[] {
  const cname = new Map<string, DnsRecord>();
  for (const r of answer.records) {
    if (r.type === "CNAME" && !cname.has(r.name)) cname.set(r.name, r);
  }
  // The chain from the question, each name with the least TTL of the CNAMEs leading to it.
  const chain = new Map<string, number>([[answer.question, Infinity]]);
  let name = answer.question, ttl = Infinity;
  for (let i = 0; i < MAX_CHAIN; i++) {
    const c = cname.get(name);
    if (!c || chain.has(c.target!)) break;
    ttl = Math.min(ttl, c.ttl);
    name = c.target!;
    chain.set(name, ttl);
  }
  if (![...chain.keys()].some((n) => matcher.matches(n))) return [];
  const out: FollowedAddress[] = [];
  for (const r of answer.records) {
    const via = chain.get(r.name);
    if (via === undefined || r.type === "CNAME") continue;
    const f: FollowedAddress = { ttl: Math.min(r.ttl, via), name: r.name };
    if (r.type === "A") f.addr = r.addr;
    else f.addr6 = r.addr6;
    out.push(f);
  }
  return out;
}

/**
 * The key {@link FollowTable} files an address under: an IPv4 address is its u32 (a number,
 * so the per-packet `touch` allocates nothing); an IPv6 address is its 32 lower-case hex
 * digits (a string).
 */
export type FollowKey = number | string;

/** The {@link FollowKey} of an IPv4 address. */
export function followKey4(addr: number): FollowKey {
  return addr >>> 0;
}

/** The {@link FollowKey} of the IPv6 address in `b[off..off+16)`. */
export function followKey6(b: Uint8Array, off = 0): FollowKey {
  let s = "";
  for (let i = off; i < off + 16; i++) s += (b[i]! < 16 ? "0" : "") + b[i]!.toString(16);
  return s;
}

/** The default cap on followed addresses: each one is a route. */
export const DEFAULT_FOLLOW_CAP = 4096;

/** TTLs are capped at a day: a route kept for a week because an answer said so is a leak. */
export const MAX_FOLLOW_TTL_S = 86_400;

interface Followed {
  /** When the DNS TTL runs out (ms). */
  expiresAt: number;
  /** When traffic last used the address (ms). */
  lastSeen: number;
}

/**
 * The addresses learnt from DNS answers, each with when its TTL runs out and when traffic last
 * used it. An address is dropped only when both have passed: its TTL, and `idleMs` without
 * traffic (a game keeps talking to a server long after the answer's TTL, and the route must
 * stay while it does). At most `cap` addresses are held; more are refused and counted.
 */
export class FollowTable {
  readonly #entries = new Map<FollowKey, Followed>();
  #refused = 0;

  /** An empty table holding at most `cap` addresses. */
  constructor(readonly cap: number = DEFAULT_FOLLOW_CAP) {}

  /** How many addresses are held. */
  get size(): number {
    return this.#entries.size;
  }

  /** How many new addresses were refused because the table was full. */
  get refused(): number {
    return this.#refused;
  }

  /** True when the table holds `key`. */
  has(key: FollowKey): boolean {
    return this.#entries.has(key);
  }

  /**
   * Records an answer's address with its TTL (seconds, capped at {@link MAX_FOLLOW_TTL_S}).
   * Returns true when the address is new, so a route must be added; false when it was known
   * (its TTL is extended) or the table is full (the refusal is counted in {@link refused}).
   */
  learn(key: FollowKey, ttlSec: number, now: number): boolean {
    const ttl = Math.max(0, Math.min(ttlSec, MAX_FOLLOW_TTL_S)) * 1000;
    const e = this.#entries.get(key);
    if (e) {
      e.expiresAt = Math.max(e.expiresAt, now + ttl);
      e.lastSeen = Math.max(e.lastSeen, now);
      return false;
    }
    if (this.#entries.size >= this.cap) {
      this.#refused++;
      return false;
    }
    this.#entries.set(key, { expiresAt: now + ttl, lastSeen: now });
    return true;
  }

  /** Notes traffic to or from `key` at `now`; returns false when the table does not hold it. */
  touch(key: FollowKey, now: number): boolean {
    const e = this.#entries.get(key);
    if (!e) return false;
    if (now > e.lastSeen) e.lastSeen = now;
    return true;
  }

  /** Removes `keys`; returns those that were held. */
  remove(keys: Iterable<FollowKey>): FollowKey[] {
    const out: FollowKey[] = [];
    for (const k of keys) if (this.#entries.delete(k)) out.push(k);
    return out;
  }

  /**
   * Removes and returns the addresses whose TTL has passed and that have seen no traffic for
   * `idleMs`: their routes can go.
   */
  expired(now: number, idleMs: number): FollowKey[] {
    const out: FollowKey[] = [];
    for (const [key, e] of this.#entries) {
      if (e.expiresAt <= now && now - e.lastSeen >= idleMs) out.push(key);
    }
    for (const key of out) this.#entries.delete(key);
    return out;
  }
}
