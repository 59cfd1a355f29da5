import { assert, assertEquals } from "../../tests/support/assert.ts";
import { bestX25519, nobleX25519, sodiumX25519, type X25519 } from "./x25519.ts";
import { HandshakeState } from "../core/noise.ts";

const hex = (s: string): Uint8Array =>
  Uint8Array.from((s.replace(/[^0-9a-f]/gi, "").match(/../g) ?? []).map((b) => parseInt(b, 16)));
const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

const sodium = sodiumX25519();
const IMPLS: X25519[] = [nobleX25519, ...(sodium ? [sodium] : [])];

// RFC 7748 §6.1: the Diffie-Hellman worked example.
const ALICE_SK = hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
const ALICE_PK = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
const BOB_SK = hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
const BOB_PK = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
const SHARED = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";
// RFC 7748 §5.2: the first single-multiplication vector (a u-coordinate with its top bit set).
const V52_SCALAR = hex("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
const V52_U = hex("e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
const V52_OUT = "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552";

Deno.test("libsodium's X25519 loads when --allow-ffi is granted, and is the one chosen", () => {
  assert(sodium, "libsodium's crypto_scalarmult did not load");
  assertEquals(bestX25519().name, "libsodium");
});

for (const impl of IMPLS) {
  Deno.test(`${impl.name} X25519 matches RFC 7748 §6.1 and §5.2`, () => {
    assertEquals(toHex(impl.publicKey(ALICE_SK)), ALICE_PK);
    assertEquals(toHex(impl.publicKey(BOB_SK)), BOB_PK);
    assertEquals(toHex(impl.shared(ALICE_SK, hex(BOB_PK))!), SHARED);
    assertEquals(toHex(impl.shared(BOB_SK, hex(ALICE_PK))!), SHARED);
    assertEquals(toHex(impl.shared(V52_SCALAR, V52_U)!), V52_OUT);
  });

  Deno.test(`${impl.name} X25519 refuses low-order points (an all-zero secret)`, () => {
    assertEquals(impl.shared(ALICE_SK, new Uint8Array(32)), undefined); // u = 0
    const one = new Uint8Array(32);
    one[0] = 1; // u = 1, order 1
    assertEquals(impl.shared(ALICE_SK, one), undefined);
  });
}

Deno.test("a handshake with libsodium on one side and noble on the other agrees", () => {
  assert(sodium);
  const prologue = new Uint8Array(0), protocolName = "Noise_IK_25519_ChaChaPoly_BLAKE2s";
  const i = HandshakeState.initiator({
    protocolName,
    prologue,
    staticPrivate: ALICE_SK,
    remoteStatic: hex(BOB_PK),
    dh: sodium,
  });
  const r = HandshakeState.responder({ protocolName, prologue, staticPrivate: BOB_SK });
  const m1 = i.writeMessage(new Uint8Array([1, 2, 3]));
  assertEquals(r.readMessage(m1), new Uint8Array([1, 2, 3]));
  assertEquals(toHex(r.remoteStatic!), ALICE_PK);
  const m2 = r.writeMessage(new Uint8Array(0));
  assertEquals(i.readMessage(m2), new Uint8Array(0));
  const a = i.split(), b = r.split();
  assertEquals(a.initiatorToResponder, b.initiatorToResponder);
  assertEquals(a.responderToInitiator, b.responderToInitiator);
});
