/**
 * The under-load cookie: WireGuard's defence against handshake floods (whitepaper section 5.4.7,
 * "Under Load: Cookie Reply Message"), adapted to xvpn's framing.
 *
 * A handshake initiation costs the server Diffie-Hellman work (several X25519 operations, a few
 * milliseconds in pure JavaScript) before it knows whether the sender is a real client. mac1
 * already stops anyone who does not know the server's public key, but that key is not a secret.
 * So the server counts the initiations with a valid mac1 it saw in the last second; above a
 * threshold it is *under load*, and then it does no Diffie-Hellman for an initiation unless its
 * mac2 proves that the sender can receive datagrams at its source address:
 *
 *   cookie = MAC(secret, source IP and port)            secret: random, replaced every 2 minutes
 *   mac2   = MAC(cookie, initiation up to mac2)          MAC: keyed BLAKE2s-128, as mac1
 *
 * An initiation without a valid mac2 gets a Cookie Reply (type 5) instead, 72 bytes:
 *
 * ```
 *  0               16                       40                        72
 * +----------------+------------------------+-------------------------+
 * | header type 5  | nonce (24)             | XChaCha20-Poly1305      |
 * | receiver = the |                        |   (cookie 16, tag 16)   |
 * | initiator's id |                        |                         |
 * +----------------+------------------------+-------------------------+
 * ```
 *
 * encrypted under HASH("cookie--" || server public key) with the initiation's mac1 as associated
 * data (section 5.4.7): only the client that sent that initiation can use the reply, and an
 * attacker who merely sees replies learns nothing it could put in a mac2. The reply is smaller
 * than the initiation (72 < 161 bytes: no amplification) and rate limited per source IP, and the
 * server keeps no state per reply: the cookie is recomputed from the secret when mac2 arrives.
 * The only per-source state is the rate limiter's, in a map with a fixed maximum size.
 *
 * @module
 */
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { blake2s } from "@noble/hashes/blake2.js";
import { equalBytes } from "./handshake.ts";
import { type Endpoint } from "../lib/endpoint.ts";
import { sourceKey } from "../lib/ip6.ts";
import {
  COOKIE_NONCE_BYTES,
  COOKIE_REPLY_BYTES,
  type DropReason,
  HEADER_BYTES,
  MAC_BYTES,
  MessageType,
  readU32,
  writeHeader,
} from "./wire.ts";

/** Bytes of a cookie (a BLAKE2s-128 output). */
export const COOKIE_BYTES = 16;
/** The server replaces its cookie secret this often (WireGuard: 2 minutes, section 5.4.7). */
export const COOKIE_SECRET_ROTATE_MS = 120_000;
/** The client puts a cookie into mac2 for this long after it arrived. The server accepts the
 * current and the previous secret, so a cookie stays valid for at least this long. */
export const COOKIE_VALID_MS = 120_000;
/**
 * Default for `ServerOptions.handshakeLoadThreshold`: initiations with a valid mac1 per second
 * above which the server is under load. Lower than WireGuard's queue-based trigger because the
 * Diffie-Hellman here is pure JavaScript on the data-path thread: an initiation that gets as far
 * as X25519 costs 1-5 ms (measured on the development machine), so 100 a second is already a
 * good part of a core. A legitimate client pays one round trip for the cookie when the server
 * is under load, nothing otherwise; 100 a second is a rekey every 2 minutes for 12 000 clients.
 */
export const DEFAULT_HANDSHAKE_LOAD_THRESHOLD = 100;
/** Handshake messages per second one source IP may cost the server under load (cookie replies
 * plus processed initiations), and the burst it may send at once. WireGuard's rate limiter uses
 * 20 per second with a burst of 5. */
export const SOURCE_RATE_PER_S = 20;
/** See {@link SOURCE_RATE_PER_S}. */
export const SOURCE_BURST = 5;
/**
 * Initiations per second that may reach the Diffie-Hellman in all, whatever their sources (and
 * the burst: a tenth of it). Under load every one of them carries a valid cookie, so each comes
 * from an address that can receive; a botnet holding many such addresses still cannot make the
 * server spend more than this on X25519 (about 0.2-0.4 ms each with libsodium here: at most a
 * fifth of a core), and established sessions keep their thread. 500 a second is still a join
 * storm of 5000 clients in 10 s.
 */
export const HANDSHAKES_PER_S = 500;
/** Most source IPs the rate limiter remembers; the least recently seen goes first. */
export const MAX_TRACKED_SOURCES = 4096;
/**
 * Cookie replies per second in all (burst: a tenth of it). Spoofed floods come from fresh
 * addresses, which the per-source limit cannot stop, and sealing a reply costs tens of
 * microseconds of pure-JavaScript XChaCha20-Poly1305 on the data-path thread; past this budget
 * an initiation without a valid mac2 costs only its mac1 check. Established sessions keep their
 * latency; a new client may need a retry or two while the budget is being spent by a flood.
 */
