import { assertEquals } from "../../tests/support/assert.ts";
import { REPLAY_WINDOW_USABLE, ReplayWindow } from "./replay.ts";

// Table-driven, after RFC 6479's examples: each row is (counter, expected verdict).
const cases: [string, [number, boolean][]][] = [
  ["in-order counters are accepted once", [[0, true], [1, true], [2, true], [1, false], [
    2,
    false,
  ]]],
  ["reordered counters inside the window are accepted once", [
    [5, true],
    [3, true],
    [4, true],
    [3, false],
    [0, true],
    [5, false],
  ]],
  ["a big jump forgets nothing newer and rejects what fell out", [
    [0, true],
    [REPLAY_WINDOW_USABLE + 10, true],
    [0, false],
    [10, false],
    [11, true],
    [REPLAY_WINDOW_USABLE + 9, true],
    [REPLAY_WINDOW_USABLE + 9, false],
  ]],
  ["jumps beyond the whole ring clear old bits", [
    [100, true],
    [100 + 10 * REPLAY_WINDOW_USABLE, true],
    [100 + 10 * REPLAY_WINDOW_USABLE - 32, true],
    [100 + 10 * REPLAY_WINDOW_USABLE - 32, false],
  ]],
  ["negative counters are rejected", [[-1, false], [0, true]]],
];

for (const [name, rows] of cases) {
  Deno.test(`ReplayWindow.accept() ${name}`, () => {
    const w = new ReplayWindow();
    rows.forEach(([counter, want], i) => {
      assertEquals(w.accept(counter), want, `row ${i}: counter ${counter}`);
    });
  });
}

Deno.test("ReplayWindow.check() does not change state", () => {
  const w = new ReplayWindow();
  assertEquals(w.check(7), true);
  assertEquals(w.check(7), true);
  assertEquals(w.top, -1);
  w.accept(7);
  assertEquals(w.check(7), false);
});

Deno.test("ReplayWindow.accept() matches a reference set over a random walk", () => {
  // Reference model: a set of seen counters plus the window rule; seeded LCG so it replays.
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const w = new ReplayWindow();
  const seen = new Set<number>();
  let top = -1;
  let base = 0;
  for (let i = 0; i < 50_000; i++) {
    base += Math.floor(rnd() * 3);
    const c = Math.max(0, base - Math.floor(rnd() * 9000));
    const want = !seen.has(c) && (c > top || top - c < REPLAY_WINDOW_USABLE);
    assertEquals(w.accept(c), want, `step ${i}, counter ${c}, top ${top}`);
    if (want) {
      seen.add(c);
      top = Math.max(top, c);
    }
  }
});
