/**
 * The data-path AEAD: ChaCha20-Poly1305 with a 96-bit nonce (RFC 8439, "IETF" variant), behind
 * one small interface with two interchangeable implementations:
 *
 * - `libsodium` (src/crypto/sodium.ts): synchronous FFI into the system libsodium. The fastest
 *   option; needs the library installed and `--allow-ffi`.
 * - `node:crypto` (src/crypto/node_aead.ts): Deno's Node compatibility layer. Always available,
 *   but allocates a few objects per call.
 *
 * Both write into caller-owned buffers and return a length (boringtun's `encapsulate(src, dst)`
 * shape), so the packet path can reuse its buffers. {@link loadAead} is the one factory: it
 * imports `node:crypto` only when that is the one chosen, because the Node compatibility layer
 * costs about 8 MB of RSS per isolate (measured) and libsodium is the usual choice.
 *
 * @module
 */
import { createSodiumAead } from "./sodium.ts";

export { AEAD_KEY_BYTES, AEAD_NONCE_BYTES, AEAD_TAG_BYTES } from "./_sizes.ts";

/**
 * ChaCha20-Poly1305 (IETF) sealing and opening into caller-owned buffers.
 *
 * (The implementations import their sizes and checks from the leaf module `_sizes.ts`, never
 * values from here: this file imports them, and a value cycle would hit uninitialized bindings.)
 *
 * Both methods throw `RangeError` only on caller bugs that would otherwise make the native code
 * read or write out of bounds: a key that is not 32 bytes, a nonce that is not 12 bytes, or (for
 * `seal`) an `out` shorter than `plain.length + 16`. Bytes from the network never cause a throw.
 */
export interface Aead {
  /** Which implementation this is, for logs and benchmarks. */
  readonly name: "libsodium" | "node:crypto";
  /**
   * Seals the first `plainLength` bytes of `plain` (default: all of it) into `out` as
   * ciphertext||tag and returns the bytes written (`plainLength + 16`). `out` must not overlap
   * `plain`. The explicit length lets the data path pass views made once per buffer instead of
   * a fresh `subarray` per packet.
   */
  seal(
    out: Uint8Array,
    plain: Uint8Array,
    ad: Uint8Array,
    nonce: Uint8Array,
    key: Uint8Array,
    plainLength?: number,
  ): number;
  /**
   * Opens the first `sealedLength` bytes of `sealed` (default: all of it; ciphertext||tag) into
   * `out` and returns the plaintext length, or -1 when authentication fails, the input is
   * shorter than the tag, or `out` cannot hold the plaintext. On -1 nothing unauthenticated is
   * left for the caller to use. Never throws on bad input.
   */
  open(
    out: Uint8Array,
    sealed: Uint8Array,
    ad: Uint8Array,
    nonce: Uint8Array,
    key: Uint8Array,
    sealedLength?: number,
  ): number;
}

/**
 * Returns an AEAD implementation.
 *
 * - `"auto"` (default): libsodium when it can be loaded and `--allow-ffi` is already granted,
 *   node:crypto otherwise. Never prompts for a permission.
 * - `"libsodium"`: libsodium or an Error saying why it could not be loaded.
 * - `"node:crypto"`: always node:crypto.
 */
export async function loadAead(
  prefer: "libsodium" | "node:crypto" | "auto" = "auto",
): Promise<Aead> {
  switch (prefer) {
    case "libsodium":
      return createSodiumAead();
    case "auto":
      // Asking first keeps `auto` from triggering an interactive permission prompt.
      if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
        try {
          return createSodiumAead();
        } catch {
          // Missing library or refused dlopen: the portable implementation is the fallback.
        }
      }
      break;
    case "node:crypto":
      break;
    default:
      throw new Error(
        `Unknown AEAD implementation "${
          String(prefer)
        }": expected "libsodium", "node:crypto" or "auto"`,
      );
  }
  const { createNodeAead } = await import("./node_aead.ts");
  return createNodeAead();
}
