/**
 * ChaCha20-Poly1305 (IETF) through `node:crypto`: the portable fallback that needs no native
 * library and no `--allow-ffi`. Each call creates a cipher object and a few Buffers, so it is
 * slower than libsodium and not allocation-free; the results are byte-identical.
 *
 * @module
 */
import { createCipheriv, createDecipheriv } from "node:crypto";
import type { Aead } from "./aead.ts";

// Local copies of AEAD_TAG_BYTES, AEAD_KEY_BYTES and AEAD_NONCE_BYTES: aead.ts imports this file,
// so importing values back from it would form a load-order cycle. aead_test.ts pins them.
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const NONCE_BYTES = 12;

/** Throws RangeError on caller bugs, exactly as the libsodium implementation does. */
function checkArgs(key: Uint8Array, nonce: Uint8Array, out?: Uint8Array, plainLength = 0): void {
  if (key.length !== KEY_BYTES) {
    throw new RangeError(`AEAD key must be ${KEY_BYTES} bytes, got ${key.length}`);
  }
  if (nonce.length !== NONCE_BYTES) {
    throw new RangeError(`AEAD nonce must be ${NONCE_BYTES} bytes, got ${nonce.length}`);
  }
  if (out && out.length < plainLength + TAG_BYTES) {
    throw new RangeError(
      `AEAD seal output needs ${plainLength + TAG_BYTES} bytes, got ${out.length}`,
    );
  }
}

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
  ): number {
    checkArgs(key, nonce, out, plain.length);
    const cipher = createCipheriv(ALGORITHM, key, nonce, OPTIONS);
    cipher.setAAD(ad, { plaintextLength: plain.length });
    const body = cipher.update(plain);
    const rest = cipher.final(); // empty for a stream cipher, but part of the API contract
    out.set(body, 0);
    out.set(rest, body.length);
    out.set(cipher.getAuthTag(), plain.length);
    return plain.length + TAG_BYTES;
  }

  open(
    out: Uint8Array,
    sealed: Uint8Array,
    ad: Uint8Array,
    nonce: Uint8Array,
    key: Uint8Array,
  ): number {
    checkArgs(key, nonce);
    const plainLength = sealed.length - TAG_BYTES;
    if (plainLength < 0 || out.length < plainLength) return -1;
    try {
      const decipher = createDecipheriv(ALGORITHM, key, nonce, OPTIONS);
      decipher.setAuthTag(sealed.subarray(plainLength));
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
