/**
 * Game packets first, through the fast path's data-plane loop over its in-memory twins on a
 * virtual clock: backpressure instead of loss, the game ahead of a download behind a slow link,
 * CoDel and ECN on the bulk flow, the receiver serving interactive datagrams first and shedding
 * bulk when it falls behind, DSCP marks, RFC 6040 at the tunnel's ends, and shaping both ways.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { LoopPair } from "./support/looppair.ts";
import { udpPacket } from "./support/packets.ts";
import { parseIPv4 } from "../src/lib/ip.ts";
import { Ecn, ecnOf, setEcn } from "../src/lib/ecn.ts";

const GAME = parseIPv4("198.51.100.7")!;
const CDN = parseIPv4("198.51.100.80")!;

function connected(p: LoopPair): LoopPair {
  p.start();
  p.run(50);
  assert(p.clientCore.ready, "connected");
  return p;
}

/** A numbered UDP packet (number in the first 4 payload bytes) on ports 1000 -> `port`. */
function pkt(src: number, dst: number, i: number, size: number, port = 2000, ecn = 0): Uint8Array {
  const payload = new Uint8Array(size);
  new DataView(payload.buffer).setUint32(0, i);
  const p = udpPacket(src, dst, payload, [1000, port]);
  if (ecn) setEcn(p, 0, ecn);
  return p;
}
const numberOf = (p: Uint8Array) => new DataView(p.buffer, p.byteOffset).getUint32(28);
const portOf = (p: Uint8Array) => (p[22]! << 8) | p[23]!;

/**
 * `seconds` of a bulk flow pushing 2x the uplink plus a 64 Hz game flow, from the client;
 * returns the game's and the bulk's one-way delays (ms) as the server's TUN saw them.
 */
function uplinkUnderLoad(p: LoopPair, seconds: number, ecn = 0) {
  const me = p.clientCore.config!.address.addr;
  const sentAt = new Map<number, number>();
  let n = 0;
  const end = p.now + seconds * 1000;
  let nextGame = p.now;
  while (p.now < end) {
    // 20 Mbit/s uplink: 2.5 bytes per µs; offer 5 KB per ms of bulk (40 Mbit/s).
    for (let k = 0; k < 4; k++) p.client.tun.inject(pkt(me, CDN, n++, 1250, 443, ecn));
    if (p.now >= nextGame) {
      sentAt.set(n, p.now);
      p.client.tun.inject(pkt(me, GAME, n++, 100, 27015));
      nextGame += 1000 / 64;
    }
    p.run(1);
  }
  p.run(2000); // drain: a full queue of 1024 packets takes about 0.55 s at 20 Mbit/s
  const game: number[] = [], bulk: number[] = [];
  const w = p.server.tun.written;
  for (let i = 0; i < w.length; i++) {
    const at = p.server.tun.writtenAt[i]!;
    const id = numberOf(w[i]!);
    if (portOf(w[i]!) === 27015) game.push(at - sentAt.get(id)!);
    else bulk.push(at);
  }
  return { game, gameSent: sentAt.size, bulkDelivered: bulk.length, written: w };
}

const p99 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.99)]!;

Deno.test("loop: a socket that pushes back loses nothing: packets wait for POLLOUT", () => {
  const p = connected(new LoopPair());
  p.client.udp.sendLimit = 8; // the kernel takes 8 datagrams per call, then says EAGAIN
  const me = p.clientCore.config!.address.addr;
  for (let i = 0; i < 500; i++) p.client.tun.inject(pkt(me, CDN, i, 1000));
  p.run(20);
  const got = p.server.tun.takeWritten().map(numberOf);
  assertEquals(got.length, 500, "every packet arrived");
  assertEquals(got, Array.from({ length: 500 }, (_, i) => i), "in order");
  assertEquals(p.clientCore.drops.send_failed, 0, "nothing dropped at the socket");
  assert(p.client.loop.stats.backpressure > 10, "the loop waited for POLLOUT");
});

Deno.test("loop: a rebind while datagrams wait for POLLOUT sends them on the new socket", () => {
  const p = connected(new LoopPair());
  const me = p.clientCore.config!.address.addr;
  // A link that takes nothing now: everything sealed waits in the send slots.
  p.client.udp.sendLimit = 0;
  for (let i = 0; i < 40; i++) p.client.tun.inject(pkt(me, CDN, i, 1000));
  for (let i = 0; i < 5; i++) p.client.loop.step(0);
  assert(p.client.loop.blocked, "sealed datagrams wait for the socket");
  // The network changed: a fresh socket on a new port, over the same slots.
  const fresh = p.channel.open(
    "192.0.2.10",
    40001,
    p.client.slots.rx.map((b) => b.buf),
    p.client.slots.tx.map((b) => b.buf),
  );
  p.client.udp.close();
  p.client.loop.setUdp(fresh);
  p.run(50);
  const got = p.server.tun.takeWritten().map(numberOf);
  assertEquals(got, Array.from({ length: 40 }, (_, i) => i), "every one arrived, in order");
  assertEquals(p.clientCore.drops.send_failed, 0);
});

