/**
 * Diagnostic sessions under many players (`xvpn ping`): the server's table holds one per
 * allowed key, so players pinging at once never evict each other's sessions, and one key gets
 * one diagnostic handshake a second (a loop of them would cost a Diffie-Hellman each).
 */
import { assert, assertEquals } from "./support/assert.ts";
import { ClientCore } from "../src/core/client.ts";
import { DIAG_BURST, DIAG_MIN_INTERVAL_MS, ServerCore } from "../src/core/server.ts";
import { MAX_DIAG_SESSIONS } from "../src/core/sessions.ts";
import { generatePrivateKey, publicKeyOf } from "../src/core/keys.ts";
import { parseCidr, parseIPv4 } from "../src/lib/ip.ts";
import { udpPacket } from "./support/packets.ts";
import { Verdict } from "../src/core/result.ts";
import { PacketBuf } from "../src/core/packet.ts";
import { loadAead } from "../src/crypto/aead.ts";

const aead = await loadAead("auto");

function server(keys: Uint8Array[]): ServerCore {
  return new ServerCore({
    privateKey: SERVER_KEY,
    clients: keys.map((k, i) => ({ name: `p${i}`, publicKey: publicKeyOf(k) })),
    pool: parseCidr("10.9.0.0/16")!,
    mtu: 1420,
    routes: [],
    dns: [],
    keepaliveMs: 10_000,
    sessionTimeoutMs: 60_000,
    aead,
  });
}
const SERVER_KEY = generatePrivateKey();

/** Runs one diagnostic handshake of `key` at `now`; true when the client got its keys. */
function diagHandshake(s: ServerCore, key: Uint8Array, now: number, host: number): boolean {
  const c = new ClientCore({
    privateKey: key,
    serverPublicKey: publicKeyOf(SERVER_KEY),
    aead,
    diag: true,
  });
  c.start(now, 1_800_000_000_000 + now);
  // Each player from its own address (one address's handshakes are rate-limited as well).
  const from = { hostname: `10.${host >> 16 & 255}.${host >> 8 & 255}.${host & 255}`, port: 40000 };
  const out = new Uint8Array(2048);
  for (const d of c.outbox.splice(0)) s.receive(now, new PacketBuf(d, d.length), from, out);
  for (const o of s.outbox.splice(0)) c.receive(now, new PacketBuf(o.data, o.data.length), out);
  return c.ready;
}

Deno.test("diag sessions: as many players as the allow-list ping at once, none evicted", () => {
  const keys = Array.from({ length: MAX_DIAG_SESSIONS * 2 }, () => generatePrivateKey());
  const s = server(keys);
  keys.forEach((k, i) => assert(diagHandshake(s, k, 1000 + 10 * i, 1 + i), `player ${i}`));
  assertEquals(s.status(3000).diagSessions, keys.length, "every player's session kept");
});

Deno.test("diag sessions: a burst of diagnostic handshakes per key, then one a second", () => {
  const key = generatePrivateKey();
  const s = server([key]);
  // Back-to-back runs and retransmissions pass, up to the burst (each 100 ms apart, beyond the
  // 50 ms between any two initiations of one key).
  const at = (i: number) => 1000 + 100 * i;
  for (let i = 0; i < DIAG_BURST; i++) assert(diagHandshake(s, key, at(i), 1 + i), `run ${i}`);
  assert(!diagHandshake(s, key, at(DIAG_BURST), 10), "beyond the burst");
  assertEquals(s.drops.diag_rate, 1);
  // The bucket refills at one a second from the last counted handshake.
  const t = at(DIAG_BURST - 1) + DIAG_MIN_INTERVAL_MS + 1;
  assert(diagHandshake(s, key, t, 11), "a second later");
  assert(!diagHandshake(s, key, t + 500, 12), "one a second");
  assertEquals(s.drops.diag_rate, 2);
  assertEquals(s.status(t + 1000).diagSessions, 1, "the key's newer session replaced its older");
});

Deno.test("server probes: many clients are pinged a slice at a time, idle ones each once per 10 s", () => {
  const keys = Array.from({ length: 300 }, () => generatePrivateKey());
  const s = server(keys);
  // Tunnel sessions: a full handshake each (with the config request that confirms the keys).
  keys.forEach((k, i) => {
    const c = new ClientCore({ privateKey: k, serverPublicKey: publicKeyOf(SERVER_KEY), aead });
    const now = 1000 + 10 * i;
    c.start(now, 1_800_000_000_000 + now);
    const from = { hostname: `10.1.${i >> 8}.${i & 255}`, port: 40000 };
    const out = new Uint8Array(2048);
    for (let round = 0; round < 3; round++) {
      for (const d of c.outbox.splice(0)) s.receive(now, new PacketBuf(d, d.length), from, out);
      for (const o of s.outbox.splice(0)) c.receive(now, new PacketBuf(o.data, o.data.length), out);
    }
    assert(c.ready, `client ${i}`);
  });
  s.outbox.splice(0);
  // Ten seconds of sweeps of these idle sessions: 300 sessions make 5 slices; no sweep sends
  // more than its slice.
  const t0 = s.deadline();
  let sent = 0, most = 0;
  for (let now = t0; now < t0 + 10_000;) {
    s.tick(now);
    const n = s.outbox.splice(0).length;
    sent += n;
    most = Math.max(most, n);
    now = s.deadline();
  }
  assertEquals(sent, 300, "every client once");
  assert(most <= 64, `at most a slice at a time, saw ${most}`);
});

Deno.test("server probes: an idle session is measured every 10 s, a playing one every second", () => {
  const keys = [generatePrivateKey(), generatePrivateKey()];
  const s = server(keys);
  const cores = keys.map((k, i) => {
    const c = new ClientCore({ privateKey: k, serverPublicKey: publicKeyOf(SERVER_KEY), aead });
    c.start(1000, 1_800_000_000_000);
    const from = { hostname: `10.2.0.${i + 1}`, port: 40000 };
    const out = new Uint8Array(2048);
    for (let round = 0; round < 3; round++) {
      for (const d of c.outbox.splice(0)) s.receive(1000, new PacketBuf(d, d.length), from, out);
      for (const o of s.outbox.splice(0)) {
        c.receive(1000, new PacketBuf(o.data, o.data.length), out);
      }
    }
    assert(c.ready);
    return { c, from };
  });
  s.outbox.splice(0);
  const player = cores[1]!;
  const pkt = udpPacket(
    player.c.config!.address.addr,
    parseIPv4("198.51.100.7")!,
    new Uint8Array(20),
  );
  const sealed = PacketBuf.alloc(2048);
  const out = new Uint8Array(2048);
  const pings = new Map<string, number>();
  for (let now = s.deadline(); now < 21_000;) {
    // The player sends a packet every 100 ms; the other one stays quiet.
    if (player.c.seal(now, pkt, pkt.length, sealed).verdict === Verdict.Net) {
      s.receive(now, new PacketBuf(sealed.buf.slice(0, sealed.len), sealed.len), player.from, out);
    }
    s.tick(now);
    for (const o of s.outbox.splice(0)) {
      pings.set(o.to.hostname, (pings.get(o.to.hostname) ?? 0) + 1);
    }
    now = Math.min(s.deadline(), now + 100);
  }
  const idle = pings.get("10.2.0.1") ?? 0, playing = pings.get("10.2.0.2") ?? 0;
  assert(playing >= 18, `the player measured every second: ${playing}`);
  assert(idle >= 1 && idle <= 3, `the idle one every 10 s: ${idle}`);
});
