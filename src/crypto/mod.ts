/**
 * Data-path cryptography: the ChaCha20-Poly1305 {@link Aead} and its factory. The Noise
 * handshake lives in src/core/noise.ts, which is sans-I/O and uses @noble directly.
 *
 * @module
 */
export { type Aead, AEAD_KEY_BYTES, AEAD_NONCE_BYTES, AEAD_TAG_BYTES, loadAead } from "./aead.ts";
