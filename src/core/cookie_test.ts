/**
 * The under-load cookie (WireGuard whitepaper 5.4.7): building blocks, then a client and a server
 * core over the in-memory link with a virtual clock, the server pushed over its load threshold
 * by initiations from spoofed sources.
 */
import { assert, assertEquals } from "../../tests/support/assert.ts";
import {
  checkMac2,
  COOKIE_REPLIES_PER_S,
  cookieKey,
  createCookieReply,
  HANDSHAKES_PER_S,
  mac1Field,
  MAX_TRACKED_SOURCES,
  openCookieReply,
  RateWindow,
  SOURCE_BURST,
  SourceLimiter,
  writeMac2,
} from "./cookie.ts";
import { createInitiation } from "./handshake.ts";
import { generatePrivateKey, publicKeyOf } from "./keys.ts";
import { PacketBuf } from "./packet.ts";
import { Verdict } from "./result.ts";
import { type Endpoint } from "../lib/endpoint.ts";
import { COOKIE_REPLY_BYTES, HANDSHAKE_INIT_BYTES, MessageType, readU32 } from "./wire.ts";
import { Pair } from "../../tests/support/pair.ts";
import { isType, junkInitiation, prng } from "../../tests/support/hostile.ts";

const THRESHOLD = 20;

function spoofed(i: number): Endpoint {
  return { hostname: `203.0.113.${i % 250}`, port: 1024 + i };
}

/** A pair whose server is over its (lowered) load threshold; the flood's replies are removed. */
function loadedPair(): { p: Pair; floodReplies: Uint8Array[] } {
  const p = new Pair({}, { handshakeLoadThreshold: THRESHOLD });
  const next = prng(7);
  const serverPub = publicKeyOf(p.serverKey);
  for (let i = 0; i < THRESHOLD + 10; i++) {
    p.deliver({ data: junkInitiation(serverPub, next), toServer: true, from: spoofed(i) });
  }
  assert(p.server.handshakes.underLoad(p.now));
  return { p, floodReplies: p.server.outbox.splice(0).map((o) => o.data) };
}

function initiationFor(p: Pair, wallMs = p.wall): Uint8Array {
  return createInitiation({
    staticPrivate: p.clientKey,
    serverPublic: publicKeyOf(p.serverKey),
    localId: 0x0a0b0c0d,
    wallMs,
  }).datagram;
}

Deno.test("RateWindow counts the events of the last second only", () => {
  const w = new RateWindow();
  for (let t = 0; t < 1000; t += 10) w.add(10_000 + t); // 100 events over one second
  assertEquals(w.count(10_999), 100);
  // 100 ms slots: at 11 500 the window holds 10 600..11 599, i.e. the events at 10 600..10 990.
  assertEquals(w.count(11_500), 40);
  assertEquals(w.count(12_100), 0);
  w.add(50_000);
  assertEquals(w.count(50_000), 1);
});

Deno.test("SourceLimiter allows a burst, then the rate, and remembers a bounded number", () => {
  const l = new SourceLimiter(20, 5, 100);
  let ok = 0;
  for (let i = 0; i < 50; i++) if (l.take(1000, "a")) ok++;
  assertEquals(ok, SOURCE_BURST);
  assertEquals(l.take(1010, "a"), false, "0.2 tokens after 10 ms");
  assertEquals(l.take(1060, "a"), true, "one token per 50 ms");
  for (let i = 0; i < 10_000; i++) l.take(2000 + (i >> 6), `10.0.${i >> 8}.${i & 255}`);
  assert(l.size <= 100, `bounded: ${l.size}`);
  assertEquals(new SourceLimiter().max, MAX_TRACKED_SOURCES);
});

Deno.test("cookie reply seals the cookie to the initiation's mac1 and is smaller", () => {
  const server = generatePrivateKey();
  const p = new Pair();
  const init = initiationFor(p);
  const key = cookieKey(publicKeyOf(server));
  const cookie = crypto.getRandomValues(new Uint8Array(16));
  const reply = createCookieReply(key, init, cookie, new Uint8Array(24).fill(9));
  assertEquals(reply.length, COOKIE_REPLY_BYTES);
  assert(reply.length < HANDSHAKE_INIT_BYTES, "no amplification");
  assert(isType(reply, MessageType.CookieReply));
  assertEquals(readU32(reply, 4), 0x0a0b0c0d, "addressed to the initiator's sender id");
  assertEquals(openCookieReply(key, reply, mac1Field(init)), cookie);
  const other = initiationFor(p, p.wall + 1);
  assertEquals(openCookieReply(key, reply, mac1Field(other)), undefined, "bound to one mac1");
  const bad = reply.slice();
  bad[50]! ^= 1;
  assertEquals(openCookieReply(key, bad, mac1Field(init)), undefined);
  writeMac2(init, cookie);
  assert(checkMac2(init, cookie));
  assert(!checkMac2(init, new Uint8Array(16)));
});

