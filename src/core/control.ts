/**
 * Control messages: the plaintext of a `Control` datagram. Byte 0 is the kind; the rest depends
 * on it. They travel sealed with the session keys, so only the peer can send them, but a peer can
 * still be buggy: every decoder returns undefined for anything malformed.
 *
 * @module
 */
import { type Cidr6, formatCidr6, formatIPv6, parseCidr6, parseIPv6 } from "../lib/ip6.ts";
import { type Cidr, formatCidr, formatIPv4, parseCidr, parseIPv4 } from "../lib/ip.ts";
import { readU32, writeU32 } from "./wire.ts";
import type { PriorityRule } from "./sched/classify.ts";

/** Control kinds (byte 0 of the plaintext). */
export const ControlKind = {
  /** Client asks for its session config (sent after each handshake until a push arrives). */
  ConfigRequest: 1,
  /** Server's session config, JSON. */
  ConfigPush: 2,
  /** Keepalive probe: u32 sequence, u32 sender's clock in ms (echoed back, gives RTT), and with
   * multipath a flags byte (PING_FLAG_ACTIVE, path index). */
  Ping: 3,
  /** Answer to a ping, echoing its body (8 or 9 bytes). */
  Pong: 4,
  /** The sender closes the session; one byte of reason follows. */
  Disconnect: 5,
  /** Path-MTU probe (`xvpn diag mtu`): u32 sequence, then padding up to the probed size. */
  MtuProbe: 6,
  /** Answer to a probe: u32 sequence, u16 datagram size received, u16 server TUN MTU. */
  MtuProbeAck: 7,
} as const;

/** Why a peer closed the session. */
export const DisconnectReason = {
  /** Shutting down (SIGINT/SIGTERM). */
  Shutdown: 1,
  /** The server has no free address for this client. */
  PoolExhausted: 2,
} as const;

/** What the server pushes to a client after the handshake. */
export interface SessionConfig {
  /** The client's tunnel address and the pool prefix length. */
  address: Cidr;
  /** The server's tunnel address (gateway inside the tunnel). */
  serverAddress: number;
  /** The server's TUN MTU; the client must use exactly this (field notes, trap 2). */
  mtu: number;
  /** Prefixes to route into the tunnel. */
  routes: Cidr[];
  /** DNS servers to use while the tunnel is up. */
  dns: number[];
  /** Keepalive interval the client should use. */
  keepaliveMs: number;
  /** The client's IPv6 tunnel address and the pool6 prefix, when the server has an IPv6 pool. */
  address6?: Cidr6;
  /** The server's IPv6 tunnel address (with `address6`). */
  serverAddress6?: Uint8Array;
  /** IPv6 prefixes to route into the tunnel (`::/0`: all IPv6). */
  routes6: Cidr6[];
  /** IPv6 DNS servers. */
  dns6: Uint8Array[];
}

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

/** Encodes a config push (kind byte + JSON). */
export function encodeConfigPush(c: SessionConfig): Uint8Array {
  const o: Record<string, unknown> = {
    v: 2,
    address: `${formatIPv4(c.address.addr)}/${c.address.prefix}`,
    server: formatIPv4(c.serverAddress),
    mtu: c.mtu,
    // One list per kind, both families: IPv6 entries are told apart by their colons.
    routes: [...c.routes.map(formatCidr), ...c.routes6.map(formatCidr6)],
    dns: [...c.dns.map(formatIPv4), ...c.dns6.map(formatIPv6)],
    keepalive_ms: c.keepaliveMs,
  };
  if (c.address6 && c.serverAddress6) {
    o.address6 = `${formatIPv6(c.address6.addr)}/${c.address6.prefix}`;
    o.server6 = formatIPv6(c.serverAddress6);
  }
  const json = JSON.stringify(o);
  const body = enc.encode(json);
  const out = new Uint8Array(1 + body.length);
  out[0] = ControlKind.ConfigPush;
  out.set(body, 1);
  return out;
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
}

