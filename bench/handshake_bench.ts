/**
 * What a server's handshake costs (issue 10): reading an initiation (Noise IK: es, ss) and
 * writing the response (ee, se) with libsodium's X25519 by FFI against @noble's, and the cost of
 * an initiation from an unknown key (refused after the first Diffie-Hellman, before `ss`).
 * The same initiation bytes are read each time: readInitiation does not check the timestamp
 * (the server core does, after), so this is the Diffie-Hellman and hashing work alone.
 *
 * Usage: `deno bench -A bench/handshake_bench.ts`.
 *
 * @module
 */
import { createInitiation, createResponse, readInitiation } from "../src/core/handshake.ts";
import { generatePrivateKey } from "../src/core/keys.ts";
import { nobleX25519, sodiumX25519, type X25519 } from "../src/crypto/x25519.ts";

const sodium = sodiumX25519();
const impls: [string, X25519][] = [["noble", nobleX25519]];
if (sodium) impls.push(["libsodium", sodium]);

const serverKey = generatePrivateKey();
const clientKey = generatePrivateKey();
const strangerKey = generatePrivateKey();
const serverPublic = nobleX25519.publicKey(serverKey);
const clientPublic = nobleX25519.publicKey(clientKey);
const initiation = (key: Uint8Array) =>
  createInitiation({ staticPrivate: key, serverPublic, localId: 7, wallMs: Date.now() }).datagram;
const known = initiation(clientKey);
const stranger = initiation(strangerKey);
const allowed = (k: Uint8Array) => k.every((b, i) => b === clientPublic[i]);

for (const [name, dh] of impls) {
  Deno.bench({
    name: `server handshake (read initiation + response), ${name}`,
    group: "handshake",
    baseline: name === "noble",
    fn() {
      const r = readInitiation(known, serverKey, {
        staticPublic: serverPublic,
        dh,
        known: allowed,
      });
      if (!r || r === "unknown_key") throw new Error("the initiation did not read");
      createResponse({
        state: r.state,
        clientId: r.clientId,
        clientPublic: r.clientPublic,
        connId: 9,
        epoch: 0,
      });
    },
  });
  Deno.bench({
    name: `unknown key refused, ${name}`,
    group: "unknown",
    baseline: name === "noble",
    fn() {
      const r = readInitiation(stranger, serverKey, {
        staticPublic: serverPublic,
        dh,
        known: allowed,
      });
      if (r !== "unknown_key") throw new Error("the stranger was not refused");
    },
  });
}
