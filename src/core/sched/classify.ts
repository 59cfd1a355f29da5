/**
 * What the flow scheduler needs to know about an inner packet: its flow (a hash of the 5-tuple,
 * keyed per scheduler so that flows cannot be steered into one queue from outside), its ECN
 * field, and whether it matches an explicit priority rule (`priority` in the config: ports,
 * CIDRs, DSCP). IPv4 and IPv6 (with TCP/UDP right after the fixed header) are parsed; any
 * other packet is one flow per address pair.
 *
 * @module
 */
import { type Cidr, cidrContains } from "../../lib/ip.ts";
import { dscpOf } from "../../lib/ecn.ts";

/** One explicit priority rule; every field given must match (any rule is enough). */
export interface PriorityRule {
  /** Port ranges `[low, high]` (either port of TCP/UDP matches). */
  ports?: [number, number][];
  /** The remote address (the destination going out, the source coming in) lies in one. */
  cidrs?: Cidr[];
  /** The DSCP (upper six bits of the TOS byte) is one of these. */
  dscp?: number[];
  /** The IP protocol (6 TCP, 17 UDP) is one of these. */
  protocols?: number[];
}

/** murmur3's 32-bit finalizer: a fast, well-mixing step for hashing small integers. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Reads a big-endian u32 at `o`. */
function u32(b: Uint8Array, o: number): number {
  return ((b[o]! << 24) | (b[o + 1]! << 16) | (b[o + 2]! << 8) | b[o + 3]!) >>> 0;
}

/**
 * The flow hash of the inner packet `b[0..len)`, keyed by `seed`: addresses, protocol and, for
 * an unfragmented TCP/UDP packet, the ports. Symmetric in nothing: each direction is its own flow.
 */
export function flowHash(b: Uint8Array, len: number, seed: number): number {
  if (len >= 40 && b[0]! >> 4 === 6) {
    // IPv6: both addresses, the next header, and the ports when TCP/UDP comes first.
    let h = seed;
    for (let i = 8; i < 40; i += 4) h = mix(h ^ u32(b, i));
    const next = b[6]!;
    h = mix(h ^ next);
    if ((next === 6 || next === 17) && len >= 44) h = mix(h ^ u32(b, 40));
    return h;
  }
  if (len < 20 || b[0]! >> 4 !== 4) {
    let h = seed;
    for (let i = 0; i < Math.min(len, 40); i += 4) h = mix(h ^ (len > i + 3 ? u32(b, i) : i));
    return h;
  }
  const ihl = (b[0]! & 15) * 4;
  const proto = b[9]!;
  let h = mix(seed ^ u32(b, 12));
  h = mix(h ^ u32(b, 16));
  h = mix(h ^ proto);
  // Every fragment of a datagram hashes alike (only the first carries the ports): MF and offset.
  const unfragmented = ((b[6]! & 0x3f) | b[7]!) === 0;
  if ((proto === 6 || proto === 17) && unfragmented && ihl + 4 <= len) h = mix(h ^ u32(b, ihl));
  return h;
}

/** True when the IPv4 packet `b[0..len)` matches one of `rules`; `upstream`: it leaves through
 * the tunnel towards the internet (its remote address is the destination). */
export function matchesPriority(
  b: Uint8Array,
  len: number,
  rules: readonly PriorityRule[],
  upstream: boolean,
): boolean {
  if (rules.length === 0 || len < 20) return false;
  const v6 = b[0]! >> 4 === 6;
  if (!v6 && b[0]! >> 4 !== 4) return false;
  if (v6 && len < 40) return false;
  const ihl = v6 ? 40 : (b[0]! & 15) * 4;
  const proto = v6 ? b[6]! : b[9]!;
  // IPv6 rules match by port, protocol and DSCP (the CIDRs are IPv4 ones).
  const remote = v6 ? -1 : u32(b, upstream ? 16 : 12);
  // A non-first IPv4 fragment has no ports, only payload where they would be.
  const fragment = !v6 && ((b[6]! & 0x1f) | b[7]!) !== 0;
  const hasPorts = (proto === 6 || proto === 17) && !fragment && ihl + 4 <= len;
  const sport = hasPorts ? (b[ihl]! << 8) | b[ihl + 1]! : -1;
  const dport = hasPorts ? (b[ihl + 2]! << 8) | b[ihl + 3]! : -1;
  const dscp = dscpOf(b);
  // Plain loops: this runs per packet, and closures would be allocated per call.
  for (let i = 0; i < rules.length; i++) {
    const r = rules[i]!;
    if (r.protocols && !r.protocols.includes(proto)) continue;
    if (r.dscp && !r.dscp.includes(dscp)) continue;
    if (r.cidrs && (remote < 0 || !anyCidr(r.cidrs, remote))) continue;
    if (r.ports && !anyPort(r.ports, sport, dport)) continue;
    return true;
  }
  return false;
}

function anyCidr(cidrs: readonly Cidr[], ip: number): boolean {
  for (let i = 0; i < cidrs.length; i++) if (cidrContains(cidrs[i]!, ip)) return true;
  return false;
}

function anyPort(ranges: readonly [number, number][], a: number, b: number): boolean {
  for (let i = 0; i < ranges.length; i++) {
    const [lo, hi] = ranges[i]!;
    if ((a >= lo && a <= hi) || (b >= lo && b <= hi)) return true;
  }
  return false;
}
