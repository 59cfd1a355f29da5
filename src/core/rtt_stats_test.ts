import { assert, assertEquals } from "../../tests/support/assert.ts";
import { PROBE_LOST_AFTER_MS, RttStats } from "./rtt_stats.ts";

Deno.test("rtt: percentiles, minimum and smoothed RTT over answered probes", () => {
  const m = new RttStats(10);
  let t = 0;
  const rtts = [10, 12, 11, 30, 10, 10, 11, 12, 10, 10];
  rtts.forEach((rtt, i) => {
    m.probeSent(i + 1, t);
    assertEquals(m.answer(i + 1, t + rtt), rtt);
    t += 1000;
  });
  const r = m.report(t);
  assertEquals(r.minMs, 10);
  assertEquals(r.p50Ms, 11);
  assertEquals(r.p99Ms, 30);
  assertEquals(r.lastMs, 10);
  assertEquals(r.lossPct, 0);
  assertEquals(r.recent, rtts);
  assert(r.rttMs > 10 && r.rttMs < 14, `smoothed ${r.rttMs}`);
  // RFC 3550: |D| = 2, 1, 19, 20, 0, 1, 1, 2, 0 with gain 1/16.
  let j = 0;
  for (let i = 1; i < rtts.length; i++) j += (Math.abs(rtts[i]! - rtts[i - 1]!) - j) / 16;
  assertEquals(r.jitterMs, Math.round(j * 100) / 100);
});

Deno.test("rtt: an unanswered probe is lost after the limit, and a late answer does not count", () => {
  const m = new RttStats(4);
  m.probeSent(1, 0);
  m.answer(1, 5);
  m.probeSent(2, 1000);
  assertEquals(m.report(1000 + PROBE_LOST_AFTER_MS - 1).lossPct, 0, "not yet lost");
  const r = m.report(1000 + PROBE_LOST_AFTER_MS + 1);
  assertEquals(r.lossPct, 50);
  assertEquals(r.recent, [5, -1]);
  assertEquals(m.answer(2, 4000), -1, "too late: already given up on");
  assertEquals(m.answer(99, 4000), -1, "unknown");
  assertEquals(m.answer(1, 4000), -1, "duplicate");
  assertEquals([m.sent, m.answered, m.lost], [2, 1, 1]);
});

Deno.test("rtt: more outstanding probes than slots count the oldest lost; the window rolls", () => {
  const m = new RttStats(4);
  for (let s = 1; s <= 12; s++) m.probeSent(s, s); // none answered, all within the limit
  assertEquals(m.lost, 4, "8 slots: the 4 oldest pushed out");
  assertEquals(m.answer(12, 20), 8);
  const r = m.report(30);
  assertEquals(r.recent.length, 4, "the window holds 4");
  assertEquals(r.recent.at(-1), 8);
  assertEquals(r.lossPct, 75);
});

Deno.test("rtt: nothing measured yet reads as -1, not 0", () => {
  const r = new RttStats().report(0);
  assertEquals([r.rttMs, r.p50Ms, r.p99Ms, r.minMs, r.jitterMs, r.lossPct], [
    -1,
    -1,
    -1,
    -1,
    -1,
    0,
  ]);
});