Deno.test("loop: behind a 20 Mbit/s uplink the game goes first and loses nothing; CoDel drops bulk", () => {
  const p = connected(new LoopPair({ clientUplinkMbps: 20 }));
  const r = uplinkUnderLoad(p, 5);
  const s = p.client.loop.stats;
  console.log(
    `  game: ${r.game.length}/${r.gameSent}, p99 ${p99(r.game).toFixed(2)} ms, max ${
      Math.max(...r.game).toFixed(2)
    } ms; bulk delivered ${r.bulkDelivered}; codel ${s.codel}, overflow ${s.overflow}, ` +
      `backpressure ${s.backpressure}; send buffer ${s.sendBuffer}`,
  );
  assertEquals(r.game.length, r.gameSent, "every game packet arrived");
  assert(p99(r.game) < 5, `game p99 ${p99(r.game)} ms`);
  assert(s.codel + s.overflow > 0, "the excess bulk was dropped by xvpn's queue management");
  assertEquals(p.clientCore.drops.send_failed, 0, "never by the socket");
  // 20 Mbit/s for 5 s of 1322-byte datagrams: about 9500 packets if the link stays full.
  assert(r.bulkDelivered > 8000, `the link stayed busy (${r.bulkDelivered} bulk packets)`);
});

Deno.test("loop: an ECN-capable bulk flow gets CE marks instead of drops", () => {
  const p = connected(new LoopPair({ clientUplinkMbps: 20 }));
  const r = uplinkUnderLoad(p, 5, Ecn.Ect0);
  const s = p.client.loop.stats;
  const ce = r.written.filter((w) => portOf(w) === 443 && ecnOf(w) === Ecn.Ce).length;
  console.log(`  ce_marked ${s.ce_marked}, CE seen at the server ${ce}, codel drops ${s.codel}`);
  assert(s.ce_marked > 0 && ce === s.ce_marked, "marks reached the other end");
  assertEquals(s.codel, 0, "no CoDel drop of an ECN-capable flow");
  assertEquals(r.game.length, r.gameSent);
});

Deno.test("loop: interactive packets carry the game DSCP and the inner ECN goes outside", () => {
  const p = connected(new LoopPair({ clientSched: { dscp: 34 } }));
  const me = p.clientCore.config!.address.addr;
  p.client.udp.sentTos.length = 0;
  p.client.tun.inject(pkt(me, GAME, 1, 100, 27015, Ecn.Ect1));
  p.run(2);
  // A bulk flow: far over the interactive rate.
  for (let i = 0; i < 200; i++) p.client.tun.inject(pkt(me, CDN, i, 1400, 443, Ecn.Ect0));
  p.run(2);
  const tos = p.client.udp.sentTos;
  assertEquals(tos[0], (34 << 2) | Ecn.Ect1, "the game: AF41, and its ECT(1) copied (RFC 6040)");
  assertEquals(tos.at(-1), Ecn.Ect0, "bulk: no DSCP, its ECT(0) copied");
});

Deno.test("loop: CE on the outer header reaches the inner packet; over Not-ECT it is a drop", () => {
  const p = connected(new LoopPair());
  p.channel.remark = (tos) => tos | Ecn.Ce; // a router on the way marks everything
  const me = p.clientCore.config!.address.addr;
  p.client.tun.inject(pkt(me, GAME, 1, 100, 27015, Ecn.Ect0));
  p.client.tun.inject(pkt(me, GAME, 2, 100, 27015, Ecn.NotEct));
  p.run(5);
  const got = p.server.tun.takeWritten();
  assertEquals(got.map(numberOf), [1], "the Not-ECT packet cannot carry the mark: dropped");
  assertEquals(ecnOf(got[0]!), Ecn.Ce, "the ECT packet arrives marked");
  assertEquals(p.serverCore.drops.ce_not_ect, 1, "and the drop is counted");
});

/** Holds every datagram the server sends to the client (to hand them over later at once). */
function holdToClient(p: LoopPair): Uint8Array[] {
  const held: Uint8Array[] = [];
  p.channel.fault = (d, _from, to) => {
    if (to.startsWith("192.0.2.10:")) held.push(d);
    else return [d];
    return [];
  };
  return held;
}

