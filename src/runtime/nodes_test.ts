import { assert, assertEquals } from "../../tests/support/assert.ts";
import { getLogger } from "@logtape/logtape";
import type { NodeSpec } from "../config/nodes.ts";
import { nodeResult, rttReport } from "../../tests/support/noderesults.ts";
import { NodeWatch } from "./nodes.ts";

const node = (name: string): NodeSpec => ({
  name,
  server: { host: "192.0.2.1", port: 1 },
  publicKey: new Uint8Array(32),
});
const A = node("a"), B = node("b"), C = node("c");

const rtt = (p50: number) => rttReport(p50, 0, 0, 5);
const res = (name: string, p50: number | undefined) =>
  nodeResult(name, p50 === undefined ? undefined : rtt(p50));

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(ok: () => boolean, ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (!ok()) {
    if (performance.now() > end) throw new Error("timed out");
    await sleep(10);
  }
}

function watch(
  mode: "dead" | "better",
  world: Record<string, number | undefined>,
  own: number,
) {
  const moves: { to: string; why: string }[] = [];
  const measured: string[][] = [];
  let current = A;
  const w = new NodeWatch({
    nodes: [A, B, C],
    privateKey: new Uint8Array(32),
    mode,
    log: getLogger(["xvpn", "test"]),
    current: () => current,
    figures: () => Promise.resolve({ rtt: rtt(own), up: true }),
    move: (to, why) => {
      moves.push({ to: to.name, why });
      current = to;
      w.reset();
    },
    measure: (nodes) => {
      measured.push(nodes.map((n) => n.name));
      return Promise.resolve(nodes.map((n) => res(n.name, world[n.name])));
    },
    // Real timers, with room for a stalled event loop on a busy machine (a check every 20 ms).
    deadMs: 500,
    recheckMs: 150,
    rounds: 3,
    tickMs: 20,
  });
  return { w, moves, measured };
}

Deno.test("node watch: a dead node is left for the best other that answers", async () => {
  const { w, moves } = watch("dead", { b: 40, c: 20 }, 10);
  try {
    w.connected(); // the first handshake completed
    w.pathDead();
    await sleep(200);
    assertEquals(moves.length, 0, "not before the dead spell is over");
    w.connected(); // it came back: the spell is over
    await sleep(800);
    assertEquals(moves.length, 0, "a node that came back is kept");
    w.pathDead();
    await waitFor(() => moves.length > 0, 5000);
    assertEquals(moves.map((m) => m.to), ["c"]);
    assert(moves[0]!.why.includes("a silent for"), moves[0]!.why);
  } finally {
    w.stop();
  }
});

Deno.test("node watch: a node whose first handshake never completes is left too", async () => {
  const { w, moves } = watch("dead", { b: 40, c: 20 }, 10);
  try {
    await waitFor(() => moves.length > 0, 5000);
    assertEquals(moves.map((m) => m.to), ["c"]);
  } finally {
    w.stop();
  }
});

Deno.test("node watch: with every other node down too, it stays, and looks again", async () => {
  const { w, moves, measured } = watch("dead", { b: undefined, c: undefined }, 10);
  try {
    w.connected();
    w.pathDead();
    await waitFor(() => measured.length >= 2, 5000);
    assertEquals(moves.length, 0);
    assertEquals(measured[0], ["b", "c"], "the others were measured");
  } finally {
    w.stop();
  }
});

Deno.test("node watch: dead mode never moves for a better node", async () => {
  const { w, moves, measured } = watch("dead", { b: 5, c: 5 }, 100);
  try {
    w.connected();
    await sleep(1000);
    assertEquals([moves.length, measured.length], [0, 0], "nothing measured, nothing moved");
  } finally {
    w.stop();
  }
});

Deno.test("node watch: better mode moves after three winning rounds in a row, not before", async () => {
  const world: Record<string, number | undefined> = { b: 20, c: 90 };
  const { w, moves, measured } = watch("better", world, 60);
  try {
    w.connected();
    // b wins a round, then falls back (55 against 60: not 10 ms better): the streak restarts.
    await waitFor(() => measured.length >= 1, 5000);
    world.b = 55;
    await waitFor(() => measured.length >= 3, 5000);
    assertEquals(moves.length, 0, "a streak broken by a lost round does not move");
    world.b = 20;
    const at = measured.length;
    await waitFor(() => moves.length > 0, 5000);
    assert(measured.length - at >= 3, `three more rounds first, saw ${measured.length - at}`);
    assertEquals(moves.map((m) => m.to), ["b"]);
    assert(moves[0]!.why.includes("better for 3 rounds"), moves[0]!.why);
  } finally {
    w.stop();
  }
});

Deno.test("node watch: elsewhere() names the best other node at once, or none", async () => {
  const { w, measured } = watch("dead", { b: 40, c: 20 }, 10);
  try {
    w.connected();
    const pick = await w.elsewhere("a refused us: the pool is full");
    assertEquals(pick?.to.name, "c");
    assert(pick!.why.startsWith("a refused us: the pool is full; others measured: "), pick!.why);
    assertEquals(measured.at(-1), ["b", "c"], "the node in use is not measured");
  } finally {
    w.stop();
  }
  const none = watch("dead", { b: undefined, c: undefined }, 10);
  try {
    none.w.connected();
    assertEquals(await none.w.elsewhere("a refused us"), undefined);
  } finally {
    none.w.stop();
  }
});
