/**
 * Multipath (dual channel) on a virtual clock: a client with two paths, each its own endpoint
 * and link, and a server core. Covers the server's endpoint rules (pongs go back the way the
 * ping came, only data/handshakes/active pings move the session, redundant sessions send to
 * every recent endpoint) and both modes end to end.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { MultiPair } from "./support/pair.ts";
import { Pair } from "./support/pair.ts";
import { udpPacket } from "./support/packets.ts";
import { parseIPv4 } from "../src/lib/ip.ts";
import { REDUNDANT_ENDPOINT_MS } from "../src/core/timers.ts";
import type { MultipathMode } from "../src/core/paths.ts";

const GAME = parseIPv4("198.51.100.7")!;
const PING_MS = 20;

function connected(mode: MultipathMode, links = [{}, {}], seed = 1): MultiPair {
  const p = new MultiPair(mode, links, seed);
  p.client.start(p.now, p.wall);
  for (let t = 0; t < 10_000 && !p.client.ready; t += 10) p.run(10);
  assert(p.client.ready, "client ready after the handshake and config push");
  p.run(1_000); // a few probes on every path
  return p;
}

function tag(seq: number): Uint8Array {
  return new Uint8Array([seq >> 8, seq & 255]);
}

/**
 * A game-like ping stream: every 20 ms the client sends a request, the server echoes it at once.
 * `during(i)` runs before request i. Returns the sequence numbers whose reply came back.
 */
function pingStream(p: MultiPair, count: number, during?: (i: number) => void): Set<number> {
  const me = p.client.config!.address.addr;
  const got = new Set<number>();
  let seenServer = p.serverTun.length;
  let seenClient = p.clientTun.length;
  for (let i = 0; i < count + 50; i++) {
    if (i < count) {
      during?.(i);
      p.clientSend(udpPacket(me, GAME, tag(i)));
    }
    for (let t = 0; t < PING_MS; t++) {
      p.run(1);
      for (; seenServer < p.serverTun.length; seenServer++) {
        const req = p.serverTun[seenServer]!;
        p.serverSend(udpPacket(GAME, me, req.subarray(28)));
      }
      for (; seenClient < p.clientTun.length; seenClient++) {
        const rep = p.clientTun[seenClient]!;
        got.add((rep[28]! << 8) | rep[29]!);
      }
    }
  }
  return got;
}

function longestGap(got: Set<number>, count: number): number {
  let worst = 0, run = 0;
  for (let i = 0; i < count; i++) {
    run = got.has(i) ? 0 : run + 1;
    worst = Math.max(worst, run);
  }
  return worst;
}

Deno.test("Multipath failover: traffic on the active path, backup probes answered on theirs", () => {
  const p = connected("failover");
  const start = p.wire.length;
  const got = pingStream(p, 100);
  assertEquals(got.size, 100);
  const flights = p.wire.slice(start);
  const data = flights.filter((f) => f.data[1] === 3);
  assert(data.every((f) => f.path === 0), "data only on the active path, both ways");
  const backup = flights.filter((f) => f.path === 1);
  assert(backup.some((f) => f.toServer) && backup.some((f) => !f.toServer), "probes and pongs");
  assert(backup.every((f) => f.data[1] === 4), "only control (probes) on the backup path");
  assertEquals(p.pathOfSession(), 0);
  assertEquals(p.server.events.filter((e) => e.type === "roamed").length, 0, "never moved");
  const report = p.client.paths!.report();
  assert(report.every((r) => r.up && r.rttMs === 2), JSON.stringify(report));
});

Deno.test("Multipath failover: a dead active path is left within a second, and data follows", () => {
  const p = connected("failover", [{ delayMs: 5 }, { delayMs: 15 }]);
  const count = 200;
  const got = pingStream(p, count, (i) => {
    if (i === 50) p.links[0]!.up = false;
  });
  const gapMs = longestGap(got, count) * PING_MS;
  assert(gapMs > 0 && gapMs < 1000, `gap ${gapMs} ms`);
  assertEquals(p.client.paths!.active, 1);
  assertEquals(p.pathOfSession(), 1, "the server followed the data to path 1");
  for (let i = 60 + gapMs / PING_MS; i < count; i++) assert(got.has(i), `reply ${i} after`);
  const down = p.client.events.find((e) =>
    e.type === "paths" && e.changes.some((c) => c.kind === "down" && c.path === 0)
  );
  assert(down, "a path-down event for the log");
  assert(!p.client.events.some((e) => e.type === "path_dead"), "the tunnel itself never died");
});

Deno.test("Multipath failover: back to the preferred path only after it stayed up", () => {
  const p = connected("failover");
  p.links[0]!.up = false;
  pingStream(p, 50);
  assertEquals(p.client.paths!.active, 1);
  p.links[0]!.up = true;
  pingStream(p, 50); // 1 s: path 0 is up again, but not trusted yet
  assertEquals(p.client.paths!.isUp(0), true);
  assertEquals(p.client.paths!.active, 1);
  const got = pingStream(p, 150); // 3 s more
  assertEquals(p.client.paths!.active, 0);
  assertEquals(p.pathOfSession(), 0);
  assertEquals(got.size, 150, "switching back loses nothing");
});

