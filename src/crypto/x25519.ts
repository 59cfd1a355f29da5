/**
 * X25519 for the handshake, behind one small interface with two implementations: libsodium by
 * FFI (`crypto_scalarmult`, about 30-60 µs here) and @noble/curves (pure JavaScript, about
 * 0.5 ms). A server answers every initiation with two of these (es and ss, after the allow-list
 * check), on the thread that also forwards every game packet: the pure-JS one stalled each
 * client's traffic for about 1.7 ms per joining client. Both give identical bytes
 * (`x25519_test.ts`, RFC 7748 vectors).
 *
 * @module
 */
import { x25519 as noble } from "@noble/curves/ed25519.js";

/** X25519 key agreement (RFC 7748). */
export interface X25519 {
  /** Which implementation this is. */
  readonly name: "libsodium" | "noble";
  /** The public key of `privateKey` (32 bytes each). */
  publicKey(privateKey: Uint8Array): Uint8Array;
  /**
   * The shared secret of `privateKey` and `publicKey`, or undefined when the public key is of low
   * order (an all-zero result), which Noise lets a party refuse.
   */
  shared(privateKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined;
}

/** The pure-JavaScript implementation (always available). */
export const nobleX25519: X25519 = {
  name: "noble",
  publicKey: (sk) => noble.getPublicKey(sk),
  shared(sk, pk) {
    let out: Uint8Array;
    try {
      out = noble.getSharedSecret(sk, pk);
    } catch {
      return undefined; // @noble throws on low-order points
    }
    return allZero(out) ? undefined : out;
  },
};

/** True when every byte is zero, without an early exit (the value is secret). */
function allZero(b: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < b.length; i++) acc |= b[i]!;
  return acc === 0;
}

const SYMBOLS = {
  sodium_init: { parameters: [], result: "i32" },
  // int crypto_scalarmult(unsigned char *q, const unsigned char *n, const unsigned char *p)
  crypto_scalarmult: { parameters: ["buffer", "buffer", "buffer"], result: "i32" },
  // int crypto_scalarmult_base(unsigned char *q, const unsigned char *n)
  crypto_scalarmult_base: { parameters: ["buffer", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The library names libsodium goes by on Linux. */
const NAMES = ["libsodium.so.23", "libsodium.so", "libsodium.so.26"];

/**
 * libsodium's X25519, or undefined when the library cannot be loaded (or `--allow-ffi` is not
 * granted): the caller falls back to {@link nobleX25519}.
 */
export function sodiumX25519(): X25519 | undefined {
  if (Deno.build.os !== "linux") return undefined;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return undefined;
  let lib: Deno.DynamicLibrary<typeof SYMBOLS> | undefined;
  for (const name of NAMES) {
    try {
      lib = Deno.dlopen(name, SYMBOLS);
      break;
    } catch {
      // try the next name
    }
  }
  if (!lib || lib.symbols.sodium_init() < 0) return undefined;
  const s = lib.symbols;
  return {
    name: "libsodium",
    publicKey(sk) {
      const out = new Uint8Array(32);
      if (s.crypto_scalarmult_base(out, sk) !== 0) throw new Error("crypto_scalarmult_base failed");
      return out;
    },
    shared(sk, pk) {
      const out = new Uint8Array(32);
      // libsodium returns -1 for an all-zero result (a low-order point).
      if (s.crypto_scalarmult(out, sk, pk) !== 0) return undefined;
      return allZero(out) ? undefined : out;
    },
  };
}

let best: X25519 | undefined;

/** The fastest available implementation (libsodium, else noble), chosen once. */
export function bestX25519(): X25519 {
  return best ??= sodiumX25519() ?? nobleX25519;
}