Deno.test("under load: an initiation without mac2 gets a cookie reply and no Diffie-Hellman", () => {
  const { p, floodReplies } = loadedPair();
  const st = p.server.handshakes.stats;
  assertEquals(st.processed, THRESHOLD, "only the initiations below the threshold got a DH");
  assertEquals(p.server.drops.bad_handshake, THRESHOLD);
  assertEquals(floodReplies.length, 10);
  assertEquals(p.server.drops.under_load, 10);
  for (const r of floodReplies) assertEquals(r.length, COOKIE_REPLY_BYTES);

  // The client's first initiation carries no mac2: the server answers with a cookie only.
  p.client.start(p.now, p.wall);
  const [init] = p.client.outbox.splice(0);
  const verdict = p.deliver({ data: init!, toServer: true, from: p.clientEndpoint });
  assertEquals(verdict, Verdict.Drop);
  assertEquals(p.server.drops.under_load, 11);
  assertEquals(st.processed, THRESHOLD, "no Diffie-Hellman for it");
  assertEquals([...p.server.sessions()].length, 0, "and no session");
  assertEquals(p.server.pool.size, 0, "and no lease");
  const out = p.server.outbox.splice(0);
  assertEquals(out.length, 1);
  assert(isType(out[0]!.data, MessageType.CookieReply));
  assertEquals(out[0]!.to, p.clientEndpoint);
  assert(out[0]!.data.length < init!.length);

  // The client takes the cookie and sends the same initiation again at once, with mac2.
  p.deliver({ data: out[0]!.data, toServer: false, from: p.serverEndpoint });
  const again = p.client.outbox.splice(0);
  assertEquals(again.length, 1);
  assertEquals(again[0]!.subarray(0, 145), init!.subarray(0, 145), "same message, same mac1");
  p.deliver({ data: again[0]!, toServer: true, from: p.clientEndpoint });
  assertEquals(st.processed, THRESHOLD + 1, "a valid mac2 under load is processed");
  p.run(20);
  assert(p.client.ready, "the client completed the handshake after the cookie");
  assertEquals([...p.server.sessions()].length, 1);
});

Deno.test("under load: a replayed cookie reply is ignored", () => {
  const { p } = loadedPair();
  p.client.start(p.now, p.wall);
  p.run(20);
  assert(p.client.ready);
  const reply = p.wire.find((f) => !f.toServer && isType(f.data, MessageType.CookieReply))!;
  assert(reply, "the client got a cookie on its way in");
  // A replay now: nothing pending, nothing sent.
  p.deliver(reply);
  assertEquals(p.client.drops.unknown_receiver, 1);
  // A replay while a new initiation is pending: that one has a fresh sender id (and mac1), so
  // the reply is not even addressed to it.
  p.now += 200_000; // past the cookie's lifetime, so the next initiation carries no mac2
  p.wall += 200_000;
  p.client.start(p.now, p.wall);
  p.client.outbox.splice(0);
  p.deliver(reply);
  assertEquals(p.client.drops.unknown_receiver, 2);
  assertEquals(p.client.outbox.length, 0, "nothing sent because of a replayed cookie reply");
});

Deno.test("a cookie reply is taken once per initiation", () => {
  const { p } = loadedPair();
  p.client.start(p.now, p.wall);
  p.deliver({ data: p.client.outbox.splice(0)[0]!, toServer: true, from: p.clientEndpoint });
  const reply = p.server.outbox.splice(0)[0]!.data;
  p.deliver({ data: reply, toServer: false, from: p.serverEndpoint });
  assertEquals(p.client.outbox.splice(0).length, 1);
  p.deliver({ data: reply, toServer: false, from: p.serverEndpoint });
  assertEquals(p.client.drops.bad_cookie, 1);
  assertEquals(p.client.outbox.length, 0);
});

Deno.test("under load: mac2 made for another source address fails", () => {
  const { p } = loadedPair();
  const init = initiationFor(p);
  writeMac2(init, p.server.handshakes.cookieFor(p.now, p.clientEndpoint));
  const before = p.server.handshakes.stats.processed;
  for (
    const from of [{ ...p.clientEndpoint, port: 40001 }, { hostname: "192.0.2.99", port: 40000 }]
  ) {
    const out = new Uint8Array(2048);
    p.server.receive(p.now, new PacketBuf(init.slice()), from, out);
    assertEquals(p.server.handshakes.stats.processed, before, `no DH for ${from.hostname}`);
    const replies = p.server.outbox.splice(0);
    assertEquals(replies.length, 1, "it gets a cookie of its own instead");
    assertEquals(replies[0]!.to, from);
  }
  p.server.receive(p.now, new PacketBuf(init.slice()), p.clientEndpoint, new Uint8Array(2048));
  assertEquals(p.server.handshakes.stats.processed, before + 1, "from the right source it works");
  assertEquals([...p.server.sessions()].length, 1);
});

Deno.test("under load: a source over its rate gets nothing at all", () => {
  const { p } = loadedPair();
  const init = initiationFor(p);
  const from = { hostname: "198.18.0.1", port: 5000 };
  let replies = 0;
  for (let i = 0; i < 50; i++) {
    p.server.receive(p.now, new PacketBuf(init.slice()), from, new Uint8Array(2048));
    replies += p.server.outbox.splice(0).length;
  }
  assertEquals(replies, SOURCE_BURST);
  assertEquals(p.server.drops.source_rate, 50 - SOURCE_BURST);
});