export const COOKIE_REPLIES_PER_S = 1000;

const TEXT = new TextEncoder();
const LABEL_COOKIE = TEXT.encode("cookie--");
const MAC2_FROM_END = MAC_BYTES; // mac2 is the last field of an initiation
const MAC1_FROM_END = 2 * MAC_BYTES;

/** The key that seals cookie replies from the holder of `publicKey`: HASH("cookie--" || key). */
export function cookieKey(publicKey: Uint8Array): Uint8Array {
  const input = new Uint8Array(LABEL_COOKIE.length + publicKey.length);
  input.set(LABEL_COOKIE);
  input.set(publicKey, LABEL_COOKIE.length);
  return blake2s(input);
}

/** The mac1 field of a handshake message (a view). */
export function mac1Field(msg: Uint8Array): Uint8Array {
  return msg.subarray(msg.length - MAC1_FROM_END, msg.length - MAC2_FROM_END);
}

/** mac2 = MAC(cookie, everything before mac2). */
function mac2Of(cookie: Uint8Array, msg: Uint8Array): Uint8Array {
  return blake2s(msg.subarray(0, msg.length - MAC2_FROM_END), { key: cookie, dkLen: MAC_BYTES });
}

/** Writes mac2 into a handshake message: MAC(cookie, msg up to mac2), or zeros without one. */
export function writeMac2(msg: Uint8Array, cookie: Uint8Array | undefined): void {
  const off = msg.length - MAC2_FROM_END;
  if (cookie) msg.set(mac2Of(cookie, msg), off);
  else msg.fill(0, off);
}

/** True when the message's mac2 is right for `cookie`. */
export function checkMac2(msg: Uint8Array, cookie: Uint8Array): boolean {
  return equalBytes(mac2Of(cookie, msg), msg.subarray(msg.length - MAC2_FROM_END));
}

/** True when the message's mac2 is all zero (sent without a cookie). */
function zeroMac2(msg: Uint8Array): boolean {
  let x = 0;
  for (let i = msg.length - MAC2_FROM_END; i < msg.length; i++) x |= msg[i]!;
  return x === 0;
}

/** The bytes a cookie binds: the source IP and port, as text (Deno's canonical address form). */
function sourceBytes(from: Endpoint): Uint8Array {
  return TEXT.encode(`${from.hostname}|${from.port}`);
}

/**
 * Builds a cookie reply to the initiation `init` (its sender id becomes the reply's receiver).
 */
export function createCookieReply(
  key: Uint8Array,
  init: Uint8Array,
  cookie: Uint8Array,
  nonce: Uint8Array,
): Uint8Array {
  const d = new Uint8Array(COOKIE_REPLY_BYTES);
  writeHeader(d, MessageType.CookieReply, 0, readU32(init, HEADER_BYTES), 0);
  d.set(nonce, HEADER_BYTES);
  const sealed = xchacha20poly1305(key, nonce, mac1Field(init)).encrypt(cookie);
  d.set(sealed, HEADER_BYTES + COOKIE_NONCE_BYTES);
  return d;
}

/** Opens a cookie reply to the initiation whose mac1 is `mac1`; undefined when it does not
 * authenticate. `d` must be {@link COOKIE_REPLY_BYTES} long (classify() checks it). */
export function openCookieReply(
  key: Uint8Array,
  d: Uint8Array,
  mac1: Uint8Array,
): Uint8Array | undefined {
  if (d.length !== COOKIE_REPLY_BYTES) return undefined;
  const nonce = d.subarray(HEADER_BYTES, HEADER_BYTES + COOKIE_NONCE_BYTES);
  try {
    return xchacha20poly1305(key, nonce, mac1).decrypt(
      d.subarray(HEADER_BYTES + COOKIE_NONCE_BYTES),
    );
  } catch {
    return undefined; // bad tag (noble throws)
  }
}

/**
 * Counts events in the last second in ten 100 ms slots: fixed memory, and "under load" lasts
 * about a second after the flood stops, as WireGuard's does (it keeps the state one second).
 */
export class RateWindow {
  readonly #slots = new Uint32Array(10);
  #slot = -Infinity; // index (now / 100) of the newest slot
  #sum = 0;

  /** Adds one event at `now` (ms). */
  add(now: number): void {
    this.#advance(now);
    this.#slots[this.#slot % 10]!++;
    this.#sum++;
  }

  /** Events in the second up to `now`. */
  count(now: number): number {
    this.#advance(now);
    return this.#sum;
  }

