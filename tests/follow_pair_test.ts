/**
 * Domain following in the client core, on a virtual clock: an answer for a followed name is
 * held and announced, released as it was, its address accepted as a source from then on, and
 * its route given up only once its TTL passed and traffic stopped.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { Pair } from "./support/pair.ts";
import { udpPacket } from "./support/packets.ts";
import { answer, query } from "./support/dnsserver.ts";
import { parseIPv4 } from "../src/lib/ip.ts";
import { FOLLOW_IDLE_MS } from "../src/core/follow.ts";
import type { ClientEvent } from "../src/core/client.ts";

const RESOLVER = parseIPv4("198.51.100.53")!; // inside the pair's pushed route
const GAME = parseIPv4("203.0.113.9")!; // routed by nothing but the answer
const OTHER = parseIPv4("203.0.113.10")!;

function connected(): Pair {
  const p = new Pair({ client: { follow: ["example.com"] } });
  p.client.start(p.now, p.wall);
  p.run(50);
  assert(p.client.ready);
  return p;
}

function dnsAnswer(p: Pair, name: string, ttl: number): Uint8Array {
  const zone = { [name]: [["A", "203.0.113.9", ttl] as ["A", string, number]] };
  return udpPacket(RESOLVER, p.client.config!.address.addr, answer(query(name), zone), [53, 40000]);
}

function follows(p: Pair): Extract<ClientEvent, { type: "follow" | "unfollow" }>[] {
  return p.client.events.filter((e) => e.type === "follow" || e.type === "unfollow") as never;
}

Deno.test("follow: an answer for a followed name is held until released, then passes unchanged", () => {
  const p = connected();
  const tunBefore = p.clientTun.length;
  const pkt = dnsAnswer(p, "play.example.com", 30);
  assert(p.serverSend(pkt));
  p.run(5);
  assertEquals(p.clientTun.length, tunBefore, "held, not written");
  const [ev] = follows(p);
  assert(ev && ev.type === "follow", "announced");
  assertEquals(ev.addresses, [{ addr: GAME }]);
  assertEquals(p.client.followed, 1);
  assertEquals(p.client.release(ev.id), pkt, "released as it came");
  assertEquals(p.client.release(ev.id), undefined, "once");
  // The same answer again: nothing new to route, so it is not held.
  assert(p.serverSend(dnsAnswer(p, "play.example.com", 30)));
  p.run(5);
  assertEquals(p.clientTun.length, tunBefore + 1);
  // A name outside the profile passes at once.
  assert(p.serverSend(dnsAnswer(p, "play.other.test", 30)));
  p.run(5);
  assertEquals(p.clientTun.length, tunBefore + 2);
  assertEquals(follows(p).length, 1);
});

Deno.test("follow: a followed address is accepted as a source; others still are not", () => {
  const p = connected();
  assert(p.serverSend(dnsAnswer(p, "play.example.com", 30)));
  p.run(5);
  const me = p.client.config!.address.addr;
  const n = p.clientTun.length;
  assert(p.serverSend(udpPacket(GAME, me, new Uint8Array(20))));
  assert(p.serverSend(udpPacket(OTHER, me, new Uint8Array(20))));
  p.run(5);
  assertEquals(p.clientTun.length, n + 1, "the game server's packet in, the other dropped");
  assertEquals(p.client.drops.bad_inner_src, 1);
});

Deno.test("follow: the route goes after its TTL plus the idle time, not while traffic flows", () => {
  const p = connected();
  assert(p.serverSend(dnsAnswer(p, "play.example.com", 30)));
  p.run(5);
  const me = p.client.config!.address.addr;
  // Traffic to the address every 20 s for 10 minutes: well past the TTL, the route stays.
  for (let t = 0; t < 600_000; t += 20_000) {
    assert(p.clientSend(udpPacket(me, GAME, new Uint8Array(20))));
    p.run(20_000);
  }
  assertEquals(follows(p).filter((e) => e.type === "unfollow").length, 0, "in use: kept");
  // Then silence: kept for the idle time, gone within a sweep after it.
  p.run(FOLLOW_IDLE_MS - 15_000);
  assertEquals(follows(p).filter((e) => e.type === "unfollow").length, 0, "idle, not long enough");
  p.run(30_000);
  const gone = follows(p).filter((e) => e.type === "unfollow");
  assertEquals(gone.length, 1);
  assertEquals(gone[0]!.addresses, [{ addr: GAME }]);
  assertEquals(p.client.followed, 0);
  assert(p.serverSend(udpPacket(GAME, me, new Uint8Array(20))));
  const drops = p.client.drops.bad_inner_src;
  p.run(5);
  assertEquals(p.client.drops.bad_inner_src, drops + 1, "no longer accepted as a source");
});

Deno.test("follow: an unused route stays until its TTL when the TTL is the longer", () => {
  const p = connected();
  assert(p.serverSend(dnsAnswer(p, "play.example.com", 900)));
  p.run(5);
  p.run(FOLLOW_IDLE_MS + 60_000); // idle long enough, TTL (15 min) not over
  assertEquals(follows(p).filter((e) => e.type === "unfollow").length, 0);
  p.run(900_000 - FOLLOW_IDLE_MS - 60_000 + 15_000);
  assertEquals(follows(p).filter((e) => e.type === "unfollow").length, 1, "gone after its TTL");
});

Deno.test("follow: addresses the runtime could not route are forgotten, and followed afresh", () => {
  const p = connected();
  assert(p.serverSend(dnsAnswer(p, "play.example.com", 30)));
  p.run(5);
  const [ev] = follows(p);
  assert(ev && ev.type === "follow");
  p.client.release(ev.id, ev.addresses); // `ip route` failed for them
  assertEquals(p.client.followed, 0);
  const me = p.client.config!.address.addr;
  const drops = p.client.drops.bad_inner_src;
  assert(p.serverSend(udpPacket(GAME, me, new Uint8Array(20))));
  p.run(5);
  assertEquals(p.client.drops.bad_inner_src, drops + 1, "not accepted as a source");
  assert(p.serverSend(dnsAnswer(p, "play.example.com", 30)));
  p.run(5);
  assertEquals(follows(p).filter((e) => e.type === "follow").length, 2, "the next answer is new");
});