Deno.test("cookies outlive one secret rotation but not two; load ends a second after", () => {
  const { p } = loadedPair();
  const gate = p.server.handshakes;
  const cookie = gate.cookieFor(p.now, p.clientEndpoint);
  const keepLoaded = () => {
    const next = prng(p.now);
    for (let i = 0; i < THRESHOLD + 1; i++) {
      p.server.receive(
        p.now,
        new PacketBuf(junkInitiation(publicKeyOf(p.serverKey), next)),
        spoofed(1000 + i),
        new Uint8Array(2048),
      );
    }
    p.server.outbox.splice(0);
  };
  const tryWith = () => {
    const init = initiationFor(p);
    writeMac2(init, cookie);
    const before = gate.stats.processed;
    p.server.receive(p.now, new PacketBuf(init), p.clientEndpoint, new Uint8Array(2048));
    p.server.outbox.splice(0);
    return gate.stats.processed > before;
  };
  p.now += 130_000;
  p.wall += 130_000;
  keepLoaded();
  assert(tryWith(), "previous secret still accepted");
  p.now += 130_000;
  p.wall += 130_000;
  keepLoaded();
  assert(!tryWith(), "two rotations later the cookie is stale");
  assert(gate.underLoad(p.now));
  assert(!gate.underLoad(p.now + 1100), "no longer under load a second after the flood");
});

Deno.test("under load: past the global reply budget a spoofed flood gets no replies", () => {
  const { p } = loadedPair();
  const next = prng(11);
  const serverPub = publicKeyOf(p.serverKey);
  let replies = 0;
  const n = 3 * COOKIE_REPLIES_PER_S;
  for (let i = 0; i < n; i++) {
    // All within one second, each from a fresh source: the per-source limit never bites.
    const from = { hostname: `10.${i >> 16}.${(i >> 8) & 255}.${i & 255}`, port: 1000 };
    p.server.receive(
      p.now,
      new PacketBuf(junkInitiation(serverPub, next)),
      from,
      new Uint8Array(2048),
    );
    replies += p.server.outbox.splice(0).length;
  }
  assert(replies <= COOKIE_REPLIES_PER_S / 10, `burst of the budget only: ${replies}`);
  assertEquals(p.server.drops.cookie_budget, n - replies);
  assertEquals(p.server.handshakes.stats.overBudget, n - replies);
  p.now += 1000;
  p.client.start(p.now, p.wall);
  p.run(20);
  assert(p.client.ready, "a second later the budget has refilled for a real client");
});

/** An initiation from `from` with the mac2 of its current cookie: one an attacker who can
 * receive at that address could send. */
function withCookie(p: Pair, init: Uint8Array, from: Endpoint): Uint8Array {
  const d = init.slice();
  writeMac2(d, p.server.handshakes.cookieFor(p.now, from));
  return d;
}

Deno.test("under load: one IPv6 /64 shares one source bucket, however many addresses it uses", () => {
  const { p } = loadedPair();
  const init = initiationFor(p);
  const before = p.server.handshakes.stats.processed;
  const n = 10_000;
  for (let i = 0; i < n; i++) {
    // Every address of one /64, each with the valid cookie of its own address.
    const from = {
      hostname: `2001:db8:5:6:${(i >> 8).toString(16)}::${(i & 255).toString(16)}`,
      port: 4000,
    };
    p.server.receive(p.now, new PacketBuf(withCookie(p, init, from)), from, new Uint8Array(2048));
    p.server.outbox.splice(0);
  }
  const reached = p.server.handshakes.stats.processed - before;
  assertEquals(reached, SOURCE_BURST, "one bucket for the /64: its burst, not one per address");
  assertEquals(p.server.drops.source_rate, n - SOURCE_BURST);
});

Deno.test("under load: the global Diffie-Hellman budget caps cookie-holding sources", () => {
  const { p } = loadedPair();
  const init = initiationFor(p);
  const before = p.server.handshakes.stats.processed;
  const n = 3 * HANDSHAKES_PER_S;
  for (let i = 0; i < n; i++) {
    // Fresh IPv4 sources, each with its valid cookie: the per-source limit never bites.
    const from = { hostname: `10.9.${i >> 8}.${i & 255}`, port: 1000 };
    p.server.receive(p.now, new PacketBuf(withCookie(p, init, from)), from, new Uint8Array(2048));
    p.server.outbox.splice(0);
  }
  const reached = p.server.handshakes.stats.processed - before;
  assert(reached <= HANDSHAKES_PER_S / 10, `a burst only: ${reached}`);
  assert(reached > 0);
  assertEquals(p.server.drops.dh_budget, n - reached);
  assertEquals(p.server.handshakes.stats.dhBudget, n - reached);
  // A second later the budget has refilled at its rate.
  p.now += 1000;
  const from = { hostname: "10.10.0.1", port: 1000 };
  p.server.receive(p.now, new PacketBuf(withCookie(p, init, from)), from, new Uint8Array(2048));
  assertEquals(p.server.handshakes.stats.processed - before, reached + 1);
});
