/**
 * Curve25519 static keys: generation, public-key derivation and the base64 text form used in
 * config files and by `xvpn genkey` / `xvpn pubkey` (the same form as `wg genkey`).
 *
 * @module
 */
import { x25519 } from "@noble/curves/ed25519.js";

/** Length of an X25519 private or public key in bytes. */
export const KEY_BYTES = 32;

/** Generates a new clamped X25519 private key. */
export function generatePrivateKey(): Uint8Array {
  return x25519.utils.randomSecretKey();
}

/** Derives the X25519 public key of a private key. */
export function publicKeyOf(privateKey: Uint8Array): Uint8Array {
  return x25519.getPublicKey(privateKey);
}

/** Encodes a key as standard base64 (44 characters for 32 bytes). */
export function encodeKey(key: Uint8Array): string {
  let s = "";
  for (const b of key) s += String.fromCharCode(b);
  return btoa(s);
}

/**
 * Decodes a base64 key. Returns undefined unless the text is valid base64 of exactly 32 bytes,
 * so callers can report "expected a base64 key of 32 bytes" with their own context.
 */
export function decodeKey(text: string): Uint8Array | undefined {
  const t = text.trim();
  if (!/^[A-Za-z0-9+/]{43}=$/.test(t)) return undefined;
  const raw = atob(t);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out.length === KEY_BYTES ? out : undefined;
}
