/**
 * The Noise Protocol Framework (revision 34), limited to what xvpn needs: the IK and IKpsk2
 * handshake patterns over DH 25519, cipher ChaChaPoly and hash BLAKE2s or SHA256.
 *
 * Sans-I/O and synchronous: bytes in, bytes out, no clock, no sockets. The primitives are
 * @noble's audited X25519, ChaCha20-Poly1305, BLAKE2s, SHA-256 and HMAC; this file only composes
 * them as the specification prescribes (§4 CipherState, §5 SymmetricState and HandshakeState,
 * §4.3 HKDF). Section numbers below refer to https://noiseprotocol.org/noise.html (rev. 34).
 *
 * Error policy: construction and local misuse (writing out of turn, a bad configured key) throw.
 * Everything that processes received bytes (`readMessage`, `decryptWithAd`) returns undefined on
 * any failure and never throws.
 *
 * @module
 */
import { x25519 } from "@noble/curves/ed25519.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { blake2s } from "@noble/hashes/blake2.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { hmac } from "@noble/hashes/hmac.js";

/** Hash functions supported (§12.8, §12.9). Both have HASHLEN 32 and BLOCKLEN 64. */
export type NoiseHash = "BLAKE2s" | "SHA256";

/** Length of an X25519 key or DH output (DHLEN, §12.1). */
export const NOISE_DH_BYTES = 32;
/** Length of the hash output (HASHLEN) for both supported hashes. */
export const NOISE_HASH_BYTES = 32;
/** Length of a ChaChaPoly authentication tag (§5.1). */
export const NOISE_TAG_BYTES = 16;
/** Length of a pre-shared key (§9). */
export const NOISE_PSK_BYTES = 32;
/** Largest Noise message (§3). */
export const NOISE_MAX_MESSAGE_BYTES = 65535;

// A JS number counts exactly up to 2^53 - 1. Refusing to go past it keeps well clear of the
// reserved nonce 2^64 - 1 (§5.1); at one message per nanosecond that is still 104 days.
const MAX_NONCE = Number.MAX_SAFE_INTEGER;

const HASHES = { BLAKE2s: blake2s, SHA256: sha256 } as const;
type HashFn = (typeof HASHES)[NoiseHash];

/** The supported handshake patterns (§7.5 IK, §9.4 IKpsk2): tokens of message 1 and 2. */
const PATTERNS = {
  IK: [["e", "es", "s", "ss"], ["e", "ee", "se"]],
  IKpsk2: [["e", "es", "s", "ss"], ["e", "ee", "se", "psk"]],
} as const;
type PatternName = keyof typeof PATTERNS;
type Token = (typeof PATTERNS)[PatternName][number][number];

const PROTOCOL_NAME_RE = /^Noise_(IK|IKpsk2)_25519_ChaChaPoly_(BLAKE2s|SHA256)$/;

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** HKDF as Noise defines it (§4.3): HMAC-HASH with the chaining key, two or three outputs. */
function hkdf(
  hash: HashFn,
  chainingKey: Uint8Array,
  ikm: Uint8Array,
  outputs: 2 | 3,
): Uint8Array[] {
  const tempKey = hmac(hash, chainingKey, ikm);
  const out1 = hmac(hash, tempKey, Uint8Array.of(0x01));
  const out2 = hmac(hash, tempKey, concat(out1, Uint8Array.of(0x02)));
  if (outputs === 2) return [out1, out2];
  return [out1, out2, hmac(hash, tempKey, concat(out2, Uint8Array.of(0x03)))];
}

/**
 * X25519 (§12.1). Returns undefined for a low-order public key or an all-zero result, which
 * Noise permits rejecting and which would otherwise let an attacker force a known shared secret.
 * @noble rejects the low-order inputs itself (by throwing); the zero check is a second guard.
 */