Deno.test("loop: a receiver serves the interactive datagrams of a batch before its bulk ones", () => {
  const p = connected(new LoopPair());
  const me = p.clientCore.config!.address.addr;
  // Hold what the server sends, then hand it to the client at once, bulk first.
  const held = holdToClient(p);
  for (let i = 0; i < 40; i++) p.server.tun.inject(pkt(CDN, me, i, 1300, 5000));
  p.run(2);
  p.server.tun.inject(pkt(GAME, me, 1000, 100, 27015));
  p.run(2);
  assert(held.length === 41, `the server sent ${held.length}`);
  p.channel.fault = undefined;
  const game = held.pop()!;
  for (const d of [...held, game]) {
    p.channel.route(d, parseIPv4("192.0.2.1")!, 51820, parseIPv4("192.0.2.10")!, 40000);
  }
  p.run(1);
  const order = p.client.tun.takeWritten().map(numberOf);
  assertEquals(order.length, 41);
  const bulkBefore = order.indexOf(1000);
  console.log(`  the game packet, last in the batch, was written ${bulkBefore + 1}.`);
  assert(bulkBefore < 20, "ahead of the bulk datagrams that arrived before it");
});

Deno.test("loop: a receiver that falls behind sheds bulk unread, never an interactive datagram", () => {
  const p = connected(new LoopPair());
  const me = p.clientCore.config!.address.addr;
  const held = holdToClient(p);
  for (let i = 0; i < 400; i++) {
    p.server.tun.inject(pkt(CDN, me, i, 1300, 5000));
    if (i % 20 === 0) p.server.tun.inject(pkt(GAME, me, 10_000 + i, 100, 27015));
    p.run(0.2);
  }
  p.run(2);
  p.channel.fault = undefined;
  // Everything arrives at once, as when the receiver's CPU was busy elsewhere.
  p.client.udp.rxLimitBytes = 1_000_000;
  const from = parseIPv4("192.0.2.1")!, to = parseIPv4("192.0.2.10")!;
  for (const d of held) p.channel.route(d, from, 51820, to, 40000);
  p.run(5);
  const got = p.client.tun.takeWritten().map(numberOf);
  const games = got.filter((n) => n >= 10_000).length;
  console.log(
    `  ${held.length} datagrams at once: ${got.length} written, ${p.clientCore.drops.shed} shed, ` +
      `${games}/20 game packets, ${p.client.udp.rxDrops} dropped by the "kernel"`,
  );
  assertEquals(games, 20, "every game packet was served");
  assert(p.clientCore.drops.shed > 0, "bulk was shed");
  assertEquals(p.client.udp.rxDrops, 0, "the kernel's queue never overflowed");
});

Deno.test("loop: shaping up holds the client to its rate; the server shapes down on request", () => {
  const p = connected(
    new LoopPair({
      clientSched: { shaping: { rateBps: 8_000_000, overheadBytes: 0 } },
      client: { queue: { downBps: 4_000_000, overheadBytes: 0, priority: [] } },
    }),
  );
  p.run(1100); // the config request (with the queue request) went out and was answered
  const me = p.clientCore.config!.address.addr;
  const t0 = p.now;
  for (let ms = 0; ms < 2000; ms++) {
    p.client.tun.inject(pkt(me, CDN, ms, 1000, 443));
    p.client.tun.inject(pkt(me, CDN, ms, 1000, 443));
    p.server.tun.inject(pkt(CDN, me, ms, 1000, 5000));
    p.server.tun.inject(pkt(CDN, me, ms, 1000, 5000));
    p.run(1);
  }
  const secs = (p.now - t0) / 1000;
  const wire = (n: number) => (n * (1028 + 60) * 8) / secs / 1e6;
  const up = wire(p.server.tun.takeWritten().length);
  const down = wire(p.client.tun.takeWritten().length);
  console.log(`  up ${up.toFixed(2)} Mbit/s (shaped to 8), down ${down.toFixed(2)} (asked 4)`);
  assert(up > 7.5 && up < 8.5, `up ${up}`);
  assert(down > 3.7 && down < 4.3, `down ${down}`);
});

Deno.test("loop: the server forgets a session's queue when the session expires", () => {
  const p = connected(new LoopPair());
  const me = p.clientCore.config!.address.addr;
  p.server.tun.inject(pkt(GAME, me, 1, 100, 27015));
  p.run(5);
  assertEquals([...p.server.loop.sched.queues()].length, 1, "made by the first packet down");
  // The client goes silent (everything it sends is lost): the server expires its session.
  p.channel.fault = (d, _from, to) => to.startsWith("192.0.2.10:") ? [d] : [];
  p.run(70_000);
  assertEquals([...p.serverCore.sessions()].length, 0, "expired");
  assertEquals([...p.server.loop.sched.queues()].length, 0, "and its queue is gone");
});
