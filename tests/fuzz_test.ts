/**
 * Hostile input against both protocol cores while they hold a live session (a Pair over the
 * in-memory link, legitimate keepalives running between the fuzz inputs): random bytes,
 * plausible headers, bit flips, truncations, extensions, wrong types and lengths, valid headers
 * with bad tags, replays of captured valid datagrams, and valid initiations with mutated bytes
 * (also with mac1 recomputed, as an attacker who knows the server's public key can).
 *
 * For every input: nothing throws, the verdict is a drop counted under exactly one reason, no
 * session or lease appears, the session does not move or count the input as authenticated, and
 * nothing is sent (below the load threshold the server never answers what it cannot
 * authenticate; under load it may only send a cookie reply, smaller than the input, within the
 * source's rate).
 *
 * Deterministic: `XVPN_FUZZ_SEED` (default 0x5eed) and `XVPN_FUZZ_ITERATIONS` (default 8000 per
 * test, a few seconds in all) pick the run; a failure prints the seed and the iteration.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { Pair } from "./support/pair.ts";
import { fill, fixMac1, isType, junkInitiation, prng } from "./support/hostile.ts";
import { udpPacket } from "./support/packets.ts";
import { createInitiation, mac1Key } from "../src/core/handshake.ts";
import { publicKeyOf } from "../src/core/keys.ts";
import { PacketBuf } from "../src/core/packet.ts";
import { Verdict } from "../src/core/result.ts";
import { type Endpoint } from "../src/lib/endpoint.ts";
import { SOURCE_BURST, SOURCE_RATE_PER_S } from "../src/core/cookie.ts";
import {
  COOKIE_REPLY_BYTES,
  type DropCounters,
  HANDSHAKE_INIT_BYTES,
  HEADER_BYTES,
  MAC_BYTES,
  MessageType,
  writeHeader,
} from "../src/core/wire.ts";
import { parseIPv4 } from "../src/lib/ip.ts";

/** An integer from the environment (decimal or 0x hex), or `fallback` when unset. */
function envInt(name: string, fallback: number): number {
  let v: string | undefined;
  try {
    v = Deno.env.get(name);
  } catch {
    return fallback; // no --allow-env
  }
  if (v === undefined || v === "") return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}: expected an integer, got ${v}`);
  return n;
}

const SEED = envInt("XVPN_FUZZ_SEED", 0x5eed);
const ITERATIONS = envInt("XVPN_FUZZ_ITERATIONS", 8000);
const GAME = parseIPv4("198.51.100.7")!;

function sum(d: DropCounters): number {
  let n = 0;
  for (const v of Object.values(d)) n += v;
  return n;
}

function delta(after: DropCounters, before: DropCounters): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    const n = v - before[k as keyof DropCounters];
    if (n) out[k] = n;
  }
  return out;
}

function format(counts: Record<string, number>): string {
  return Object.entries(counts).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}=${v}`).join(" ");
}

/** A connected pair with some traffic each way, so there is something to replay. */
function livePair(threshold?: number): Pair {
  const p = new Pair({}, threshold === undefined ? {} : { handshakeLoadThreshold: threshold });
  p.client.start(p.now, p.wall);
  p.run(20);
  assert(p.client.ready, "client connected");
  for (let i = 0; i < 20; i++) traffic(p, i);
  return p;
}

/** One data packet each way, then 2 ms of link time: fresh datagrams to capture and replay. */
function traffic(p: Pair, i: number): void {
  const me = p.client.config!.address.addr;
  p.clientSend(udpPacket(me, GAME, new Uint8Array((i * 37) % 1300)));
  p.serverSend(udpPacket(GAME, me, new Uint8Array((i * 41) % 1300)));
  p.run(2);
}

/** The fuzz input generator: one datagram per call, named by how it was made. */
class Mutator {
  readonly kinds: Record<string, number> = {};
  readonly #r: () => number;
  /** Initiations from the real client key, never delivered intact (they would be accepted). */
  readonly #fresh: Uint8Array[];
  readonly #serverMac1: Uint8Array;

  constructor(readonly p: Pair, readonly toServer: boolean, seed: number) {
    this.#r = prng(seed);
    const pub = publicKeyOf(p.serverKey);
    this.#serverMac1 = mac1Key(pub);
    this.#fresh = toServer
      ? [1, 2, 3, 4].map((i) =>
        createInitiation({
          staticPrivate: p.clientKey,
          serverPublic: pub,
          localId: 0x1000 + i,
          wallMs: p.wall + 3_600_000 + i, // newer than anything the client will send
        }).datagram
      )
      : [];
  }

