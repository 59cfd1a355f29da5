/**
 * The flow scheduler on a virtual clock: a simulated link dequeues at its rate while a bulk flow
 * overloads it and a game flow sends 64 times a second. The sparse flow goes first, CoDel drops
 * (or marks) from the fat flow, the memory bound holds, sessions share fairly, the shaper keeps
 * its rate, and the priority tin cannot starve the rest.
 */
import { assert, assertEquals } from "../../../tests/support/assert.ts";
import { LinkScheduler, OUTER_OVERHEAD_BYTES, type QueueOptions } from "./link.ts";
import { Meta } from "./pool.ts";
import { FlowMemory } from "./flows.ts";
import { Ecn } from "../../lib/ecn.ts";

const QUEUE: QueueOptions = { flows: 1024, limitPackets: 1024, priorityTin: false };

interface Sent {
  key: number;
  hash: number;
  sojourn: number;
  meta: number;
}

/** A link of `rateMbps` that dequeues one packet whenever the last one has left. */
class Sim {
  now = 1000;
  readonly sent: Sent[] = [];
  readonly s: LinkScheduler;
  #linkFreeAt = 0;
  readonly #ids = new Map<number, number>(); // slot -> flow hash

  constructor(readonly rateMbps: number, queue: Partial<QueueOptions> = {}, poolSize = 4096) {
    this.s = new LinkScheduler({ poolSize, queue: { ...QUEUE, ...queue } });
  }

  /** Offers a packet; false when the pool had no slot (the caller would not read it). */
  offer(key: number, hash: number, len: number, ecn = 0, priority = false): boolean {
    const slot = this.s.pool.alloc();
    if (slot < 0) return false;
    this.s.pool.len[slot] = len;
    this.s.pool.meta[slot] = ecn;
    this.#ids.set(slot, hash);
    this.s.enqueue(key, slot, hash, priority, this.now);
    return true;
  }

