/**
 * xvpn's handshake messages around a Noise IK handshake (`Noise_IK_25519_ChaChaPoly_BLAKE2s`,
 * the same primitives as WireGuard).
 *
 * Initiation (client to server), 161 bytes:
 *   header(16, receiver 0) | sender id(4) | Noise msg 1 (109, payload = 12-byte TAI64N
 *   timestamp + 1 flags byte) | mac1(16) | mac2(16)
 * Response (server to client), 100 bytes:
 *   header(16, receiver = initiator's id, epoch) | sender id(4) = connection id | Noise msg 2
 *   (48, empty payload) | mac1(16) | mac2(16)
 *
 * mac1 is a keyed BLAKE2s-128 over everything before it, keyed by a hash of the *receiver's*
 * public key (WireGuard section 5.4.4): the server can drop datagrams from anyone who does not
 * know its public key before spending a Diffie-Hellman on them. mac2 is reserved for an
 * under-load cookie and is zero for now.
 *
 * The timestamp makes a captured initiation useless later: the server accepts a client's
 * initiation only when its timestamp is newer than the last one it accepted from that key.
 *
 * @module
 */
import { blake2s } from "@noble/hashes/blake2.js";
import { type DhImpl, HandshakeState } from "./noise.ts";
import {
  HANDSHAKE_INIT_BYTES,
  HANDSHAKE_RESPONSE_BYTES,
  HEADER_BYTES,
  MAC_BYTES,
  MessageType,
  readU32,
  SENDER_ID_BYTES,
  writeHeader,
  writeU32,
} from "./wire.ts";

/** The Noise protocol xvpn speaks. */
export const PROTOCOL_NAME = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
/** Prologue bound into the handshake hash: a peer speaking another protocol version fails. */
export const PROLOGUE = new TextEncoder().encode("xvpn/2");
/** Bytes of the TAI64N timestamp carried in the initiation. */
export const TIMESTAMP_BYTES = 12;
/** Initiation flag: a diagnostic session (`xvpn diag`), which gets no address and carries no
 * traffic, so it never disturbs a tunnel running with the same key. */
export const INIT_FLAG_DIAG = 0x01;
/** Initiation flag: a redundant multipath client (dual channel). The server then sends every
 * packet of the session to each client endpoint heard from within the last second, and the
 * client keeps the first copy (the replay window drops the rest). */
export const INIT_FLAG_REDUNDANT = 0x02;
/** Response flag: these keys continue the client's session (same address, same config), so a
 * rekey or a network change needs no new config request although the receiver id is new. */
export const RESPONSE_FLAG_RESUMED = 0x01;

const LABEL_MAC1 = new TextEncoder().encode("mac1----");

/** Derives the mac1 key for messages addressed to the holder of `publicKey`. */
export function mac1Key(publicKey: Uint8Array): Uint8Array {
  const input = new Uint8Array(LABEL_MAC1.length + publicKey.length);
  input.set(LABEL_MAC1);
  input.set(publicKey, LABEL_MAC1.length);
  return blake2s(input);
}

function mac1Of(key: Uint8Array, msg: Uint8Array, macOffset: number): Uint8Array {
  return blake2s(msg.subarray(0, macOffset), { key, dkLen: MAC_BYTES });
}

/** Constant-time comparison of equal-length byte strings. */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** True when the datagram's mac1 is right for a receiver whose mac1 key is `key`. */
export function checkMac1(key: Uint8Array, msg: Uint8Array): boolean {
  const off = msg.length - 2 * MAC_BYTES;
  if (off < HEADER_BYTES) return false;
  return equalBytes(mac1Of(key, msg, off), msg.subarray(off, off + MAC_BYTES));
}

/** Encodes wall-clock milliseconds as TAI64N (8-byte label 2^62 + seconds, 4-byte nanos). */
export function tai64n(wallMs: number): Uint8Array {
  const out = new Uint8Array(TIMESTAMP_BYTES);
  const secs = Math.floor(wallMs / 1000);
  const nanos = Math.floor((wallMs - secs * 1000) * 1e6);
  writeU32(out, 0, 0x40000000 + Math.floor(secs / 0x1_0000_0000));
  writeU32(out, 4, secs >>> 0);
  writeU32(out, 8, nanos);
  return out;
}

/** Lexicographic comparison of two timestamps: true when `a` is strictly newer than `b`. */
export function newerTimestamp(a: Uint8Array, b: Uint8Array | undefined): boolean {
  if (!b) return true;
  for (let i = 0; i < TIMESTAMP_BYTES; i++) {
    if (a[i]! !== b[i]!) return a[i]! > b[i]!;
  }
  return false;
}

/** An initiation in progress on the client. */
export interface PendingInitiation {
  /** Noise state, waiting for the response. */
  state: HandshakeState;
  /** Our sender id, which the response must carry as its receiver. */
  localId: number;
  /** The datagram to send. */
  datagram: Uint8Array;
}

