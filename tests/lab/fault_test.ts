import { assert, assertEquals } from "../support/assert.ts";
import { FaultInjector } from "./fault.ts";

const bytes = (i: number) => new Uint8Array([i & 255, i >> 8]);
const id = (d: Uint8Array) => d[0]! | (d[1]! << 8);

Deno.test("FaultInjector() passes everything through at once by default", () => {
  const f = new FaultInjector(1);
  for (let i = 0; i < 100; i++) {
    const out = f.push(bytes(i), 5);
    assertEquals(out.map((d) => [d.at, id(d.data)]), [[5, i]]);
  }
  assertEquals(f.stats.sent, 100);
});

Deno.test("FaultInjector() drops, duplicates and delays about the asked shares, replayably", () => {
  const run = () => {
    const f = new FaultInjector(42, { lossPercent: 10, duplicatePercent: 5, delayMs: 20 });
    const out = [];
    for (let i = 0; i < 10_000; i++) out.push(...f.push(bytes(i), i));
    return { f, out };
  };
  const a = run(), b = run();
  assertEquals(a.out.map((d) => id(d.data)), b.out.map((d) => id(d.data)), "same seed, same fates");
  assert(a.f.stats.dropped > 850 && a.f.stats.dropped < 1150, `dropped ${a.f.stats.dropped}`);
  assert(a.f.stats.duplicated > 350 && a.f.stats.duplicated < 600);
  assert(a.out.every((d) => d.at >= 20), "every delivery is delayed");
});

Deno.test("FaultInjector() reorders: a held datagram leaves after the next ones, or on expiry", () => {
  const f = new FaultInjector(7, { reorderPercent: 100, holdPackets: 2, holdMs: 50 });
  assertEquals(f.push(bytes(1), 0), [], "held");
  assertEquals(f.deadline(), 50);
  assertEquals(f.expire(49), []);
  assertEquals(f.expire(50).map((d) => id(d.data)), [1], "released after holdMs");
  const g = new FaultInjector(7, { reorderPercent: 30, holdPackets: 1 });
  const order: number[] = [];
  for (let i = 0; i < 1000; i++) order.push(...g.push(bytes(i), i).map((d) => id(d.data)));
  order.push(...g.expire(Infinity).map((d) => id(d.data)));
  assertEquals(order.length, 1000, "nothing lost");
  assert(order.some((v, i) => i > 0 && v < order[i - 1]!), "some datagrams overtaken");
  assertEquals([...order].sort((x, y) => x - y), Array.from({ length: 1000 }, (_, i) => i));
});
