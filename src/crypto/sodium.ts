/**
 * ChaCha20-Poly1305 (IETF) through synchronous FFI into the system libsodium.
 *
 * Speed notes, measured on Deno 2.9.6 / x86_64 (see bench/aead_bench.ts, "ffi u64" group):
 * - The `u64` length parameters are passed as BigInt, which is also what Deno's FFI types ask
 *   for. A plain number is still accepted at run time but takes Deno's slow FFI path: an 8-byte
 *   `sodium_memcmp` took ~340 ns instead of ~77 ns, an empty encrypt ~1.1 µs instead of ~0.6 µs,
 *   and a 1400-byte encrypt ~2.9 µs instead of ~2.3 µs. `BigInt(n)` costs little time
 *   but allocates a heap object per call, which the data path must not do: lengths come from
 *   `bigLen()`, a cache of the BigInts of 0..65535.
 * - Buffers go in as `"buffer"` parameters. Deno passes the view's own start (byteOffset
 *   included), so callers' subarrays work and this file needs no `subarray` of its own: the
 *   seal and open calls allocate nothing in JavaScript once optimized (`--trace-gc`: no
 *   scavenge over 2 million seal+open pairs after warm-up).
 * - The optional out-length pointers (`clen_p`, `mlen_p`) are passed as null, which libsodium
 *   documents as allowed: the lengths are known in advance (plain + 16, sealed - 16). It measured
 *   the same speed as a preallocated 8-byte buffer and leaves no shared scratch state.
 *
 * @module
 */
import type { Aead } from "./aead.ts";
import { bigLen } from "../io/_bigint.ts";
import { AEAD_TAG_BYTES as TAG_BYTES, checkArgs } from "./_sizes.ts";

/** The libsodium symbols xvpn uses, in `Deno.dlopen` form. */
export const SODIUM_SYMBOLS = {
  sodium_init: { parameters: [], result: "i32" },
  crypto_aead_chacha20poly1305_ietf_encrypt: {
    // c, clen_p, m, mlen, ad, adlen, nsec (unused, NULL), npub, k
    parameters: [
      "buffer",
      "buffer",
      "buffer",
      "u64",
      "buffer",
      "u64",
      "pointer",
      "buffer",
      "buffer",
    ],
    result: "i32",
    nonblocking: false,
  },
  crypto_aead_chacha20poly1305_ietf_decrypt: {
    // m, mlen_p, nsec (unused, NULL), c, clen, ad, adlen, npub, k
    parameters: [
      "buffer",
      "buffer",
      "pointer",
      "buffer",
      "u64",
      "buffer",
      "u64",
      "buffer",
      "buffer",
    ],
    result: "i32",
    nonblocking: false,
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** An opened libsodium with {@link SODIUM_SYMBOLS}. */
export type SodiumLibrary = Deno.DynamicLibrary<typeof SODIUM_SYMBOLS>;

/** What to tell a user whose libsodium cannot be loaded. */
export const SODIUM_UNAVAILABLE_HINT =
  "install libsodium (Debian/Ubuntu: apt install libsodium23; macOS: brew install libsodium) " +
  "and run with --allow-ffi, or use the node:crypto AEAD";

/** File names tried, in order, for this OS; the dynamic loader's search path finds them. */
function libraryNames(): string[] {
  switch (Deno.build.os) {
    case "darwin":
      return [
        "libsodium.dylib",
        "libsodium.23.dylib",
        "/opt/homebrew/lib/libsodium.dylib",
        "/usr/local/lib/libsodium.dylib",
      ];
    case "windows":
      return ["libsodium.dll"];
    default:
      return ["libsodium.so.23", "libsodium.so"];
  }
}

let library: SodiumLibrary | undefined;

/**
 * Opens libsodium once per process and runs `sodium_init`. Throws an Error naming every file
 * tried (with the last loader error as `cause`) when none loads, or when `--allow-ffi` is
 * missing.
 */
export function openSodium(): SodiumLibrary {
  if (library) return library;
  const tried: string[] = [];
  let lastError: unknown;
  for (const name of libraryNames()) {
    let lib: SodiumLibrary;
    try {
      lib = Deno.dlopen(name, SODIUM_SYMBOLS);
    } catch (error) {
      // Without the permission no other file name can work either.
      if (
        error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied
      ) {
        const message = "Cannot load libsodium: --allow-ffi is not granted (grant it, or use " +
          "the node:crypto AEAD)";
        throw new Error(message, { cause: error });
      }
      tried.push(name);
      lastError = error;
      continue;
    }
    // 0 = initialized now, 1 = already initialized, -1 = failure (e.g. no entropy source).
    if (lib.symbols.sodium_init() < 0) {
      lib.close();
      throw new Error(`Cannot initialize libsodium from ${name}: sodium_init() failed`);
    }
    library = lib;
    return lib;
  }
  throw new Error(`Cannot load libsodium (tried ${tried.join(", ")}): ${SODIUM_UNAVAILABLE_HINT}`, {
    cause: lastError,
  });
}

/** The libsodium {@link Aead}. */
class SodiumAead implements Aead {
  readonly name = "libsodium";
  readonly #encrypt;
  readonly #decrypt;

  constructor(lib: SodiumLibrary) {
    this.#encrypt = lib.symbols.crypto_aead_chacha20poly1305_ietf_encrypt;
    this.#decrypt = lib.symbols.crypto_aead_chacha20poly1305_ietf_decrypt;
  }

  seal(
    out: Uint8Array,
    plain: Uint8Array,
    ad: Uint8Array,
    nonce: Uint8Array,
    key: Uint8Array,
    plainLength = plain.length,
  ): number {
    checkArgs(key, nonce, plain, plainLength, out);
    // Cannot fail for valid lengths; libsodium only rejects messages over 2^38 bytes.
    const rc = this.#encrypt(
      out,
      null,
      plain,
      bigLen(plainLength),
      ad,
      bigLen(ad.length),
      null,
      nonce,
      key,
    );
    if (rc !== 0) throw new Error(`libsodium refused to seal ${plainLength} bytes`);
    return plainLength + TAG_BYTES;
  }

  open(
    out: Uint8Array,
    sealed: Uint8Array,
    ad: Uint8Array,
    nonce: Uint8Array,
    key: Uint8Array,
    sealedLength = sealed.length,
  ): number {
    checkArgs(key, nonce, sealed, sealedLength);
    const plainLength = sealedLength - TAG_BYTES;
    // Both are length problems of untrusted input (or of a too-small buffer for it): a drop.
    if (plainLength < 0 || out.length < plainLength) return -1;
    // libsodium verifies the tag before decrypting, so a forgery never writes plaintext.
    const rc = this.#decrypt(
      out,
      null,
      null,
      sealed,
      bigLen(sealedLength),
      ad,
      bigLen(ad.length),
      nonce,
      key,
    );
    return rc === 0 ? plainLength : -1;
  }
}

/** Returns the libsodium {@link Aead}; throws as {@link openSodium} does when unavailable. */
export function createSodiumAead(): Aead {
  return new SodiumAead(openSodium());
}