/** Decodes a config push body (after the kind byte); undefined when anything is off. */
export function decodeConfigPush(body: Uint8Array): SessionConfig | undefined {
  let o: Record<string, unknown>;
  try {
    const v = JSON.parse(dec.decode(body));
    if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
    o = v as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (o.v !== 2 || typeof o.address !== "string" || typeof o.server !== "string") return undefined;
  if (!isInt(o.mtu, 576, 65535) || !isInt(o.keepalive_ms, 100, 3_600_000)) return undefined;
  if (!Array.isArray(o.routes) || !Array.isArray(o.dns)) return undefined;
  const address = parseCidr(o.address);
  const serverAddress = parseIPv4(o.server);
  if (!address || serverAddress === undefined) return undefined;
  const routes: Cidr[] = [], routes6: Cidr6[] = [];
  for (const r of o.routes) {
    if (typeof r !== "string") return undefined;
    if (r.includes(":")) {
      const c = parseCidr6(r);
      if (!c) return undefined;
      routes6.push(c);
      continue;
    }
    const c = parseCidr(r);
    if (!c) return undefined;
    routes.push(c);
  }
  const dns: number[] = [], dns6: Uint8Array[] = [];
  for (const d of o.dns) {
    if (typeof d !== "string") return undefined;
    if (d.includes(":")) {
      const a = parseIPv6(d);
      if (!a) return undefined;
      dns6.push(a);
      continue;
    }
    const a = parseIPv4(d);
    if (a === undefined) return undefined;
    dns.push(a);
  }
  const out: SessionConfig = {
    address,
    serverAddress,
    mtu: o.mtu,
    routes,
    dns,
    keepaliveMs: o.keepalive_ms,
    routes6,
    dns6,
  };
  if (o.address6 !== undefined || o.server6 !== undefined) {
    const a6 = typeof o.address6 === "string" ? parseCidr6(o.address6) : undefined;
    const s6 = typeof o.server6 === "string" ? parseIPv6(o.server6) : undefined;
    if (!a6 || !s6) return undefined;
    out.address6 = a6;
    out.serverAddress6 = s6;
  }
  return out;
}

/**
 * What a client asks of the server's queue for its traffic down (sent in the body of every
 * config request; a server that predates it ignores the body): shape it to the client's link
 * rate, and serve these explicit priority rules first.
 */
export interface QueueRequest {
  /** Shape the client's traffic down to this many bits per second (0: not shaped). */
  downBps: number;
  /** Bytes the client's link adds per packet (counted by the shaper). */
  overheadBytes: number;
  /** Explicit priority rules for the traffic down. */
  priority: PriorityRule[];
}

/** Most priority rules a request may carry (a bound on what a client can make the server do). */
export const MAX_PRIORITY_RULES = 32;

/** Encodes a config request: the kind byte, then the queue request as JSON (when given). */
export function encodeConfigRequest(q?: QueueRequest): Uint8Array {
  if (!q) return new Uint8Array([ControlKind.ConfigRequest]);
  const body = enc.encode(JSON.stringify({
    v: 1,
    down_bps: q.downBps,
    overhead: q.overheadBytes,
    priority: q.priority.map((r) => ({
      ports: r.ports,
      cidrs: r.cidrs?.map(formatCidr),
      dscp: r.dscp,
      protocols: r.protocols,
    })),
  }));
  const out = new Uint8Array(1 + body.length);
  out[0] = ControlKind.ConfigRequest;
  out.set(body, 1);
  return out;
}

/** Decodes a config request body (after the kind byte): undefined for none (an empty body),
 * null for a malformed one. */
export function decodeConfigRequest(body: Uint8Array): QueueRequest | undefined | null {
  if (body.length === 0) return undefined;
  let o: Record<string, unknown>;
  try {
    const v = JSON.parse(dec.decode(body));
    if (typeof v !== "object" || v === null || Array.isArray(v)) return null;
    o = v as Record<string, unknown>;
  } catch {
    return null;
  }
  if (o.v !== 1 || !isInt(o.down_bps, 0, 1e12) || !isInt(o.overhead, 0, 256)) return null;
  if (!Array.isArray(o.priority) || o.priority.length > MAX_PRIORITY_RULES) return null;
  const priority: PriorityRule[] = [];
  for (const r of o.priority as unknown[]) {
    if (typeof r !== "object" || r === null) return null;
    const x = r as Record<string, unknown>;
    const rule: PriorityRule = {};
    if (x.ports !== undefined) {
      if (!Array.isArray(x.ports) || x.ports.length > 64) return null;
      rule.ports = [];
      for (const p of x.ports) {
        if (!Array.isArray(p) || p.length !== 2 || !isInt(p[0], 0, 65535)) return null;
        if (!isInt(p[1], p[0], 65535)) return null;
        rule.ports.push([p[0], p[1]]);
      }
    }
    if (x.cidrs !== undefined) {
      if (!Array.isArray(x.cidrs) || x.cidrs.length > 64) return null;
      rule.cidrs = [];
      for (const c of x.cidrs) {
        const cidr = typeof c === "string" ? parseCidr(c) : undefined;
        if (!cidr) return null;
        rule.cidrs.push(cidr);
      }
    }
    for (const k of ["dscp", "protocols"] as const) {
      const list = x[k];
      if (list === undefined) continue;
      const max = k === "dscp" ? 63 : 255;
      if (!Array.isArray(list) || list.length > 64 || !list.every((d) => isInt(d, 0, max))) {
        return null;
      }
      rule[k] = list as number[];
    }
    priority.push(rule);
  }
  return { downBps: o.down_bps, overheadBytes: o.overhead, priority };
}

/** Ping flag: the ping left on the client's active path, so the server may move the session's
 * endpoint to where it came from (probes on backup paths must not pull the traffic there). */
export const PING_FLAG_ACTIVE = 0x01;
/** Ping flags bits 4-7: the client's path index, echoed in the pong (the server ignores it). */
export const PING_PATH_SHIFT = 4;

/**
 * Encodes a ping or pong. With `flags` (multipath probes) the body gets a ninth byte; without,
 * it is the 8-byte body every server understands.
 */
export function encodePing(kind: 3 | 4, seq: number, timeMs: number, flags?: number): Uint8Array {
  const out = new Uint8Array(flags === undefined ? 9 : 10);
  out[0] = kind;
  writeU32(out, 1, seq);
  writeU32(out, 5, timeMs >>> 0);
  if (flags !== undefined) out[9] = flags;
  return out;
}

/** Decodes a ping/pong body: [seq, timeMs] or undefined. */
export function decodePing(body: Uint8Array): [number, number] | undefined {
  return body.length === 8 ? [readU32(body, 0), readU32(body, 4)] : undefined;
}

/** A ping/pong body with its optional flags byte. */
export interface PingBody {
  /** Sequence number. */
  seq: number;
  /** The sender's clock (ms, u32), echoed in the pong. */
  timeMs: number;
  /** Flags (PING_FLAG_*, path index), or undefined for a plain 8-byte ping. */
  flags: number | undefined;
}

/** Decodes a ping/pong body of 8 bytes (no flags) or 9 (with flags); undefined otherwise. */
export function decodePingBody(body: Uint8Array): PingBody | undefined {
  if (body.length !== 8 && body.length !== 9) return undefined;
  return { seq: readU32(body, 0), timeMs: readU32(body, 4), flags: body[8] };
}

/** Encodes a probe's plaintext of exactly `plainLen` bytes (kind, sequence, zero padding). */
export function encodeMtuProbe(seq: number, plainLen: number): Uint8Array {
  const out = new Uint8Array(Math.max(5, plainLen));
  out[0] = ControlKind.MtuProbe;
  writeU32(out, 1, seq);
  return out;
}

/** Encodes a probe answer. */
export function encodeMtuProbeAck(seq: number, received: number, serverMtu: number): Uint8Array {
  const out = new Uint8Array(9);
  out[0] = ControlKind.MtuProbeAck;
  writeU32(out, 1, seq);
  out[5] = received >> 8;
  out[6] = received & 255;
  out[7] = serverMtu >> 8;
  out[8] = serverMtu & 255;
  return out;
}

/** Decodes a probe answer body: {seq, received, serverMtu} or undefined. */
export function decodeMtuProbeAck(
  body: Uint8Array,
): { seq: number; received: number; serverMtu: number } | undefined {
  if (body.length !== 8) return undefined;
  return {
    seq: readU32(body, 0),
    received: (body[4]! << 8) | body[5]!,
    serverMtu: (body[6]! << 8) | body[7]!,
  };
}
