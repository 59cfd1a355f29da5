import { x25519 } from "@noble/curves/ed25519.js";
import { chacha20poly1305 } from "@noble/ciphers/chacha.js";
import { assert, assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { CipherState, type HandshakeOptions, HandshakeState } from "./noise.ts";

const hex = (s: string): Uint8Array =>
  Uint8Array.from((s.match(/../g) ?? []).map((b) => parseInt(b, 16)));
const toHex = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const random = (n: number): Uint8Array => crypto.getRandomValues(new Uint8Array(n));

/** One entry of the cacophony vectors in tests/vectors/noise-ik.json (its "source" field names where they come from). */
interface Vector {
  protocol_name: string;
  init_prologue: string;
  init_psks?: string[];
  init_static: string;
  init_ephemeral: string;
  init_remote_static: string;
  resp_prologue: string;
  resp_psks?: string[];
  resp_static: string;
  resp_ephemeral: string;
  handshake_hash: string;
  messages: { payload: string; ciphertext: string }[];
}

const VECTORS_URL = new URL("../../tests/vectors/noise-ik.json", import.meta.url);
let vectors: Vector[] = [];
let loadError: unknown;
try {
  vectors = JSON.parse(await Deno.readTextFile(VECTORS_URL)).vectors;
  if (!Array.isArray(vectors) || vectors.length === 0) throw new Error("no vectors in file");
} catch (error) {
  loadError = error;
}

// A missing or empty vectors file must fail the run, never skip it silently.
Deno.test("HandshakeState matches published vectors: vectors file is present", () => {
  if (loadError) throw new Error(`cannot load ${VECTORS_URL.pathname}`, { cause: loadError });
  const names = vectors.map((v) => v.protocol_name).sort();
  assertEquals(names, [
    "Noise_IK_25519_ChaChaPoly_BLAKE2s",
    "Noise_IK_25519_ChaChaPoly_SHA256",
    "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s",
    "Noise_IKpsk2_25519_ChaChaPoly_SHA256",
  ]);
});

function single(psks: string[] | undefined): Uint8Array | undefined {
  if (!psks) return undefined;
  assertEquals(psks.length, 1, "IKpsk2 uses exactly one psk");
  return hex(psks[0]!);
}

for (const v of vectors) {
  Deno.test(`HandshakeState matches the ${v.protocol_name} vector`, () => {
    const init = HandshakeState.initiator({
      protocolName: v.protocol_name,
      prologue: hex(v.init_prologue),
      staticPrivate: hex(v.init_static),
      remoteStatic: hex(v.init_remote_static),
      psk: single(v.init_psks),
      ephemeralPrivate: hex(v.init_ephemeral),
    });
    const resp = HandshakeState.responder({
      protocolName: v.protocol_name,
      prologue: hex(v.resp_prologue),
      staticPrivate: hex(v.resp_static),
      psk: single(v.resp_psks),
      ephemeralPrivate: hex(v.resp_ephemeral),
    });
    const [m1, m2, ...transport] = v.messages;
    assert(m1 && m2, "vector has two handshake messages");

    const c1 = init.writeMessage(hex(m1.payload));
    assertEquals(toHex(c1), m1.ciphertext, "message 1");
    assertEquals(resp.remoteStatic, undefined);
    assertEquals(resp.readMessage(c1), hex(m1.payload));
    assertEquals(resp.remoteStatic, x25519.getPublicKey(hex(v.init_static)));

    const c2 = resp.writeMessage(hex(m2.payload));
    assertEquals(toHex(c2), m2.ciphertext, "message 2");
    assertEquals(init.readMessage(c2), hex(m2.payload));

    assert(init.isComplete() && resp.isComplete());
    assertEquals(toHex(init.handshakeHash), v.handshake_hash);
    assertEquals(toHex(resp.handshakeHash), v.handshake_hash);

    const ik = init.split();
    const rk = resp.split();
    assertEquals(ik, rk);
    const i2r = [
      new CipherState(ik.initiatorToResponder),
      new CipherState(rk.initiatorToResponder),
    ];
    const r2i = [
      new CipherState(rk.responderToInitiator),
      new CipherState(ik.responderToInitiator),
    ];
    transport.forEach((m, i) => {
      // Transport messages alternate, starting with initiator -> responder.
      const [send, recv] = (i % 2 === 0 ? i2r : r2i) as [CipherState, CipherState];
      const ct = send.encryptWithAd(new Uint8Array(0), hex(m.payload));
      assertEquals(toHex(ct), m.ciphertext, `transport message ${i + 3}`);
      assertEquals(recv.decryptWithAd(new Uint8Array(0), ct), hex(m.payload));
    });
  });
}

// Fresh keys for the tamper tests; each pair() gets new random ephemerals.
const NAME = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
const INIT_STATIC = x25519.utils.randomSecretKey();
const RESP_STATIC = x25519.utils.randomSecretKey();
const RESP_PUBLIC = x25519.getPublicKey(RESP_STATIC);
const PSK = random(32);
const PROLOGUE = new TextEncoder().encode("xvpn test");

function pair(over: { init?: Partial<HandshakeOptions>; resp?: Partial<HandshakeOptions> } = {}) {
  const init = HandshakeState.initiator({
    protocolName: NAME,
    prologue: PROLOGUE,
    staticPrivate: INIT_STATIC,
    remoteStatic: RESP_PUBLIC,
    psk: PSK,
    ...over.init,
  });
  const resp = HandshakeState.responder({
    protocolName: NAME,
    prologue: PROLOGUE,
    staticPrivate: RESP_STATIC,
    psk: PSK,
    ...over.resp,
  });
  return { init, resp };
}

/** Reads a message, failing the test if readMessage throws instead of returning undefined. */
function readNoThrow(hs: HandshakeState, message: Uint8Array): Uint8Array | undefined {
  try {
    return hs.readMessage(message);
  } catch (error) {
    throw new Error(`readMessage threw on ${message.length} bytes`, { cause: error });
  }
}

Deno.test("HandshakeState completes with random ephemerals and agrees on keys", () => {
  for (const protocolName of ["Noise_IK_25519_ChaChaPoly_SHA256", NAME]) {
    const psk = protocolName.includes("psk") ? PSK : undefined;
    const { init, resp } = pair({ init: { protocolName, psk }, resp: { protocolName, psk } });
    assert(init.isMyTurnToWrite() && !resp.isMyTurnToWrite());
    assertEquals(
      resp.readMessage(init.writeMessage(Uint8Array.of(1, 2, 3))),
      Uint8Array.of(1, 2, 3),
    );
    assertEquals(resp.remoteStatic, x25519.getPublicKey(INIT_STATIC));
    assertEquals(init.readMessage(resp.writeMessage(new Uint8Array(0))), new Uint8Array(0));
    assertEquals(init.handshakeHash, resp.handshakeHash);
    assertEquals(init.split(), resp.split());
  }
});

Deno.test("HandshakeState.readMessage() rejects a flipped byte in message 1 and never throws", () => {
  const msg1 = pair().init.writeMessage(random(12));
  for (let i = 0; i < msg1.length; i++) {
    for (const bit of [0x01, 0x80]) {
      const bad = msg1.slice();
      bad[i]! ^= bit;
      const { resp } = pair();
      assertEquals(readNoThrow(resp, bad), undefined, `byte ${i} bit ${bit}`);
      assertEquals(resp.remoteStatic, undefined, "nothing learned from a failed read");
    }
  }
});

Deno.test("HandshakeState.readMessage() rejects a flipped byte in message 2 and keeps state", () => {
  const { init, resp } = pair();
  resp.readMessage(init.writeMessage(new Uint8Array(0)));
  const msg2 = resp.writeMessage(random(5));
  for (let i = 0; i < msg2.length; i++) {
    const bad = msg2.slice();
    bad[i]! ^= 0x01;
    assertEquals(readNoThrow(init, bad), undefined, `byte ${i}`);
  }
  // The forgeries must not have spoiled the pending handshake.
  assert(!init.isComplete());
  assert(init.readMessage(msg2));
  assertEquals(init.split(), resp.split());
});

Deno.test("HandshakeState.readMessage() rejects truncated and extended messages", () => {
  const { init, resp } = pair();
  const msg1 = init.writeMessage(random(12));
  for (let n = 0; n < msg1.length; n++) {
    assertEquals(readNoThrow(pair().resp, msg1.subarray(0, n)), undefined, `msg1 cut to ${n}`);
  }
  const extended = new Uint8Array(msg1.length + 1);
  extended.set(msg1);
  assertEquals(readNoThrow(pair().resp, extended), undefined, "msg1 with a byte appended");
  assert(resp.readMessage(msg1));
  const msg2 = resp.writeMessage(new Uint8Array(0));
  for (let n = 0; n < msg2.length; n++) {
    assertEquals(readNoThrow(init, msg2.subarray(0, n)), undefined, `msg2 cut to ${n}`);
  }
  assert(init.readMessage(msg2));
});

Deno.test("HandshakeState.readMessage() fails for a responder with the wrong static key", () => {
  const msg1 = pair().init.writeMessage(new Uint8Array(0));
  const { resp } = pair({ resp: { staticPrivate: x25519.utils.randomSecretKey() } });
  assertEquals(readNoThrow(resp, msg1), undefined);
  assertEquals(resp.remoteStatic, undefined);
});

Deno.test("HandshakeState.readMessage() fails on a different prologue or psk", () => {
  const msg1 = pair().init.writeMessage(new Uint8Array(0));
  assertEquals(pair({ resp: { prologue: new Uint8Array(0) } }).resp.readMessage(msg1), undefined);
  // psk2 is mixed in after message 1, so a wrong psk shows up when reading message 2.
  const { init, resp } = pair({ resp: { psk: random(32) } });
  assert(resp.readMessage(init.writeMessage(new Uint8Array(0))));
  assertEquals(init.readMessage(resp.writeMessage(new Uint8Array(0))), undefined);
});

Deno.test("HandshakeState.readMessage() rejects low-order ephemeral keys", () => {
  const msg1 = pair().init.writeMessage(new Uint8Array(0));
  const lowOrder = [
    new Uint8Array(32), // 0
    Uint8Array.of(1, ...new Uint8Array(31)), // 1
    hex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"), // order 8
  ];
  for (const point of lowOrder) {
    const bad = msg1.slice();
    bad.set(point, 0);
    assertEquals(readNoThrow(pair().resp, bad), undefined, toHex(point));
  }
});

Deno.test("HandshakeState.readMessage() never throws on random bytes", () => {
  for (let n = 0; n < 200; n++) {
    assertEquals(readNoThrow(pair().resp, random(n)), undefined);
  }
  assertEquals(readNoThrow(pair().resp, new Uint8Array(65536)), undefined);
});

Deno.test("HandshakeState.writeMessage() and readMessage() enforce turn order", () => {
  const { init, resp } = pair();
  assertThrows(() => resp.writeMessage(new Uint8Array(0)), Error, "out of turn");
  assertEquals(init.readMessage(new Uint8Array(48)), undefined);
  assertThrows(() => init.split(), Error, "before the handshake is complete");
  resp.readMessage(init.writeMessage(new Uint8Array(0)));
  init.readMessage(resp.writeMessage(new Uint8Array(0)));
  assertThrows(() => init.writeMessage(new Uint8Array(0)), Error, "out of turn");
  assertEquals(resp.readMessage(new Uint8Array(96)), undefined);
});

Deno.test("HandshakeState.writeMessage() throws for a low-order remote static key", () => {
  const { init } = pair({ init: { remoteStatic: new Uint8Array(32) } });
  assertThrows(() => init.writeMessage(new Uint8Array(0)), Error, "not a valid X25519 public key");
});

Deno.test("HandshakeState.initiator() rejects unsupported names and bad options", () => {
  const base: HandshakeOptions = {
    protocolName: "Noise_IK_25519_ChaChaPoly_BLAKE2s",
    prologue: new Uint8Array(0),
    staticPrivate: INIT_STATIC,
    remoteStatic: RESP_PUBLIC,
  };
  for (
    const protocolName of [
      "Noise_XX_25519_ChaChaPoly_BLAKE2s",
      "Noise_IK_448_ChaChaPoly_BLAKE2s",
      "Noise_IK_25519_AESGCM_SHA256",
      "Noise_IK_25519_ChaChaPoly_BLAKE2b",
      "Noise_IKpsk1_25519_ChaChaPoly_SHA256",
      "noise_ik_25519_chachapoly_blake2s",
    ]
  ) {
    assertThrows(() => HandshakeState.initiator({ ...base, protocolName }), Error, "Unsupported");
  }
  assertThrows(() => HandshakeState.initiator({ ...base, remoteStatic: undefined }), Error);
  assertThrows(() => HandshakeState.initiator({ ...base, staticPrivate: random(31) }), RangeError);
  assertThrows(() => HandshakeState.initiator({ ...base, psk: PSK }), Error, "no pre-shared key");
  const psk2 = { ...base, protocolName: NAME };
  assertThrows(() => HandshakeState.initiator(psk2), Error, "pre-shared key");
  assertThrows(() => HandshakeState.initiator({ ...psk2, psk: random(16) }), RangeError);
  assertThrows(() => HandshakeState.responder(base), Error, "learns remoteStatic");
});

Deno.test("CipherState.decryptWithAd() fails without advancing the nonce", () => {
  const key = random(32);
  const send = new CipherState(key);
  const recv = new CipherState(key);
  const ct = send.encryptWithAd(Uint8Array.of(9), Uint8Array.of(1, 2, 3));
  assertEquals(recv.decryptWithAd(Uint8Array.of(8), ct), undefined);
  assertEquals(recv.decryptWithAd(Uint8Array.of(9), ct.subarray(0, 15)), undefined);
  assertEquals(recv.nonce, 0);
  assertEquals(recv.decryptWithAd(Uint8Array.of(9), ct), Uint8Array.of(1, 2, 3));
  assertEquals(recv.nonce, 1);
  assertEquals(recv.decryptWithAd(Uint8Array.of(9), ct), undefined, "replayed at the next nonce");
});

Deno.test("CipherState.encryptWithAd() uses 4 zero bytes then the little-endian 64-bit nonce", () => {
  const key = random(32);
  const cs = new CipherState(key);
  const n = 0x1_2345_6789;
  cs.setNonce(n);
  const nonce = hex("00000000" + "8967452301000000");
  const expected = chacha20poly1305(key, nonce, Uint8Array.of(7)).encrypt(Uint8Array.of(42));
  assertEquals(cs.encryptWithAd(Uint8Array.of(7), Uint8Array.of(42)), expected);
  assertEquals(cs.nonce, n + 1);
  assertThrows(() => cs.setNonce(-1), RangeError);
});

Deno.test("CipherState.rekey() derives the same new key on both sides", () => {
  const key = random(32);
  const a = new CipherState(key);
  const b = new CipherState(key);
  a.rekey();
  b.rekey();
  const ct = a.encryptWithAd(new Uint8Array(0), Uint8Array.of(5));
  assertEquals(new CipherState(key).decryptWithAd(new Uint8Array(0), ct), undefined);
  assertEquals(b.decryptWithAd(new Uint8Array(0), ct), Uint8Array.of(5));
  // Spec: ENCRYPT(k, 2^64-1, "", zeros(32))[:32].
  const maxNonce = hex("00000000ffffffffffffffff");
  const newKey = chacha20poly1305(key, maxNonce, new Uint8Array(0))
    .encrypt(new Uint8Array(32))
    .slice(0, 32);
  assertEquals(new CipherState(newKey).encryptWithAd(new Uint8Array(0), Uint8Array.of(5)), ct);
});

Deno.test("CipherState without a key passes data through", () => {
  const cs = new CipherState();
  assert(!cs.hasKey());
  assertEquals(cs.encryptWithAd(new Uint8Array(0), Uint8Array.of(1)), Uint8Array.of(1));
  assertEquals(cs.decryptWithAd(new Uint8Array(0), Uint8Array.of(1)), Uint8Array.of(1));
});
