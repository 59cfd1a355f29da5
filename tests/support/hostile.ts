/**
 * Hostile input for the fuzz, flood and replay tests: initiations that pass mac1 (an attacker
 * who knows the server's public key, which is not a secret) but carry garbage, and a seeded
 * source of random bytes. No Deno APIs here, so a flood sender process can import it too.
 *
 * @module
 */
import { blake2s } from "@noble/hashes/blake2.js";
import { mac1Key } from "../../src/core/handshake.ts";
import {
  HANDSHAKE_INIT_BYTES,
  MAC_BYTES,
  MessageType,
  PROTOCOL_VERSION,
  writeHeader,
} from "../../src/core/wire.ts";
import { seededRandom } from "../lab/prng.ts";

/** Seeded PRNG: the same seed gives the same run. Returns u32 values (from the harness-wide
 * generator in src/netns/prng.ts). */
export function prng(seed: number): () => number {
  const next = seededRandom(seed);
  return () => Math.floor(next() * 4294967296) >>> 0;
}

/** Fills `buf` from `next`. */
export function fill(buf: Uint8Array, next: () => number): Uint8Array {
  for (let i = 0; i < buf.length; i++) buf[i] = next() & 255;
  return buf;
}

/** Rewrites mac1 of a handshake message so that it is valid for the holder of `key` (a
 * {@link mac1Key}); everything before mac1 stays as it is. */
export function fixMac1(d: Uint8Array, key: Uint8Array): Uint8Array {
  const off = d.length - 2 * MAC_BYTES;
  d.set(blake2s(d.subarray(0, off), { key, dkLen: MAC_BYTES }), off);
  return d;
}

/**
 * An initiation that passes mac1 for `serverPublic` but whose Noise message is random: the
 * cheapest datagram that still costs a server without cookies a Diffie-Hellman.
 */
export function junkInitiation(serverPublic: Uint8Array, next: () => number): Uint8Array {
  const d = fill(new Uint8Array(HANDSHAKE_INIT_BYTES), next);
  writeHeader(d, MessageType.HandshakeInit, 0, 0, 0);
  d.fill(0, d.length - MAC_BYTES); // no mac2
  return fixMac1(d, mac1Key(serverPublic));
}

/** True when `d` starts like an xvpn datagram of `type`. */
export function isType(d: Uint8Array, type: number): boolean {
  return d.length >= 2 && d[0] === PROTOCOL_VERSION && d[1] === type;
}
