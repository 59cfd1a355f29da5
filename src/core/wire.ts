/**
 * The xvpn wire format: one fixed 16-byte header on every datagram, then a message body.
 * docs/protocol.md draws the byte layouts; this file is the single source of the offsets.
 *
 * ```
 *  0        1        2        3        4                8                               16
 * +--------+--------+--------+--------+----------------+-------------------------------+
 * |version |  type  | epoch  | flags  | receiver id    | counter (u64, big endian)     |
 * +--------+--------+--------+--------+----------------+-------------------------------+
 * ```
 * For data and control messages the whole header is the AEAD's associated data and the
 * counter is the nonce, so nothing in it can be changed in flight.
 *
 * Every reader here is total: it returns undefined (or a drop reason) for any byte string,
 * never throws.
 *
 * @module
 */

/** Protocol version carried in byte 0. Version 2: a fresh receiver id per handshake (the
 * response says whether it resumes a session), IPv6 in the config push. */
export const PROTOCOL_VERSION = 2;

/** Message types (byte 1). */
export const MessageType = {
  /** Noise IK message 1, client to server. */
  HandshakeInit: 1,
  /** Noise IK message 2, server to client. */
  HandshakeResponse: 2,
  /** An encrypted inner IP packet. */
  Data: 3,
  /** An encrypted control message (config push, keepalive ping/pong, disconnect). */
  Control: 4,
  /** Server to client under load: a sealed cookie for the initiation's mac2 (cookie.ts). */
  CookieReply: 5,
} as const;

/** Bytes in the fixed header. */
export const HEADER_BYTES = 16;
/** Bytes of the Poly1305 tag on every sealed payload. */
export const TAG_BYTES = 16;
/** Per-packet overhead of a data message inside the UDP payload. */
export const DATA_OVERHEAD_BYTES = HEADER_BYTES + TAG_BYTES;

/** Offsets of header fields. */
export const Off = {
  version: 0,
  type: 1,
  epoch: 2,
  flags: 3,
  receiver: 4,
  counter: 8,
} as const;

/** Size of the sender-id field that follows the header in handshake messages. */
export const SENDER_ID_BYTES = 4;
/** Size of each handshake MAC (mac1, mac2). */
export const MAC_BYTES = 16;
/** Noise IK message 1 with a 13-byte payload (12-byte timestamp + 1 flags byte):
 * e(32) + s(32+16) + payload(13+16). */
export const NOISE_INIT_BYTES = 32 + 48 + 13 + 16;
/** Noise IK message 2 with a 1-byte payload (RESPONSE_FLAG_*): e(32) + payload(1+16). */
export const NOISE_RESPONSE_BYTES = 32 + 1 + 16;
/** Total handshake initiation size. */
export const HANDSHAKE_INIT_BYTES = HEADER_BYTES + SENDER_ID_BYTES + NOISE_INIT_BYTES +
  2 * MAC_BYTES;
/** Total handshake response size; smaller than the initiation, so a response never amplifies. */
export const HANDSHAKE_RESPONSE_BYTES = HEADER_BYTES + SENDER_ID_BYTES + NOISE_RESPONSE_BYTES +
  2 * MAC_BYTES;

/** Bytes of the XChaCha20-Poly1305 nonce in a cookie reply. */
export const COOKIE_NONCE_BYTES = 24;
/** Cookie reply: header, nonce, sealed 16-byte cookie. Smaller than the initiation it answers,
 * so a cookie reply never amplifies (WireGuard whitepaper section 5.4.7). */
export const COOKIE_REPLY_BYTES = HEADER_BYTES + COOKIE_NONCE_BYTES + 16 + TAG_BYTES;

/**
 * Header flag (byte 3) of a data message: the inner packet belongs to an interactive flow (a
 * game, voice, DNS, ACKs: a flow under the scheduler's interactive rate, or an explicit priority
 * class). A receiver that cannot keep up serves these first and sheds the others. The flag is
 * covered by the AEAD (the whole header is associated data): a forged flag fails the tag; one
 * flipped in flight costs at most that packet, as any change would. Sizes tell an observer as
 * much about a flow as this bit does.
 */
export const HEADER_FLAG_INTERACTIVE = 0x01;

/** Writes a header into buf[0..16). `counter` must be a non-negative safe integer. */
export function writeHeader(
  buf: Uint8Array,
  type: number,
  epoch: number,
  receiver: number,
  counter: number,
  flags = 0,
): void {
  buf[0] = PROTOCOL_VERSION;
  buf[1] = type;
  buf[2] = epoch;
  buf[3] = flags;
  buf[4] = receiver >>> 24;
  buf[5] = (receiver >>> 16) & 255;
  buf[6] = (receiver >>> 8) & 255;
  buf[7] = receiver & 255;
  // Counters stay below 2^53 (we rekey long before), so split into two u32 halves.
  const hi = Math.floor(counter / 0x1_0000_0000);
  const lo = counter >>> 0;
  buf[8] = hi >>> 24;
  buf[9] = (hi >>> 16) & 255;
  buf[10] = (hi >>> 8) & 255;
  buf[11] = hi & 255;
  buf[12] = lo >>> 24;
  buf[13] = (lo >>> 16) & 255;
  buf[14] = (lo >>> 8) & 255;
  buf[15] = lo & 255;
}

