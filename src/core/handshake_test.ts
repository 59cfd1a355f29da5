import { assert, assertEquals } from "../../tests/support/assert.ts";
import {
  checkMac1,
  createInitiation,
  createResponse,
  mac1Key,
  newerTimestamp,
  readInitiation,
  readResponse,
  type ReceivedInitiation,
  tai64n,
} from "./handshake.ts";
import { x25519 } from "@noble/curves/ed25519.js";
import { generatePrivateKey, publicKeyOf } from "./keys.ts";
import { HANDSHAKE_INIT_BYTES, HANDSHAKE_RESPONSE_BYTES } from "./wire.ts";

const client = generatePrivateKey();
const server = generatePrivateKey();

function init() {
  return createInitiation({
    staticPrivate: client,
    serverPublic: publicKeyOf(server),
    localId: 0x01020304,
    wallMs: 1_800_000_000_123,
  });
}

Deno.test("createInitiation() and createResponse() complete a handshake with matching keys", () => {
  const p = init();
  assertEquals(p.datagram.length, HANDSHAKE_INIT_BYTES);
  assert(checkMac1(mac1Key(publicKeyOf(server)), p.datagram));
  const got = readInitiation(p.datagram, server) as ReceivedInitiation;
  assertEquals(got.clientPublic, publicKeyOf(client));
  assertEquals(got.clientId, 0x01020304);
  assertEquals(got.timestamp, tai64n(1_800_000_000_123));
  const resp = createResponse({
    state: got.state,
    clientId: got.clientId,
    clientPublic: got.clientPublic,
    connId: 77,
    epoch: 5,
  });
  assertEquals(resp.length, HANDSHAKE_RESPONSE_BYTES);
  assert(resp.length < p.datagram.length, "a response never amplifies");
  assert(checkMac1(mac1Key(publicKeyOf(client)), resp));
  assertEquals(readResponse(resp, p), { connId: 77, flags: 0 });
  const a = p.state.split();
  const b = got.state.split();
  assertEquals(a.initiatorToResponder, b.initiatorToResponder);
  assertEquals(a.responderToInitiator, b.responderToInitiator);
});

Deno.test("checkMac1() fails for another server's key and for any flipped byte", () => {
  const p = init();
  assertEquals(checkMac1(mac1Key(publicKeyOf(generatePrivateKey())), p.datagram), false);
  const key = mac1Key(publicKeyOf(server));
  for (let i = 0; i < HANDSHAKE_INIT_BYTES - 16; i++) {
    const d = p.datagram.slice();
    d[i]! ^= 1;
    assertEquals(checkMac1(key, d), false, `byte ${i}`);
  }
});

Deno.test("readInitiation() stops at an unknown client key, before the second DH", () => {
  const client = generatePrivateKey();
  const server = generatePrivateKey();
  const p = createInitiation({
    staticPrivate: client,
    serverPublic: publicKeyOf(server),
    localId: 7,
    wallMs: 1_800_000_000_000,
    flags: 0,
  });
  let dhs = 0;
  const counting = {
    publicKey: (sk: Uint8Array) => publicKeyOf(sk),
    shared: (sk: Uint8Array, pk: Uint8Array) => {
      dhs++;
      return x25519.getSharedSecret(sk, pk);
    },
  };
  const out = readInitiation(p.datagram, server, {
    staticPublic: publicKeyOf(server),
    dh: counting,
    known: () => false,
  });
  assertEquals(out, "unknown_key");
  assertEquals(dhs, 1, "only es: ss is never computed for a stranger");
  dhs = 0;
  const ok = readInitiation(p.datagram, server, { dh: counting, known: () => true });
  assert(typeof ok === "object" && ok !== null, "a known key is read through");
  assertEquals(dhs, 2, "es and ss");
});

Deno.test("readInitiation() returns undefined for a corrupted Noise message", () => {
  const p = init();
  for (let i = 20; i < 20 + 109; i += 7) {
    const d = p.datagram.slice();
    d[i]! ^= 0x80;
    assertEquals(readInitiation(d, server), undefined, `byte ${i}`);
  }
  assertEquals(readInitiation(p.datagram, generatePrivateKey()), undefined, "wrong server key");
});

Deno.test("newerTimestamp() orders TAI64N stamps and rejects equal ones", () => {
  const t = tai64n(1_800_000_000_000);
  assert(newerTimestamp(t, undefined));
  assert(newerTimestamp(tai64n(1_800_000_000_001), t));
  assert(!newerTimestamp(t, t));
  assert(!newerTimestamp(tai64n(1_799_999_999_999), t));
});
