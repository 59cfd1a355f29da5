/**
 * Data-path AEAD micro-benchmarks: `deno bench -A bench/aead_bench.ts`.
 *
 * - "seal+open 1400 B": one seal and one open of a 1400-byte packet (a typical tunnel payload
 *   under a 1500-byte MTU) per iteration, for each {@link Aead}, with @noble/ciphers (pure JS,
 *   used by the handshake) as a reference point.
 * - "ffi u64 args": the raw libsodium encrypt call with its two `u64` length arguments passed as
 *   BigInt (what src/crypto/sodium.ts does) or as plain numbers, to keep that choice measurable.
 *
 * @module
 */
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { type Aead, AEAD_TAG_BYTES, loadAead } from "../src/crypto/aead.ts";
import { openSodium } from "../src/crypto/sodium.ts";

const PACKET_BYTES = 1400;
const key = crypto.getRandomValues(new Uint8Array(32));
const nonce = crypto.getRandomValues(new Uint8Array(12));
const ad = crypto.getRandomValues(new Uint8Array(16));
const plain = crypto.getRandomValues(new Uint8Array(PACKET_BYTES));
const sealed = new Uint8Array(PACKET_BYTES + AEAD_TAG_BYTES);
const opened = new Uint8Array(PACKET_BYTES);

function sealOpen(aead: Aead): void {
  const n = aead.seal(sealed, plain, ad, nonce, key);
  if (aead.open(opened, sealed.subarray(0, n), ad, nonce, key) !== PACKET_BYTES) {
    throw new Error(`${aead.name} failed to open its own packet`);
  }
}

for (const aead of [await loadAead("libsodium"), await loadAead("node:crypto")]) {
  Deno.bench({
    name: `${aead.name} seal+open ${PACKET_BYTES} B`,
    group: "seal+open 1400 B",
    baseline: aead.name === "libsodium",
    fn: () => sealOpen(aead),
  });
}

Deno.bench({
  name: `@noble/ciphers seal+open ${PACKET_BYTES} B (reference)`,
  group: "seal+open 1400 B",
  fn: () => {
    const ct = chacha20poly1305(key, nonce, ad).encrypt(plain);
    chacha20poly1305(key, nonce, ad).decrypt(ct);
  },
});

const encrypt = openSodium().symbols.crypto_aead_chacha20poly1305_ietf_encrypt;
const empty = new Uint8Array(0);
for (const size of [0, PACKET_BYTES]) {
  const input = plain.subarray(0, size);
  Deno.bench({
    name: `libsodium encrypt ${size} B, u64 as BigInt`,
    group: `ffi u64 args, ${size} B`,
    baseline: true,
    fn: () => {
      encrypt(sealed, null, input, BigInt(input.length), empty, BigInt(0), null, nonce, key);
    },
  });
  Deno.bench({
    name: `libsodium encrypt ${size} B, u64 as number`,
    group: `ffi u64 args, ${size} B`,
    fn: () => {
      // Deno's types ask for bigint; a number is accepted at run time, which is what we measure.
      const len = input.length as unknown as bigint;
      encrypt(sealed, null, input, len, empty, 0 as unknown as bigint, null, nonce, key);
    },
  });
}