  #int(n: number): number {
    return this.#r() % n;
  }

  /** Valid datagrams already delivered in this direction. */
  #captured(): Uint8Array {
    const w = this.p.wire;
    for (;;) {
      const f = w[this.#int(w.length)]!;
      if (f.toServer === this.toServer && f.at <= this.p.now) return f.data;
    }
  }

  /** Flips 1-4 distinct bits of d[from..to) (distinct: two flips of one bit would cancel). */
  #flip(d: Uint8Array, from = 0, to = d.length): Uint8Array {
    const bits = new Set<number>();
    const want = Math.min(1 + this.#int(4), (to - from) * 8);
    while (bits.size < want) bits.add(from * 8 + this.#int((to - from) * 8));
    for (const b of bits) d[b >> 3]! ^= 1 << (b & 7);
    return d;
  }

  /** A source address: mostly the client's own (the most dangerous), sometimes spoofed. */
  source(): Endpoint {
    if (this.#int(10) < 7) return this.p.clientEndpoint;
    return { hostname: `203.0.113.${this.#int(8)}`, port: 1024 + this.#int(60000) };
  }

  next(): Uint8Array {
    const k = this.#int(100);
    const pick = (name: string, d: Uint8Array) => {
      this.kinds[name] = (this.kinds[name] ?? 0) + 1;
      return d;
    };
    if (k < 12) return pick("random", fill(new Uint8Array(this.#int(1600)), this.#r));
    if (k < 24) {
      const d = fill(new Uint8Array(this.#int(400)), this.#r);
      if (d.length >= 2) (d[0] = 1), (d[1] = this.#int(8));
      return pick("plausible_header", d);
    }
    if (k < 38) return pick("bit_flip", this.#flip(this.#captured().slice()));
    if (k < 46) {
      const c = this.#captured();
      return pick("truncated", c.slice(0, this.#int(c.length)));
    }
    if (k < 54) {
      const c = this.#captured();
      const d = new Uint8Array(c.length + 1 + this.#int(64));
      d.set(c);
      fill(d.subarray(c.length), this.#r);
      return pick("extended", d);
    }
    if (k < 62) {
      const d = this.#captured().slice();
      d[1] = (d[1]! + 1 + this.#int(6)) % 8;
      return pick("wrong_type", d);
    }
    if (k < 68) {
      // The right header for a type, the length of another.
      const lengths = [HANDSHAKE_INIT_BYTES, 100, COOKIE_REPLY_BYTES, 31, 0, 17];
      const d = fill(new Uint8Array(lengths[this.#int(lengths.length)]!), this.#r);
      if (d.length >= HEADER_BYTES) writeHeader(d, 1 + this.#int(5), 0, 0, 0);
      return pick("wrong_length", d);
    }
    if (k < 80) {
      // A header that finds the session and its current keys, with a body that is not sealed.
      const c = this.#latestSealed();
      const d = fill(new Uint8Array(HEADER_BYTES + 16 + this.#int(200)), this.#r);
      d.set(c.subarray(0, 8));
      d.fill(0, 8, 12); // a counter far ahead of the window, but a safe integer
      return pick("bad_tag", d);
    }
    if (k < 90) return pick("replay", this.#captured());
    if (!this.toServer) {
      const d = fill(new Uint8Array(COOKIE_REPLY_BYTES), this.#r);
      writeHeader(d, MessageType.CookieReply, 0, this.p.client.localId, 0);
      return pick("forged_cookie_reply", d);
    }
    if (k < 93) {
      return pick(
        "junk_initiation_valid_mac1",
        junkInitiation(publicKeyOf(this.p.serverKey), this.#r),
      );
    }
    const fresh = this.#fresh[this.#int(this.#fresh.length)]!.slice();
    const macOff = HANDSHAKE_INIT_BYTES - 2 * MAC_BYTES;
    if (k < 96) return pick("fresh_initiation_flipped", this.#flip(fresh, 0, macOff + MAC_BYTES));
    // Flip inside the Noise message and recompute mac1: the server must spend its
    // Diffie-Hellman and still refuse it.
    return pick(
      "fresh_initiation_flipped_mac1_fixed",
      fixMac1(this.#flip(fresh, HEADER_BYTES + 4, macOff), this.#serverMac1),
    );
  }

  #latestSealed(): Uint8Array {
    const w = this.p.wire;
    for (let i = w.length - 1; i >= 0; i--) {
      const f = w[i]!;
      if (f.toServer === this.toServer && f.at <= this.p.now && isType(f.data, MessageType.Data)) {
        return f.data;
      }
    }
    return this.#captured();
  }
}

Deno.test(`fuzz: the server rejects and counts hostile input, answers nothing, leases nothing (seed ${SEED})`, () => {
  const p = livePair();
  const m = new Mutator(p, true, SEED);
  const s = p.server;
  const session = [...s.sessions()][0]!;
  const before = { ...s.drops };
  const out = new Uint8Array(70_000);
  let i = 0;
  try {
    for (; i < ITERATIONS; i++) {
      // Legitimate keepalives, pongs, data and rekeys go on in between.
      if (i % 50 === 0) traffic(p, i);
      p.run(2);
      const endpoint = session.endpoint;
      const rx = session.rxPackets;
      const dropsBefore = sum(s.drops);
      const data = m.next();
      const r = s.receive(p.now, new PacketBuf(data), m.source(), out);
      assertEquals(r.verdict, Verdict.Drop, "rejected");
      assertEquals(sum(s.drops), dropsBefore + 1, `counted once (${r.reason})`);
      assertEquals(s.outbox.length, 0, "no reply to an unauthenticated datagram");
      assertEquals([...s.sessions()].length, 1, "no session");
      assertEquals(s.pool.size, 1, "no lease");
      assertEquals(session.endpoint, endpoint, "the session did not move");
      assertEquals(session.rxPackets, rx, "nothing authenticated");
      assert(!s.handshakes.underLoad(p.now), "stays below the load threshold");
    }
  } catch (err) {
    throw new Error(`seed ${SEED}, iteration ${i}: ${(err as Error).message}`, { cause: err });
  }
  p.run(100);
  assert(p.client.ready && [...s.sessions()].length === 1, "the tunnel still works");
  const drops = delta(s.drops, before);
  assertEquals(Object.values(drops).reduce((a, b) => a + b, 0), ITERATIONS);
  console.log(`  server: ${ITERATIONS} inputs (seed ${SEED}): ${format(m.kinds)}`);
  console.log(`  server drops by reason: ${format(drops)}`);
});

Deno.test(`fuzz: the client rejects and counts hostile input and sends nothing (seed ${SEED})`, () => {
  const p = livePair();
  const m = new Mutator(p, false, SEED + 1);
  const c = p.client;
  const before = { ...c.drops };
  const out = new Uint8Array(70_000);
  let i = 0;
  try {
    for (; i < ITERATIONS; i++) {
      if (i % 50 === 0) traffic(p, i);
      p.run(2);
      if (i % 500 === 250) {
        // Half way between keepalives, start a handshake, so that responses and cookie replies
        // meet a pending initiation too (it completes on the next run).
        c.start(p.now, p.wall);
      }
      const pending = c.outbox.length;
      const rx = c.stats.rxPackets;
      const config = c.config;
      const dropsBefore = sum(c.drops);
      const r = c.receive(p.now, new PacketBuf(m.next()), out);
      assertEquals(r.verdict, Verdict.Drop, "rejected");
      assertEquals(sum(c.drops), dropsBefore + 1, `counted once (${r.reason})`);
      assertEquals(c.outbox.length, pending, "nothing sent because of it");
      assertEquals(c.stats.rxPackets, rx, "nothing authenticated");
      assert(c.config === config, "same session");
    }
  } catch (err) {
    throw new Error(`seed ${SEED}, iteration ${i}: ${(err as Error).message}`, { cause: err });
  }
  p.run(100);
  assert(c.ready, "the tunnel still works");
  const drops = delta(c.drops, before);
  assertEquals(Object.values(drops).reduce((a, b) => a + b, 0), ITERATIONS);
  console.log(`  client: ${ITERATIONS} inputs (seed ${SEED}): ${format(m.kinds)}`);
  console.log(`  client drops by reason: ${format(drops)}`);
});

Deno.test(`fuzz under load: only small cookie replies, within each source's rate, no DH (seed ${SEED})`, () => {
  const p = livePair(1);
  const s = p.server;
  const next = prng(SEED + 2);
  for (let i = 0; i < 3; i++) {
    s.receive(p.now, new PacketBuf(junkInitiation(publicKeyOf(p.serverKey), next)), {
      hostname: "198.18.0.1",
      port: 1,
    }, new Uint8Array(2048));
  }
  s.outbox.splice(0);
  const m = new Mutator(p, true, SEED + 3);
  const before = { ...s.drops };
  const processed = s.handshakes.stats.processed;
  const start = p.now;
  const replies = new Map<string, number>();
  const out = new Uint8Array(70_000);
  let i = 0;
  try {
    for (; i < ITERATIONS; i++) {
      if (i % 50 === 0) traffic(p, i);
      p.run(2);
      const dropsBefore = sum(s.drops);
      const data = m.next();
      const from = m.source();
      const r = s.receive(p.now, new PacketBuf(data), from, out);
      assertEquals(r.verdict, Verdict.Drop, "rejected");
      assertEquals(sum(s.drops), dropsBefore + 1, `counted once (${r.reason})`);
      for (const o of s.outbox.splice(0)) {
        assert(isType(o.data, MessageType.CookieReply), "only cookie replies");
        assert(o.data.length < data.length, "smaller than what caused it");
        assertEquals(o.to, from, "to the source");
        replies.set(from.hostname, (replies.get(from.hostname) ?? 0) + 1);
      }
      assertEquals([...s.sessions()].length, 1, "no session");
      assertEquals(s.pool.size, 1, "no lease");
    }
  } catch (err) {
    throw new Error(`seed ${SEED}, iteration ${i}: ${(err as Error).message}`, { cause: err });
  }
  assertEquals(s.handshakes.stats.processed, processed, "no Diffie-Hellman under load");
  const seconds = (p.now - start) / 1000;
  const cap = SOURCE_BURST + SOURCE_RATE_PER_S * seconds;
  for (const [host, n] of replies) assert(n <= cap, `${host}: ${n} replies > ${cap}`);
  const drops = delta(s.drops, before);
  console.log(
    `  under load: ${ITERATIONS} inputs over ${seconds} s, cookie replies by source: ${
      format(Object.fromEntries(replies))
    } (cap ${cap.toFixed(0)} each)`,
  );
  console.log(`  under load drops by reason: ${format(drops)}`);
});