  /** Advances to `t`, sending whatever the link (and the shapers) allow. */
  runTo(t: number): void {
    while (this.now < t) {
      if (this.#linkFreeAt <= this.now) {
        const slot = this.s.dequeue(this.now);
        if (slot >= 0) {
          const pool = this.s.pool;
          this.sent.push({
            key: this.s.lastKey,
            hash: this.#ids.get(slot)!,
            sojourn: this.now - pool.at[slot]!,
            meta: pool.meta[slot]!,
          });
          this.#linkFreeAt = this.now + (pool.len[slot]! * 8) / (this.rateMbps * 1000);
          pool.release(slot);
          continue;
        }
      }
      const next = Math.min(t, Math.max(this.#linkFreeAt, this.now + 0.01), this.s.deadline());
      this.now = Math.max(next, this.now + 0.001);
    }
  }
}

const BULK = 0xb0b, GAME = 0x6a3e;

/**
 * 10 s of a 20 Mbit/s link shared by a TCP-like bulk flow (AIMD: one more packet per round trip,
 * half the window on a drop or CE mark, once per round trip; 20 ms base RTT) and a 64 Hz game.
 */
function overload(opts: { ecn?: number } = {}) {
  const sim = new Sim(20);
  const RTT = 20;
  let gameSent = 0;
  let cwnd = 10, inflight = 0, lastCut = -Infinity;
  const acks: { at: number; ce: boolean }[] = [];
  let seen = 0, losses = 0;
  const end = sim.now + 10_000;
  let nextGame = sim.now;
  while (sim.now < end) {
    // Acks of what the link sent a round trip ago.
    for (; seen < sim.sent.length; seen++) {
      const p = sim.sent[seen]!;
      if (p.hash === BULK) acks.push({ at: sim.now + RTT, ce: (p.meta & Meta.MARK_CE) !== 0 });
    }
    const c = sim.s.counters;
    const lost = c.codel + c.overflow - losses;
    losses += lost;
    inflight -= lost;
    let congested = lost > 0;
    while (acks.length && acks[0]!.at <= sim.now) {
      const a = acks.shift()!;
      inflight--;
      if (a.ce) congested = true;
      else cwnd += 1 / cwnd;
    }
    if (congested && sim.now - lastCut > RTT) {
      cwnd = Math.max(2, cwnd / 2);
      lastCut = sim.now;
    }
    while (inflight < cwnd && sim.offer(1, BULK, 1400, opts.ecn ?? 0)) inflight++;
    if (sim.now >= nextGame) {
      assert(sim.offer(1, GAME, 120), "the game always finds a slot");
      gameSent++;
      nextGame += 1000 / 64;
    }
    sim.runTo(sim.now + 0.5);
  }
  return { sim, gameSent };
}

Deno.test("LinkScheduler() serves the sparse game flow ahead of a backlogged download", () => {
  const { sim, gameSent } = overload();
  const game = sim.sent.filter((p) => p.hash === GAME);
  const bulk = sim.sent.filter((p) => p.hash === BULK);
  assertEquals(game.length, gameSent, "every game packet went out");
  const worst = Math.max(...game.map((p) => p.sojourn));
  const bulkMedian = bulk.map((p) => p.sojourn).sort((a, b) => a - b)[bulk.length >> 1]!;
  console.log(
    `  game worst wait ${worst.toFixed(2)} ms; bulk median ${bulkMedian.toFixed(1)} ms; ` +
      `codel drops ${sim.s.counters.codel}`,
  );
  // One 1400-byte packet at 20 Mbit/s is 0.56 ms: the game waits at most about that.
  assert(worst < 1.5, `game waited ${worst} ms`);
  assert(game.every((p) => (p.meta & Meta.INTERACTIVE) !== 0), "game packets are interactive");
  assert(bulk.slice(100).every((p) => (p.meta & Meta.INTERACTIVE) === 0), "bulk is not");
});

Deno.test("LinkScheduler() CoDel drops from the fat flow and holds its delay near target", () => {
  const { sim } = overload();
  const c = sim.s.counters;
  const bulk = sim.sent.filter((p) => p.hash === BULK);
  const late = bulk.slice(-2000).map((p) => p.sojourn).sort((a, b) => a - b);
  const p90 = late[Math.floor(late.length * 0.9)]!;
  console.log(
    `  codel drops ${c.codel}, overflow ${c.overflow}; bulk p90 wait ${p90.toFixed(1)} ms`,
  );
  assert(c.codel >= 5, "CoDel dropped from the bulk flow when its queue stood");
  assertEquals(c.overflow, 0, "CoDel, not the memory bound, did it");
  assert(p90 < 25, `the bulk queue stays short (p90 ${p90} ms; target 5 ms)`);
  const gbit = bulk.length * 1400 * 8 / 10_000 / 1000;
  assert(gbit > 17, `the bulk flow still fills the link (${gbit.toFixed(1)} Mbit/s of 20)`);
});

Deno.test("LinkScheduler() marks ECN-capable packets CE instead of dropping them", () => {
  const { sim } = overload({ ecn: Ecn.Ect0 });
  const c = sim.s.counters;
  const marked = sim.sent.filter((p) => (p.meta & Meta.MARK_CE) !== 0).length;
  console.log(`  ce_marked ${c.ce_marked}, codel drops ${c.codel}, overflow ${c.overflow}`);
  assert(c.ce_marked >= 5, "marks instead of drops");
  assertEquals(c.codel, 0, "no CoDel drop of an ECN-capable flow");
  assertEquals(marked, c.ce_marked, "each mark is on a packet that went out");
});

Deno.test("LinkScheduler() holds its memory bound by dropping from the fattest flow", () => {
  const sim = new Sim(1, { limitPackets: 200 });
  for (let i = 0; i < 1000; i++) sim.offer(1, BULK, 1400);
  sim.offer(1, GAME, 100);
  const q = sim.s.queue(1);
  assert(q.packets <= 200, `queue holds ${q.packets} packets (limit 200)`);
  assert(sim.s.counters.overflow >= 800, "the excess was dropped");
  sim.runTo(sim.now + 5000);
  assertEquals(sim.sent.filter((p) => p.hash === GAME).length, 1, "the game packet survived");
  // The pool itself is a bound too: makeRoom frees slots from the fattest flow.
  const full = new Sim(1, { limitPackets: 10_000 }, 500);
  for (let i = 0; i < 500; i++) full.offer(1, BULK, 1400);
  assertEquals(full.s.pool.available, 0);
  const dropped = full.s.makeRoom(64);
  assert(dropped >= 64 && full.s.pool.available >= 64, `made room (${dropped} dropped)`);
});

Deno.test("LinkScheduler() shares the link equally between sessions, whatever their flows", () => {
  const sim = new Sim(10);
  for (let t = 0; t < 3000; t += 2) {
    for (let f = 0; f < 10; f++) sim.offer(1, 100 + f, 1400); // ten flows, session 1
    sim.offer(2, 200, 1400); // one flow, session 2
    sim.offer(2, 200, 1400);
    sim.runTo(sim.now + 2);
  }
  const bytes = (k: number) => sim.sent.filter((p) => p.key === k).length;
  const a = bytes(1), b = bytes(2);
  console.log(`  session 1 (10 flows) ${a} packets, session 2 (1 flow) ${b} packets`);
  assert(Math.abs(a - b) / (a + b) < 0.05, "within 5% of an equal share");
});

Deno.test("LinkScheduler() shapes a session to its rate, counting outer bytes", () => {
  const sim = new Sim(1000); // a fast link: the shaper is the bottleneck
  sim.s.shape(1, { rateBps: 10_000_000, overheadBytes: 14 });
  const start = sim.now;
  for (let t = 0; t < 2000; t += 1) {
    sim.offer(1, BULK, 1000);
    sim.offer(1, BULK, 1000);
    sim.runTo(sim.now + 1);
  }
  const wire = sim.sent.length * (1000 + OUTER_OVERHEAD_BYTES + 14) * 8;
  const mbps = wire / (sim.now - start) / 1000;
  console.log(`  shaped to 10 Mbit/s: ${mbps.toFixed(2)} Mbit/s on the wire`);
  assert(mbps > 9.5 && mbps < 10.5, `${mbps} Mbit/s`);
  assert(sim.s.deadline() < Infinity, "a backlogged shaped queue has a deadline");
});

Deno.test("LinkScheduler() caps an explicit priority class so the rest still gets a share", () => {
  const sim = new Sim(10, { priorityTin: true });
  for (let t = 0; t < 3000; t += 2) {
    for (let k = 0; k < 4; k++) sim.offer(1, 300, 1400, 0, true); // a "priority" bulk flow
    for (let k = 0; k < 4; k++) sim.offer(1, BULK, 1400);
    sim.runTo(sim.now + 2);
  }
  const prio = sim.sent.filter((p) => p.hash === 300).length;
  const rest = sim.sent.filter((p) => p.hash === BULK).length;
  const share = rest / (prio + rest);
  console.log(
    `  priority ${prio}, best effort ${rest}: best effort got ${(share * 100).toFixed(0)}%`,
  );
  assert(share > 0.2 && share < 0.3, "about a quarter for best effort");
  assert(sim.sent.filter((p) => p.hash === 300).every((p) => (p.meta & Meta.PRIORITY) !== 0));
});

Deno.test("LinkScheduler() remove() releases a session's queued packets", () => {
  const sim = new Sim(1);
  for (let i = 0; i < 50; i++) sim.offer(7, BULK, 500);
  const used = sim.s.pool.used;
  assertEquals(sim.s.remove(7), used);
  assertEquals(sim.s.pool.used, 0);
  assertEquals(sim.s.dequeue(sim.now), -1);
});

Deno.test("session queues share flow memory: regions are reused zeroed, one buffer per 64", () => {
  const mem = new FlowMemory(64);
  const [a, offA] = mem.take();
  new Uint8Array(a, offA, 16).fill(7);
  for (let i = 1; i < 64; i++) mem.take();
  assertEquals(mem.buffers, 1);
  mem.give(a, offA);
  const [b, offB] = mem.take();
  assert(b === a && offB === offA, "the region given back is the next one taken");
  assertEquals([...new Uint8Array(b, offB, 16)], new Array(16).fill(0));
  mem.take();
  assertEquals(mem.buffers, 2);
  // Tiny tables too: every region is 8-byte aligned for its Float64Array views.
  const one = new FlowMemory(1, 4);
  for (let i = 0; i < 4; i++) assertEquals(one.take()[1] % 8, 0);
  // Through the scheduler: a removed session's queue goes back, and a new one starts empty.
  const sim = new Sim(100, { flows: 64 });
  assert(sim.offer(1, 5, 1000));
  assertEquals(sim.s.remove(1), 1);
  assert(sim.offer(2, 5, 1000));
  assertEquals(sim.s.queue(2).packets, 1);
  assert(sim.s.dequeue(sim.now) >= 0);
  assertEquals(sim.s.lastKey, 2);
  assertEquals(sim.s.dequeue(sim.now), -1);
});