function dh(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined {
  let shared: Uint8Array;
  try {
    shared = x25519.getSharedSecret(privateKey, publicKey);
  } catch {
    return undefined;
  }
  let acc = 0;
  for (const b of shared) acc |= b; // no early exit: the result is secret
  return acc === 0 ? undefined : shared;
}

/**
 * A ChaChaPoly cipher key and its 64-bit message counter (§5.1). Without a key it passes data
 * through unchanged, as the handshake needs before the first DH. The nonce is 4 zero bytes
 * followed by the counter in little-endian (§12.3).
 */
export class CipherState {
  #key: Uint8Array | undefined;
  #nonce = 0;
  // Reused nonce buffer: @noble copies what it needs before returning.
  readonly #nonceBytes = new Uint8Array(12);
  readonly #nonceView = new DataView(this.#nonceBytes.buffer);

  /** Creates a cipher with `key` (32 bytes) and nonce 0, or an empty one without. */
  constructor(key?: Uint8Array) {
    if (key !== undefined && key.length !== NOISE_DH_BYTES) {
      throw new RangeError(`Noise cipher key must be 32 bytes, got ${key.length}`);
    }
    this.#key = key?.slice();
  }

  /** Whether a key is set (HasKey, §5.1). */
  hasKey(): boolean {
    return this.#key !== undefined;
  }

  /** The next nonce to be used. */
  get nonce(): number {
    return this.#nonce;
  }

  /** Sets the next nonce (SetNonce, §5.1), for transports that carry explicit counters. */
  setNonce(nonce: number): void {
    if (!Number.isSafeInteger(nonce) || nonce < 0) {
      throw new RangeError(`Noise nonce must be an integer in 0..2^53-1, got ${nonce}`);
    }
    this.#nonce = nonce;
  }

  /**
   * Encrypts and authenticates `plaintext` with associated data `ad` under the current nonce,
   * then increments it (EncryptWithAd, §5.1). Throws when the nonce space is used up: the caller
   * must rekey or start a new handshake long before.
   */
  encryptWithAd(ad: Uint8Array, plaintext: Uint8Array): Uint8Array {
    if (!this.#key) return plaintext.slice();
    if (this.#nonce >= MAX_NONCE) throw new Error("Noise nonce exhausted: start a new handshake");
    const out = chacha20poly1305(this.#key, this.#nonceFor(this.#nonce), ad).encrypt(plaintext);
    this.#nonce++;
    return out;
  }

  /**
   * Authenticates and decrypts `ciphertext` (DecryptWithAd, §5.1). Returns undefined on any
   * failure (bad tag, too short, nonce exhausted) and then leaves the nonce unchanged, as the
   * specification requires; never throws.
   */
  decryptWithAd(ad: Uint8Array, ciphertext: Uint8Array): Uint8Array | undefined {
    if (!this.#key) return ciphertext.slice();
    if (this.#nonce >= MAX_NONCE || ciphertext.length < NOISE_TAG_BYTES) return undefined;
    let plain: Uint8Array;
    try {
      plain = chacha20poly1305(this.#key, this.#nonceFor(this.#nonce), ad).decrypt(ciphertext);
    } catch {
      return undefined;
    }
    this.#nonce++;
    return plain;
  }

  /**
   * Replaces the key with the first 32 bytes of ENCRYPT(k, 2^64-1, "", zeros(32)) (Rekey, §4.2,
   * §11.3). The nonce is left as it is.
   */
  rekey(): void {
    if (!this.#key) throw new Error("Noise rekey needs a key");
    const maxNonce = new Uint8Array(12);
    maxNonce.fill(0xff, 4);
    const out = chacha20poly1305(this.#key, maxNonce, new Uint8Array(0))
      .encrypt(new Uint8Array(32));
    this.#key = out.slice(0, 32);
  }

  /** An independent copy, so a failed handshake read can be rolled back. */
  clone(): CipherState {
    const copy = new CipherState(this.#key);
    copy.#nonce = this.#nonce;
    return copy;
  }

  #nonceFor(n: number): Uint8Array {
    this.#nonceView.setUint32(4, n >>> 0, true);
    this.#nonceView.setUint32(8, Math.floor(n / 0x1_0000_0000), true);
    return this.#nonceBytes;
  }
}

/** Chaining key, handshake hash and the handshake's cipher (SymmetricState, §5.2). */
class SymmetricState {
  constructor(
    readonly hash: HashFn,
    public ck: Uint8Array,
    public h: Uint8Array,
    public cipher: CipherState,
  ) {}

  /** InitializeSymmetric (§5.2): a name that fits in HASHLEN is zero-padded, else hashed. */
  static initialize(hash: HashFn, protocolName: string): SymmetricState {
    const name = new TextEncoder().encode(protocolName);
    let h: Uint8Array;
    if (name.length <= NOISE_HASH_BYTES) {
      h = new Uint8Array(NOISE_HASH_BYTES);
      h.set(name);
    } else {
      h = hash(name);
    }
    return new SymmetricState(hash, h.slice(), h, new CipherState());
  }

  mixKey(ikm: Uint8Array): void {
    const [ck, tempK] = hkdf(this.hash, this.ck, ikm, 2) as [Uint8Array, Uint8Array];
    this.ck = ck;
    this.cipher = new CipherState(tempK); // HASHLEN is 32: no truncation needed
  }

  mixHash(data: Uint8Array): void {
    this.h = this.hash(concat(this.h, data));
  }

  mixKeyAndHash(ikm: Uint8Array): void {
    const [ck, tempH, tempK] = hkdf(this.hash, this.ck, ikm, 3) as [
      Uint8Array,
      Uint8Array,
      Uint8Array,
    ];
    this.ck = ck;
    this.mixHash(tempH);
    this.cipher = new CipherState(tempK);
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.cipher.encryptWithAd(this.h, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  decryptAndHash(ciphertext: Uint8Array): Uint8Array | undefined {
    const plaintext = this.cipher.decryptWithAd(this.h, ciphertext);
    if (plaintext) this.mixHash(ciphertext);
    return plaintext;
  }

  split(): [Uint8Array, Uint8Array] {
    return hkdf(this.hash, this.ck, new Uint8Array(0), 2) as [Uint8Array, Uint8Array];
  }

  clone(): SymmetricState {
    return new SymmetricState(this.hash, this.ck, this.h, this.cipher.clone());
  }
}

/** Options for {@link HandshakeState.initiator} and {@link HandshakeState.responder}. */
export interface HandshakeOptions {
  /**
   * Full Noise protocol name: `Noise_IK_25519_ChaChaPoly_BLAKE2s`, `Noise_IKpsk2_25519_ChaChaPoly_SHA256`,
   * and so on. Anything else is rejected.
   */
  protocolName: string;
  /** Data both sides must agree on, mixed into the handshake hash (§6). */
  prologue: Uint8Array;
  /** Our static X25519 private key (32 bytes). */
  staticPrivate: Uint8Array;
  /** The responder's static public key: required for the initiator, refused for the responder. */
  remoteStatic?: Uint8Array;
  /** The 32-byte pre-shared key: required for IKpsk2, refused for IK. */
  psk?: Uint8Array;
  /** Fixed ephemeral private key, for test vectors only. Default: fresh random. */
  ephemeralPrivate?: Uint8Array;
  /** Our static public key, when the caller has it (saves one scalar multiplication). */
  staticPublic?: Uint8Array;
  /** X25519 to use (default: @noble's, pure JavaScript); the server injects libsodium's. */
  dh?: DhImpl;
  /**
   * Responder only: called with the initiator's static key as soon as message 1 reveals it,
   * before the `ss` Diffie-Hellman; returning false ends the read there (readMessage returns
   * undefined), so an unknown key costs one DH instead of two.
   */
  acceptRemote?: (remoteStatic: Uint8Array) => boolean;
}

/** An X25519 implementation (the shape of src/crypto/x25519.ts). */
export interface DhImpl {
  /** The public key of a private key. */
  publicKey(privateKey: Uint8Array): Uint8Array;
  /** The shared secret, or undefined for a low-order public key (all-zero result). */
  shared(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined;
}

/** @noble's X25519 as a {@link DhImpl}: the default. */
const NOBLE_DH: DhImpl = {
  publicKey: (sk) => x25519.getPublicKey(sk),
  shared: (sk, pk) => dh(sk, pk),
};

/** The traffic keys a finished handshake yields (Split, §5.2). */
export interface NoiseTransportKeys {
  /** Key for messages from initiator to responder (32 bytes). */
  initiatorToResponder: Uint8Array;
  /** Key for messages from responder to initiator (32 bytes). */
  responderToInitiator: Uint8Array;
}

function checkKey(what: string, key: Uint8Array | undefined, bytes: number): void {
  if (key !== undefined && key.length !== bytes) {
    throw new RangeError(`Noise ${what} must be ${bytes} bytes, got ${key.length}`);
  }
}

/**
 * One side of an IK or IKpsk2 handshake (HandshakeState, §5.3). The initiator writes message 1
 * and reads message 2; the responder the reverse. Then {@link HandshakeState.split} gives the transport keys.
 *
 * A failed `readMessage` leaves the state exactly as it was, so a forged or corrupted packet
 * cannot destroy a handshake in progress: the genuine message can still be read afterwards.
 */
export class HandshakeState {
  readonly #initiator: boolean;
  readonly #pattern: PatternName;
  #symmetric: SymmetricState;
  readonly #s: Uint8Array;
  readonly #sPublic: Uint8Array;
  #e: Uint8Array | undefined;
  #re: Uint8Array | undefined;
  #rs: Uint8Array | undefined;
  readonly #psk: Uint8Array | undefined;
  readonly #fixedEphemeral: Uint8Array | undefined;
  readonly #dh: DhImpl;
  readonly #accept: ((rs: Uint8Array) => boolean) | undefined;
  #messageIndex = 0;

  private constructor(initiator: boolean, o: HandshakeOptions) {
    const match = PROTOCOL_NAME_RE.exec(o.protocolName);
    if (!match) {
      throw new Error(
        `Unsupported Noise protocol "${o.protocolName}": expected ` +
          `Noise_{IK,IKpsk2}_25519_ChaChaPoly_{BLAKE2s,SHA256}`,
      );
    }
    this.#pattern = match[1] as PatternName;
    const hash = HASHES[match[2] as NoiseHash];
    checkKey("static private key", o.staticPrivate, NOISE_DH_BYTES);
    checkKey("remote static key", o.remoteStatic, NOISE_DH_BYTES);
    checkKey("ephemeral private key", o.ephemeralPrivate, NOISE_DH_BYTES);
    checkKey("pre-shared key", o.psk, NOISE_PSK_BYTES);
    if (initiator && !o.remoteStatic) {
      throw new Error("Noise IK initiator needs the responder's static public key (remoteStatic)");
    }
    if (!initiator && o.remoteStatic) {
      throw new Error(
        "Noise IK responder learns remoteStatic from message 1; check it there, do not pass it",
      );
    }
    if (this.#pattern === "IKpsk2" && !o.psk) {
      throw new Error(`${o.protocolName} needs a 32-byte pre-shared key (psk)`);
    }
    if (this.#pattern === "IK" && o.psk) {
      throw new Error(`${o.protocolName} takes no pre-shared key; use an IKpsk2 protocol name`);
    }

    this.#initiator = initiator;
    this.#dh = o.dh ?? NOBLE_DH;
    this.#accept = o.acceptRemote;
    this.#s = o.staticPrivate.slice();
    this.#sPublic = o.staticPublic?.slice() ?? this.#dh.publicKey(this.#s);
    this.#rs = o.remoteStatic?.slice();
    this.#psk = o.psk?.slice();
    this.#fixedEphemeral = o.ephemeralPrivate?.slice();

    // Initialize (§5.3): protocol name, prologue, then the pre-message "<- s".
    this.#symmetric = SymmetricState.initialize(hash, o.protocolName);
    this.#symmetric.mixHash(o.prologue);
    this.#symmetric.mixHash(initiator ? this.#rs! : this.#sPublic);
  }

  /** Starts the initiator side. Throws on an unsupported protocol name or bad key lengths. */
  static initiator(o: HandshakeOptions): HandshakeState {
    return new HandshakeState(true, o);
  }

  /** Starts the responder side. Throws on an unsupported protocol name or bad key lengths. */
  static responder(o: HandshakeOptions): HandshakeState {
    return new HandshakeState(false, o);
  }

  /**
   * The peer's static public key: the configured one for the initiator; for the responder,
   * undefined until message 1 has been read, so the caller can check it against an allow-list
   * before answering.
   */
  get remoteStatic(): Uint8Array | undefined {
    return this.#rs?.slice();
  }

  /** The handshake hash h (§5.2); after completion, a unique id of this session for channel binding. */
  get handshakeHash(): Uint8Array {
    return this.#symmetric.h.slice();
  }

  /** Whether both handshake messages have been processed. */
  isComplete(): boolean {
    return this.#messageIndex >= PATTERNS[this.#pattern].length;
  }

  /** Whether the next step for this side is writeMessage (false: readMessage or complete). */
  isMyTurnToWrite(): boolean {
    return !this.isComplete() && (this.#messageIndex % 2 === 0) === this.#initiator;
  }

  /**
   * Writes the next handshake message carrying `payload` (WriteMessage, §5.3). Throws on local
   * misuse only: out of turn, after completion, a message over 65535 bytes, or a configured
   * remote static key that is not a usable X25519 public key.
   */
  writeMessage(payload: Uint8Array): Uint8Array {
    if (!this.isMyTurnToWrite()) {
      throw new Error(`Noise writeMessage() out of turn (message ${this.#messageIndex + 1})`);
    }
    const sym = this.#symmetric;
    const parts: Uint8Array[] = [];
    for (const token of PATTERNS[this.#pattern][this.#messageIndex]!) {
      if (token === "e") {
        this.#e = this.#fixedEphemeral ?? x25519.utils.randomSecretKey();
        const ePublic = this.#dh.publicKey(this.#e);
        parts.push(ePublic);
        sym.mixHash(ePublic);
        if (this.#psk) sym.mixKey(ePublic); // §9.2: "e" also mixes the key in psk handshakes
      } else if (token === "s") {
        parts.push(sym.encryptAndHash(this.#sPublic));
      } else if (token === "psk") {
        sym.mixKeyAndHash(this.#psk!);
      } else {
        const shared = this.#dhToken(token);
        if (!shared) {
          throw new Error(
            "Noise DH failed: the remote static key is not a valid X25519 public key",
          );
        }
        sym.mixKey(shared);
      }
    }
    parts.push(sym.encryptAndHash(payload));
    const length = parts.reduce((n, p) => n + p.length, 0);
    if (length > NOISE_MAX_MESSAGE_BYTES) {
      throw new RangeError(`Noise message of ${length} bytes exceeds ${NOISE_MAX_MESSAGE_BYTES}`);
    }
    const message = new Uint8Array(length);
    let offset = 0;
    for (const p of parts) {
      message.set(p, offset);
      offset += p.length;
    }
    this.#messageIndex++;
    return message;
  }

  /**
   * Reads the next handshake message and returns its payload (ReadMessage, §5.3), or undefined
   * when the message is out of turn, too short or long, fails authentication, or carries an
   * invalid public key. Never throws; on failure the state is left unchanged.
   */
  readMessage(message: Uint8Array): Uint8Array | undefined {
    if (this.isComplete() || this.isMyTurnToWrite()) return undefined;
    if (message.length > NOISE_MAX_MESSAGE_BYTES) return undefined;
    const saved = { sym: this.#symmetric.clone(), re: this.#re, rs: this.#rs };
    const payload = this.#read(message);
    if (payload) {
      this.#messageIndex++;
      return payload;
    }
    this.#symmetric = saved.sym;
    this.#re = saved.re;
    this.#rs = saved.rs;
    return undefined;
  }

  /**
   * Derives the transport keys (Split, §5.2). Throws before the handshake is complete. Nonces
   * start at 0 in `new CipherState(key)`.
   */
  split(): NoiseTransportKeys {
    if (!this.isComplete()) throw new Error("Noise split() before the handshake is complete");
    const [k1, k2] = this.#symmetric.split();
    return { initiatorToResponder: k1, responderToInitiator: k2 };
  }

  #read(message: Uint8Array): Uint8Array | undefined {
    const sym = this.#symmetric;
    let offset = 0;
    for (const token of PATTERNS[this.#pattern][this.#messageIndex]!) {
      if (token === "e") {
        if (message.length - offset < NOISE_DH_BYTES) return undefined;
        const re = message.slice(offset, offset + NOISE_DH_BYTES);
        offset += NOISE_DH_BYTES;
        this.#re = re;
        sym.mixHash(re);
        if (this.#psk) sym.mixKey(re);
      } else if (token === "s") {
        const size = NOISE_DH_BYTES + (sym.cipher.hasKey() ? NOISE_TAG_BYTES : 0);
        if (message.length - offset < size) return undefined;
        const rs = sym.decryptAndHash(message.subarray(offset, offset + size));
        if (!rs) return undefined;
        offset += size;
        this.#rs = rs;
        if (this.#accept && !this.#accept(rs)) return undefined;
      } else if (token === "psk") {
        sym.mixKeyAndHash(this.#psk!);
      } else {
        const shared = this.#dhToken(token);
        if (!shared) return undefined;
        sym.mixKey(shared);
      }
    }
    return sym.decryptAndHash(message.subarray(offset));
  }

  /** The DH a token names, from this side's point of view (§7.1). */
  #dhToken(token: Exclude<Token, "e" | "s" | "psk">): Uint8Array | undefined {
    const e = this.#e;
    const re = this.#re;
    const rs = this.#rs;
    const d = this.#dh;
    if (token === "ee") return e && re && d.shared(e, re);
    if (token === "ss") return rs && d.shared(this.#s, rs);
    // "es" is initiator-ephemeral with responder-static; "se" the other way round.
    const mineIsEphemeral = (token === "es") === this.#initiator;
    return mineIsEphemeral ? e && rs && d.shared(e, rs) : re && d.shared(this.#s, re);
  }
}