Deno.test("Multipath redundant: every packet on both paths, one copy delivered each way", () => {
  const p = connected("redundant");
  assertEquals(p.session.redundant, true, "INIT_FLAG_REDUNDANT reached the server");
  const start = p.wire.length;
  const replayBefore = p.server.drops.replay + p.client.drops.replay;
  const got = pingStream(p, 100);
  assertEquals(got.size, 100);
  assertEquals(p.serverTun.length, 100, "the server's TUN saw each request once");
  const data = p.wire.slice(start).filter((f) => f.data[1] === 3);
  for (const toServer of [true, false]) {
    const dir = data.filter((f) => f.toServer === toServer);
    assertEquals(dir.filter((f) => f.path === 0).length, 100);
    assertEquals(dir.filter((f) => f.path === 1).length, 100);
  }
  // The second copies are replays, counted as such on both sides.
  assertEquals(p.server.drops.replay + p.client.drops.replay - replayBefore, 200);
});

Deno.test("Multipath redundant: 20% loss on each path, both ways, beats one path by far", () => {
  const count = 1000;
  const one = connected("redundant", [{ loss: 0.2 }], 3);
  const single = pingStream(one, count).size / count;
  const p = connected("redundant", [{ loss: 0.2 }, { loss: 0.2 }], 3);
  const both = pingStream(p, count).size / count;
  console.log(
    `  20% loss each way per path: one path ${(single * 100).toFixed(1)}%, ` +
      `two redundant paths ${(both * 100).toFixed(1)}% of ${count} pings answered`,
  );
  // Per direction 1 - 0.2^2 = 96%, so 92.2% round trip at best; one path gives 64%.
  assert(single > 0.58 && single < 0.7, `single ${single}`);
  assert(both > 0.88, `redundant ${both}`);
});

Deno.test("Multipath redundant: a path going down loses nothing", () => {
  const p = connected("redundant", [{ delayMs: 5 }, { delayMs: 10 }]);
  const got = pingStream(p, 200, (i) => {
    if (i === 50) p.links[0]!.up = false;
  });
  assertEquals(got.size, 200);
  // Once path 0 is down, the client stops sending there; the server stops after a second.
  const late = p.wire.filter((f) => f.at > p.now - 500 && f.data[1] === 3 && f.path === 0);
  assertEquals(late.length, 0);
});

Deno.test("Server: a redundant session sends to endpoints heard from in the last second only", () => {
  const p = connected("redundant");
  const me = p.client.config!.address.addr;
  p.serverSend(udpPacket(GAME, me, tag(1)));
  const first = p.wire.at(-1)!;
  assertEquals(p.wire.at(-2)!.at, first.at, "two copies at once");
  assertEquals(new Set(p.wire.slice(-2).map((f) => f.path)), new Set([0, 1]));
  p.links[1]!.up = false;
  p.run(REDUNDANT_ENDPOINT_MS + 300);
  const before = p.wire.length;
  p.serverSend(udpPacket(GAME, me, tag(2)));
  assertEquals(p.wire.length - before, 1, "the silent endpoint aged out");
  assertEquals(p.wire.at(-1)!.path, 0);
});

Deno.test("Server: backup probes never move the session; pongs go back where the ping came from", () => {
  const p = connected("failover");
  p.run(10_000);
  assertEquals(p.pathOfSession(), 0);
  const pongs = p.wire.filter((f) => !f.toServer && f.data[1] === 4);
  assert(pongs.filter((f) => f.path === 1).length >= 40, "backup probes answered on path 1");
  assertEquals(p.server.events.filter((e) => e.type === "roamed").length, 0);
});

Deno.test("Server: a plain 8-byte keepalive ping from a new address still moves the session", () => {
  const p = new Pair();
  p.client.start(p.now, p.wall);
  p.run(20);
  p.clientEndpoint = { hostname: "203.0.113.9", port: 999 };
  p.run(10_500); // one keepalive interval, no data
  assertEquals([...p.server.sessions()][0]!.endpoint, p.clientEndpoint);
});

Deno.test("Multipath: every path down is a dead tunnel; the client handshakes again", () => {
  const p = connected("failover");
  p.links[0]!.up = false;
  p.links[1]!.up = false;
  p.run(1_500);
  assert(p.client.events.some((e) => e.type === "path_dead"), "declared dead");
  p.links[1]!.up = true;
  p.run(3_000);
  assert(p.client.ready);
  assertEquals(p.client.paths!.active, 1);
  assertEquals(pingStream(p, 20).size, 20);
});

Deno.test("Server: a late datagram from the old path does not pull the session back", () => {
  const p = connected("failover");
  const me = p.client.config!.address.addr;
  p.links[0]!.up = false;
  p.clientSend(udpPacket(me, GAME, tag(1)));
  const late = p.wire.at(-1)!;
  assert(late.lost && late.path === 0, "sent on path 0 while it was down");
  pingStream(p, 100); // fails over, the session follows to path 1
  assertEquals(p.pathOfSession(), 1);
  const before = p.serverTun.length;
  p.deliver(late); // it finally arrives: accepted (a new counter), but not the newest
  assertEquals(p.serverTun.length, before + 1);
  assertEquals(p.pathOfSession(), 1);
});