/** Reads a big-endian u32 at `off`; the caller guarantees 4 bytes are there. */
export function readU32(buf: Uint8Array, off: number): number {
  return ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>>
    0;
}

/** Writes a big-endian u32 at `off`. */
export function writeU32(buf: Uint8Array, off: number, v: number): void {
  buf[off] = v >>> 24;
  buf[off + 1] = (v >>> 16) & 255;
  buf[off + 2] = (v >>> 8) & 255;
  buf[off + 3] = v & 255;
}

/**
 * Reads the header counter. Returns -1 when the high half is at or above 2^21, i.e. the value
 * would not be a safe integer: no honest peer gets there (rekey happens at 2^48), so such a
 * packet is dropped as malformed rather than rounded.
 */
export function readCounter(buf: Uint8Array): number {
  const hi = readU32(buf, 8);
  if (hi >= 0x20_0000) return -1;
  return hi * 0x1_0000_0000 + readU32(buf, 12);
}

/** Writes the 12-byte ChaCha20-Poly1305 nonce for a counter: 4 zero bytes + u64 little endian. */
export function writeNonce(nonce: Uint8Array, counter: number): void {
  const lo = counter >>> 0;
  const hi = Math.floor(counter / 0x1_0000_0000);
  nonce[0] =
    nonce[1] =
    nonce[2] =
    nonce[3] =
      0;
  nonce[4] = lo & 255;
  nonce[5] = (lo >>> 8) & 255;
  nonce[6] = (lo >>> 16) & 255;
  nonce[7] = lo >>> 24;
  nonce[8] = hi & 255;
  nonce[9] = (hi >>> 8) & 255;
  nonce[10] = (hi >>> 16) & 255;
  nonce[11] = hi >>> 24;
}

/**
 * Classifies a datagram (`d[0..len)`) by its header. Returns the message type, or a drop reason when the
 * datagram is too short, of another version, of an unknown type, or of the wrong size for
 * its type.
 */
export function classify(d: Uint8Array, len = d.length): number | DropReason {
  if (len < HEADER_BYTES) return "short";
  if (d[0] !== PROTOCOL_VERSION) return "bad_version";
  const type = d[1]!;
  switch (type) {
    case MessageType.HandshakeInit:
      return len === HANDSHAKE_INIT_BYTES ? type : "bad_length";
    case MessageType.HandshakeResponse:
      return len === HANDSHAKE_RESPONSE_BYTES ? type : "bad_length";
    case MessageType.CookieReply:
      return len === COOKIE_REPLY_BYTES ? type : "bad_length";
    case MessageType.Data:
    case MessageType.Control:
      return len >= DATA_OVERHEAD_BYTES ? type : "short";
    default:
      return "bad_type";
  }
}

/**
 * Why a datagram or packet was dropped. Every drop is counted under one of these names, so an
 * operator can tell garbage from replays from routing trouble (logs, `xvpn status`).
 */
export const DROP_REASONS = [
  "short",
  "bad_version",
  "bad_type",
  "bad_length",
  "bad_mac1",
  "bad_handshake",
  "unknown_key",
  "replayed_handshake",
  "handshake_rate",
  // A second diagnostic handshake (`xvpn ping`, `xvpn diag`) from one key within a second.
  "diag_rate",
  "unknown_receiver",
  "bad_counter",
  "bad_tag",
  "replay",
  "expired_key",
  "bad_control",
  "bad_inner_packet",
  "bad_inner_src",
  // An inner source inside another client's LAN (`lan:` in the server config, core/lan.ts): a
  // client passing itself off as a device behind someone else.
  "foreign_lan_src",
  "no_route",
  "no_session",
  "too_big",
  "pool_exhausted",
  "tun_full",
  "tun_error",
  "send_failed",
  "stranger",
  // Handshake floods (cookie.ts): under load, an initiation without a valid mac2 got a cookie
  // reply instead of a handshake; one over its source's rate got nothing; one past the global
  // cookie reply budget got nothing; one past the global Diffie-Hellman budget got nothing; a
  // cookie reply the client could not use (unexpected, forged, replayed).
  "under_load",
  "source_rate",
  "cookie_budget",
  "dh_budget",
  "bad_cookie",
  // The flow scheduler (core/sched): CoDel dropped from a standing queue (not ECN-capable);
  // a memory bound dropped from the fattest flow; an overloaded receiver shed a bulk datagram
  // unread; RFC 6040: the outer header said CE but the inner packet is not ECN-capable.
  "codel",
  "overflow",
  "shed",
  "ce_not_ect",
] as const;

/** One of {@link DROP_REASONS}. */
export type DropReason = typeof DROP_REASONS[number];

/** Drop counters by reason. */
export type DropCounters = Record<DropReason, number>;

/** A zeroed set of drop counters. */
export function newDropCounters(): DropCounters {
  const c = {} as DropCounters;
  for (const r of DROP_REASONS) c[r] = 0;
  return c;
}