/** Builds an initiation (client side). */
export function createInitiation(opts: {
  staticPrivate: Uint8Array;
  serverPublic: Uint8Array;
  localId: number;
  wallMs: number;
  ephemeralPrivate?: Uint8Array;
  flags?: number;
  /** The X25519 to use (the response is read with the same one). */
  dh?: DhImpl;
}): PendingInitiation {
  const state = HandshakeState.initiator({
    protocolName: PROTOCOL_NAME,
    prologue: PROLOGUE,
    staticPrivate: opts.staticPrivate,
    remoteStatic: opts.serverPublic,
    ephemeralPrivate: opts.ephemeralPrivate,
    dh: opts.dh,
  });
  const payload = new Uint8Array(TIMESTAMP_BYTES + 1);
  payload.set(tai64n(opts.wallMs));
  payload[TIMESTAMP_BYTES] = opts.flags ?? 0;
  const noise = state.writeMessage(payload);
  const d = new Uint8Array(HANDSHAKE_INIT_BYTES);
  writeHeader(d, MessageType.HandshakeInit, 0, 0, 0);
  writeU32(d, HEADER_BYTES, opts.localId);
  d.set(noise, HEADER_BYTES + SENDER_ID_BYTES);
  const macOff = HANDSHAKE_INIT_BYTES - 2 * MAC_BYTES;
  d.set(mac1Of(mac1Key(opts.serverPublic), d, macOff), macOff);
  return { state, localId: opts.localId, datagram: d };
}

/** What the server learns from a valid initiation. */
export interface ReceivedInitiation {
  /** Noise state, ready to write the response. */
  state: HandshakeState;
  /** The client's static public key (authenticate it against the allow-list). */
  clientPublic: Uint8Array;
  /** The client's sender id (receiver id of everything we send it). */
  clientId: number;
  /** The initiation's timestamp (replay check). */
  timestamp: Uint8Array;
  /** Initiation flags (INIT_FLAG_*). */
  flags: number;
}

/**
 * Reads an initiation (server side). mac1 must already have been checked. Returns undefined
 * for anything that fails Noise processing.
 */
export function readInitiation(
  d: Uint8Array,
  staticPrivate: Uint8Array,
  opts: {
    /** Our static public key (saves a scalar multiplication per initiation). */
    staticPublic?: Uint8Array;
    /** The X25519 to use. */
    dh?: DhImpl;
    /** Whether this client key may connect: asked before the second Diffie-Hellman. */
    known?: (clientPublic: Uint8Array) => boolean;
  } = {},
): ReceivedInitiation | "unknown_key" | undefined {
  let unknown = false;
  const state = HandshakeState.responder({
    protocolName: PROTOCOL_NAME,
    prologue: PROLOGUE,
    staticPrivate,
    staticPublic: opts.staticPublic,
    dh: opts.dh,
    acceptRemote: opts.known && ((rs) => opts.known!(rs) || ((unknown = true), false)),
  });
  const noiseOff = HEADER_BYTES + SENDER_ID_BYTES;
  const payload = state.readMessage(d.subarray(noiseOff, HANDSHAKE_INIT_BYTES - 2 * MAC_BYTES));
  if (unknown) return "unknown_key";
  const clientPublic = state.remoteStatic;
  if (!payload || payload.length !== TIMESTAMP_BYTES + 1 || !clientPublic) return undefined;
  return {
    state,
    clientPublic,
    clientId: readU32(d, HEADER_BYTES),
    timestamp: payload.subarray(0, TIMESTAMP_BYTES),
    flags: payload[TIMESTAMP_BYTES]!,
  };
}

/** Builds the response (server side); the caller then calls `state.split()`. */
export function createResponse(opts: {
  state: HandshakeState;
  clientId: number;
  clientPublic: Uint8Array;
  connId: number;
  epoch: number;
  /** RESPONSE_FLAG_*. */
  flags?: number;
}): Uint8Array {
  const noise = opts.state.writeMessage(new Uint8Array([opts.flags ?? 0]));
  const d = new Uint8Array(HANDSHAKE_RESPONSE_BYTES);
  writeHeader(d, MessageType.HandshakeResponse, opts.epoch, opts.clientId, 0);
  writeU32(d, HEADER_BYTES, opts.connId);
  d.set(noise, HEADER_BYTES + SENDER_ID_BYTES);
  const macOff = HANDSHAKE_RESPONSE_BYTES - 2 * MAC_BYTES;
  d.set(mac1Of(mac1Key(opts.clientPublic), d, macOff), macOff);
  return d;
}

/** What the client learns from a valid response. */
export interface ReceivedResponse {
  /** The server's receiver id for these keys. */
  connId: number;
  /** RESPONSE_FLAG_*. */
  flags: number;
}

/**
 * Reads a response (client side) with the pending initiation's state. Returns the server's
 * receiver id and flags, or undefined when it does not authenticate.
 */
export function readResponse(
  d: Uint8Array,
  pending: PendingInitiation,
): ReceivedResponse | undefined {
  if (d.length !== HANDSHAKE_RESPONSE_BYTES) return undefined;
  const noiseOff = HEADER_BYTES + SENDER_ID_BYTES;
  const payload = pending.state.readMessage(
    d.subarray(noiseOff, HANDSHAKE_RESPONSE_BYTES - 2 * MAC_BYTES),
  );
  if (!payload || payload.length !== 1) return undefined;
  return { connId: readU32(d, HEADER_BYTES), flags: payload[0]! };
}