  #advance(now: number): void {
    const slot = Math.floor(now / 100);
    if (slot <= this.#slot) return; // same slot (or a clock that went back: stay put)
    if (slot - this.#slot >= 10) {
      this.#slots.fill(0);
      this.#sum = 0;
    } else {
      for (let s = this.#slot + 1; s <= slot; s++) {
        this.#sum -= this.#slots[s % 10]!;
        this.#slots[s % 10] = 0;
      }
    }
    this.#slot = slot;
  }
}

/** A token bucket: `rate` tokens per second, at most `burst` saved up. */
export class TokenBucket {
  /** Tokens now (fractional). */
  tokens: number;
  /** When `tokens` was last brought up to date (ms). */
  atMs: number;

  constructor(readonly ratePerS: number, readonly burst: number, now = -Infinity) {
    this.tokens = burst;
    this.atMs = now;
  }

  /** Takes one token at `now`; false when there is none. */
  take(now: number): boolean {
    if (now > this.atMs) {
      this.tokens = Math.min(this.burst, this.tokens + (now - this.atMs) * this.ratePerS / 1000);
      this.atMs = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * A token bucket per source IP (WireGuard's rate limiter, section 5.4.7 mentions it), in a map
 * that never holds more than `max` sources: the least recently seen is forgotten first. A
 * forgotten source only gets a fresh burst, and every reply is smaller than the datagram that
 * caused it, so eviction cannot be turned into amplification.
 */
export class SourceLimiter {
  readonly #buckets = new Map<string, TokenBucket>();

  constructor(
    readonly ratePerS = SOURCE_RATE_PER_S,
    readonly burst = SOURCE_BURST,
    readonly max = MAX_TRACKED_SOURCES,
  ) {}

  /** Sources remembered now. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Takes one token for `source` at `now`; false when it has none left. */
  take(now: number, source: string): boolean {
    const m = this.#buckets;
    let b = m.get(source);
    if (b) m.delete(source); // re-inserted below: the map's order is least recently seen first
    else b = new TokenBucket(this.ratePerS, this.burst, now);
    // Forget sources whose bucket is full again (they are as good as new), a few per call, and
    // the least recently seen one when the map is full.
    const fullAfterMs = this.burst * 1000 / this.ratePerS;
    for (let i = 0; i < 2; i++) {
      const first = m.entries().next();
      if (first.done || now - first.value[1].atMs < fullAfterMs) break;
      m.delete(first.value[0]);
    }
    if (m.size >= this.max) m.delete(m.keys().next().value!);
    m.set(source, b);
    return b.take(now);
  }
}

/** What the server does with one initiation whose mac1 is valid. */
export interface Admission {
  /** Why it is not processed, or undefined: go on with the Diffie-Hellman. */
  drop:
    | Extract<DropReason, "under_load" | "source_rate" | "cookie_budget" | "dh_budget">
    | undefined;
  /** A cookie reply to send to the initiation's source. */
  reply: Uint8Array | undefined;
}

/** Counters of the handshake gate. */
export interface GateStats {
  /** Initiations with a valid mac1 seen. */
  initiations: number;
  /** Of those, let through to the Diffie-Hellman. */
  processed: number;
  /** Cookie replies sent. */
  cookieReplies: number;
  /** Refused by the per-source rate limit under load (nothing sent). */
  rateLimited: number;
  /** Refused because the cookie reply budget was spent (nothing sent). */
  overBudget: number;
  /** Refused because the global Diffie-Hellman budget was spent (nothing sent). */
  dhBudget: number;
}

/** The server side: load meter, cookie secrets, mac2 check, cookie replies, source limiter. */
export class HandshakeGate {
  /** Counters, for tests and status. */
  readonly stats: GateStats = {
    initiations: 0,
    processed: 0,
    cookieReplies: 0,
    rateLimited: 0,
    overBudget: 0,
    dhBudget: 0,
  };
  readonly #load = new RateWindow();
  readonly #limiter = new SourceLimiter();
  readonly #budget = new TokenBucket(COOKIE_REPLIES_PER_S, COOKIE_REPLIES_PER_S / 10);
  readonly #dh = new TokenBucket(HANDSHAKES_PER_S, HANDSHAKES_PER_S / 10);
  readonly #replyKey: Uint8Array;
  readonly #threshold: number;
  readonly #random: (buf: Uint8Array) => void;
  #secret = new Uint8Array(32);
  #previous: Uint8Array | undefined;
  #secretBornMs = -Infinity;

  /**
   * @param serverPublic the server's static public key (keys the cookie replies)
   * @param threshold initiations per second above which the server is under load
   * @param random fills a buffer with random bytes
   */
  constructor(
    serverPublic: Uint8Array,
    threshold: number,
    random: (buf: Uint8Array) => void,
  ) {
    this.#replyKey = cookieKey(serverPublic);
    this.#threshold = threshold;
    this.#random = random;
  }

  /** True when more than the threshold of initiations arrived in the last second. */
  underLoad(now: number): boolean {
    return this.#load.count(now) > this.#threshold;
  }

  /** Source IPs the rate limiter remembers (bounded by {@link MAX_TRACKED_SOURCES}). */
  get trackedSources(): number {
    return this.#limiter.size;
  }

  /**
   * Decides about one initiation `d` from `from` whose mac1 was valid. Not under load: process
   * it (mac2 is not looked at, as in WireGuard). Under load: the source must be within its rate,
   * and then either mac2 is valid for the source's cookie (process it) or it gets a cookie reply
   * while the reply budget lasts.
   */
  admit(now: number, d: Uint8Array, from: Endpoint): Admission {
    this.stats.initiations++;
    this.#load.add(now);
    if (!this.underLoad(now)) return this.#pass(now);
    // IPv6 sources share a bucket per /64 (one host usually holds the whole /64).
    if (!this.#limiter.take(now, sourceKey(from.hostname))) {
      this.stats.rateLimited++;
      return { drop: "source_rate", reply: undefined };
    }
    this.#rotate(now);
    const src = sourceBytes(from);
    // An all-zero mac2 means "no cookie": skip the MACs (a flood's usual case, so cheap).
    if (
      !zeroMac2(d) &&
      (checkMac2(d, this.#cookie(this.#secret, src)) ||
        (this.#previous !== undefined && checkMac2(d, this.#cookie(this.#previous, src))))
    ) {
      return this.#pass(now);
    }
    if (!this.#budget.take(now)) {
      this.stats.overBudget++;
      return { drop: "cookie_budget", reply: undefined };
    }
    const nonce = new Uint8Array(COOKIE_NONCE_BYTES);
    this.#random(nonce);
    this.stats.cookieReplies++;
    const cookie = this.#cookie(this.#secret, src);
    return { drop: "under_load", reply: createCookieReply(this.#replyKey, d, cookie, nonce) };
  }

  /** The cookie of a source under the current secret (exposed for tests). */
  cookieFor(now: number, from: Endpoint): Uint8Array {
    this.#rotate(now);
    return this.#cookie(this.#secret, sourceBytes(from));
  }

  #pass(now: number): Admission {
    if (!this.#dh.take(now)) {
      this.stats.dhBudget++;
      return { drop: "dh_budget", reply: undefined };
    }
    this.stats.processed++;
    return { drop: undefined, reply: undefined };
  }

  #cookie(secret: Uint8Array, src: Uint8Array): Uint8Array {
    return blake2s(src, { key: secret, dkLen: COOKIE_BYTES });
  }

  /** Replaces the secret every 2 minutes (lazily); the previous one is kept for one period. */
  #rotate(now: number): void {
    const age = now - this.#secretBornMs;
    if (age < COOKIE_SECRET_ROTATE_MS) return;
    this.#previous = age < 2 * COOKIE_SECRET_ROTATE_MS ? this.#secret : undefined;
    this.#secret = new Uint8Array(32);
    this.#random(this.#secret);
    this.#secretBornMs = now;
  }
}

/**
 * The client side: the last cookie from the server, and which initiation may be answered by a
 * cookie reply. Only one reply per initiation is taken, so a replayed reply is ignored
 * (WireGuard likewise accepts a cookie reply only for the last message it sent a mac1 on).
 */
export class CookieJar {
  readonly #key: Uint8Array;
  #cookie: Uint8Array | undefined;
  #cookieAtMs = -Infinity;
  #awaiting: Uint8Array | undefined; // mac1 of the initiation a reply may answer

  /** @param serverPublic the server's static public key */
  constructor(serverPublic: Uint8Array) {
    this.#key = cookieKey(serverPublic);
  }

  /** True when a cookie younger than {@link COOKIE_VALID_MS} is held. */
  fresh(now: number): boolean {
    return this.#cookie !== undefined && now - this.#cookieAtMs < COOKIE_VALID_MS;
  }

  /** Writes mac2 (from a fresh cookie, else zeros) into a new initiation and waits for at most
   * one cookie reply to it. */
  stamp(now: number, init: Uint8Array): void {
    this.restamp(now, init);
    this.#awaiting = mac1Field(init).slice();
  }

  /** Writes mac2 into an initiation being sent again (does not re-arm the cookie reply). */
  restamp(now: number, init: Uint8Array): void {
    writeMac2(init, this.fresh(now) ? this.#cookie : undefined);
  }

  /** Takes a cookie reply; false when nothing awaits one, it does not authenticate, or one was
   * already taken for this initiation. */
  accept(now: number, reply: Uint8Array): boolean {
    if (!this.#awaiting) return false;
    const cookie = openCookieReply(this.#key, reply, this.#awaiting);
    if (!cookie || cookie.length !== COOKIE_BYTES) return false;
    this.#cookie = cookie;
    this.#cookieAtMs = now;
    this.#awaiting = undefined;
    return true;
  }
}
