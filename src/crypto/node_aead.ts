/**
 * ChaCha20-Poly1305 (IETF) through `node:crypto`: the portable fallback that needs no native
 * library and no `--allow-ffi`. Each call creates a cipher object and a few Buffers, so it is
 * slower than libsodium and not allocation-free; the results are byte-identical.
 *
 * @module
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import type { Aead } from "./aead.ts";
import { AEAD_TAG_BYTES as TAG_BYTES, checkArgs } from "./_sizes.ts";

const ALGORITHM = "chacha20-poly1305";
const OPTIONS = { authTagLength: TAG_BYTES } as const;

/** The node:crypto {@link Aead}. */
class NodeAead implements Aead {
  readonly name = "node:crypto";

  seal(
    out: Uint8Array,
    plain: Uint8Array,
    ad: Uint8Array,
    nonce: Uint8Array,
    key: Uint8Array,
    plainLength = plain.length,
  ): number {
    checkArgs(key, nonce, plain, plainLength, out);
    const cipher = createCipheriv(ALGORITHM, key, nonce, OPTIONS);
    cipher.setAAD(ad, { plaintextLength: plainLength });
    const body = cipher.update(
      plainLength === plain.length ? plain : plain.subarray(0, plainLength),
    );
    const rest = cipher.final(); // empty for a stream cipher, but part of the API contract
    out.set(body, 0);
    out.set(rest, body.length);
    out.set(cipher.getAuthTag(), plainLength);
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
    if (plainLength < 0 || out.length < plainLength) return -1;
    try {
      const decipher = createDecipheriv(ALGORITHM, key, nonce, OPTIONS);
      decipher.setAuthTag(sealed.subarray(plainLength, sealedLength));
      decipher.setAAD(ad, { plaintextLength: plainLength });
      const body = decipher.update(sealed.subarray(0, plainLength));
      // final() is where the tag is checked; copy only afterwards, so a forgery never leaves
      // unauthenticated plaintext in the caller's buffer.
      const rest = decipher.final();
      out.set(body, 0);
      out.set(rest, body.length);
      return plainLength;
    } catch {
      return -1;
    }
  }
}

/** Returns the node:crypto {@link Aead}. */
export function createNodeAead(): Aead {
  return new NodeAead();
}
