/**
 * Two fast-path data-plane loops over in-memory twins (a fake batch TUN each, sockets on one
 * fake channel, fake pollers, one virtual clock): the loop code the Worker runs, without root,
 * a kernel or real time (wireguard-go's `TestTwoDevicePing`). Ping, bulk, rekey and loss.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { LoopPair } from "./support/looppair.ts";
import { udpPacket } from "./support/packets.ts";
import { parseIPv4 } from "../src/lib/ip.ts";
import { REKEY_AFTER_TIME_MS } from "../src/core/timers.ts";

const GAME = parseIPv4("198.51.100.7")!;

function connected(p = new LoopPair()): LoopPair {
  p.start();
  p.run(50);
  assert(p.clientCore.ready, "the client loop completed the handshake and got its config");
  return p;
}

/** A numbered UDP packet of `size` payload bytes (the number in the first 4 bytes). */
function numbered(src: number, dst: number, i: number, size: number): Uint8Array {
  const payload = new Uint8Array(size);
  for (let k = 0; k < size; k++) payload[k] = (i * 31 + k) & 255;
  payload[0] = i >>> 24;
  payload[1] = (i >>> 16) & 255;
  payload[2] = (i >>> 8) & 255;
  payload[3] = i & 255;
  return udpPacket(src, dst, payload);
}

const numberOf = (pkt: Uint8Array) =>
  ((pkt[28]! << 24) | (pkt[29]! << 16) | (pkt[30]! << 8) | pkt[31]!) >>> 0;

Deno.test("loops: a ping goes through both loops and back, bytes intact", () => {
  const p = connected();
  const me = p.clientCore.config!.address.addr;
  const req = numbered(me, GAME, 1, 56);
  p.client.tun.inject(req);
  p.run(5);
  const atServer = p.server.tun.takeWritten();
  assertEquals(atServer, [req], "the server loop wrote exactly the packet the client read");
  const reply = numbered(GAME, me, 2, 56);
  p.server.tun.inject(reply);
  p.run(5);
  assertEquals(p.client.tun.takeWritten(), [reply]);
});

Deno.test("loops: bulk traffic in batches larger than one read arrives complete and in order", () => {
  const p = connected();
  const me = p.clientCore.config!.address.addr;
  const total = 5000;
  let next = 0;
  const sent: Uint8Array[] = [];
  while (next < total) {
    // 150 at a time: more than one TUN batch (64) per step.
    for (let k = 0; k < 150 && next < total; k++, next++) {
      const pkt = numbered(me, GAME, next, 200 + (next * 97) % 1200);
      sent.push(pkt);
      p.client.tun.inject(pkt);
    }
    p.run(1);
  }
  p.run(10);
  const got = p.server.tun.takeWritten();
  assertEquals(got.length, total, "every packet arrived");
  for (let i = 0; i < total; i++) assertEquals(got[i], sent[i], `packet ${i}`);
  assertEquals(p.serverCore.drops.send_failed + p.clientCore.drops.send_failed, 0);
});

Deno.test("loops: traffic flows across a rekey without a lost packet", () => {
  const p = connected();
  const me = p.clientCore.config!.address.addr;
  let i = 0;
  const end = p.now + REKEY_AFTER_TIME_MS + 5000;
  while (p.now < end) {
    p.client.tun.inject(numbered(me, GAME, i++, 100));
    p.server.tun.inject(numbered(GAME, me, i++, 100));
    p.run(100);
  }
  const rekeys = p.client.events.filter((e) => e.type === "connected" && e.rekey).length;
  assertEquals(rekeys, 1, "one rekey in two minutes");
  const up = p.server.tun.takeWritten().length, down = p.client.tun.takeWritten().length;
  assertEquals(up + down, i, `all ${i} packets through (${up} up, ${down} down)`);
});

Deno.test("loops: over a link losing 10% each way, the tunnel holds and data gets through", () => {
  const p = connected(new LoopPair({ impair: { lossPercent: 10 }, seed: 5 }));
  const me = p.clientCore.config!.address.addr;
  const n = 2000;
  for (let i = 0; i < n; i++) {
    p.client.tun.inject(numbered(me, GAME, i, 100));
    p.run(20);
  }
  const got = p.server.tun.takeWritten().map(numberOf);
  const share = got.length / n;
  console.log(`  10% loss: ${got.length}/${n} delivered; channel sent ${p.channel.sent}`);
  assert(share > 0.85 && share < 0.95, `about 90% delivered, got ${(share * 100).toFixed(1)}%`);
  assert(got.every((v, k) => k === 0 || v > got[k - 1]!), "in order, no duplicates");
  assertEquals(
    p.client.events.filter((e) => e.type === "path_dead").length,
    0,
    "10% loss is not a dead path",
  );
});

Deno.test("loops: a dead link is noticed within a second while sending, then only retried", () => {
  const p = connected();
  const me = p.clientCore.config!.address.addr;
  for (let i = 0; i < 40; i++) {
    p.client.tun.inject(numbered(me, GAME, i, 100));
    p.run(50);
  }
  p.channel.fault = () => []; // the server is gone
  const t0 = p.now;
  const steps0 = p.steps;
  for (let i = 0; i < 200; i++) {
    p.client.tun.inject(numbered(me, GAME, i, 100));
    p.run(50);
  }
  const dead = p.client.events.find((e) => e.type === "path_dead");
  assert(dead && dead.type === "path_dead", "the dead path was noticed");
  console.log(
    `  dead link: noticed after ${dead.silentMs.toFixed(0)} ms; ` +
      `${p.steps - steps0} loop steps in ${(p.now - t0) / 1000} s`,
  );
  assert(dead.silentMs < 1000, `noticed after ${dead.silentMs} ms`);
  assertEquals(p.client.events.filter((e) => e.type === "path_dead").length, 1);
});
