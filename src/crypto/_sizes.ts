/**
 * Sizes and argument checks shared by both AEAD implementations. A leaf module: aead.ts,
 * sodium.ts and node_aead.ts all import it, so no load-order cycle arises.
 *
 * @module
 */

/** Length of the Poly1305 authentication tag appended to every ciphertext (RFC 8439 §2.8). */
export const AEAD_TAG_BYTES = 16;
/** Length of a ChaCha20-Poly1305 key (RFC 8439 §2.8). */
export const AEAD_KEY_BYTES = 32;
/** Length of the IETF ChaCha20-Poly1305 nonce (RFC 8439 §2.8). */
export const AEAD_NONCE_BYTES = 12;

/**
 * Throws RangeError on caller bugs that would otherwise make native code read or write out of
 * bounds: bad key or nonce size, a length beyond its buffer, or a too-small seal output.
 */
export function checkArgs(
  key: Uint8Array,
  nonce: Uint8Array,
  input: Uint8Array,
  inputLength: number,
  out?: Uint8Array,
): void {
  if (key.length !== AEAD_KEY_BYTES) {
    throw new RangeError(`AEAD key must be ${AEAD_KEY_BYTES} bytes, got ${key.length}`);
  }
  if (nonce.length !== AEAD_NONCE_BYTES) {
    throw new RangeError(`AEAD nonce must be ${AEAD_NONCE_BYTES} bytes, got ${nonce.length}`);
  }
  if (inputLength > input.length || inputLength < 0) {
    throw new RangeError(
      `AEAD input length ${inputLength} is outside its ${input.length}-byte buffer`,
    );
  }
  if (out && out.length < inputLength + AEAD_TAG_BYTES) {
    throw new RangeError(
      `AEAD seal output needs ${inputLength + AEAD_TAG_BYTES} bytes, got ${out.length}`,
    );
  }
}
