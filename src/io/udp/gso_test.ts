import { assertEquals } from "../../../tests/support/assert.ts";
import { GSO_MAX_SEGMENTS, planGso } from "./gso.ts";

const A = 0x0a000001, B = 0x0a000002;

/** Runs planGso over `dgrams` ([len, ip, port?, tos?]) and returns the runs as [first, count]. */
function plan(
  dgrams: [number, number, number?, number?][],
  gso = true,
  plainUntil = 0,
): number[][] {
  const batch = {
    len: dgrams.map((d) => d[0]),
    ip: dgrams.map((d) => d[1]),
    port: dgrams.map((d) => d[2] ?? 51820),
    tos: dgrams.map((d) => d[3] ?? 0),
  };
  const first = new Int32Array(dgrams.length), count = new Int32Array(dgrams.length);
  const k = planGso(batch, 0, dgrams.length, gso, plainUntil, first, count);
  return Array.from({ length: k }, (_, i) => [first[i]!, count[i]!]);
}

// Table as wireguard-go's Test_coalesceMessages: each case the batch and the expected runs.
const CASES: {
  name: string;
  dgrams: [number, number, number?, number?][];
  want: number[][];
  gso?: boolean;
  plainUntil?: number;
}[] = [
  { name: "one datagram", dgrams: [[1400, A]], want: [[0, 1]] },
  {
    name: "equal sizes, one destination",
    dgrams: [[1400, A], [1400, A], [1400, A]],
    want: [[0, 3]],
  },
  { name: "a shorter last one joins", dgrams: [[1400, A], [1400, A], [600, A]], want: [[0, 3]] },
  {
    name: "nothing after a shorter one",
    dgrams: [[1400, A], [600, A], [600, A]],
    want: [[0, 2], [2, 1]],
  },
  { name: "a longer one starts a new run", dgrams: [[600, A], [1400, A]], want: [[0, 1], [1, 1]] },
  {
    name: "another destination starts a new run",
    dgrams: [[1400, A], [1400, B], [1400, B]],
    want: [[0, 1], [1, 2]],
  },
  {
    name: "another port starts a new run",
    dgrams: [[1400, A, 1], [1400, A, 2]],
    want: [[0, 1], [1, 1]],
  },
  {
    name: "an empty datagram never joins",
    dgrams: [[1400, A], [0, A], [0, A]],
    want: [[0, 1], [1, 1], [2, 1]],
  },
  {
    name: "the byte limit ends a run (46 x 1400 <= 65507)",
    dgrams: Array.from({ length: 50 }, () => [1400, A] as [number, number]),
    want: [[0, 46], [46, 4]],
  },
  {
    name: "the segment limit ends a run",
    dgrams: Array.from({ length: GSO_MAX_SEGMENTS + 2 }, () => [100, A] as [number, number]),
    want: [[0, GSO_MAX_SEGMENTS], [GSO_MAX_SEGMENTS, 2]],
  },
  {
    name: "another TOS byte (DSCP or ECN) starts a new run",
    dgrams: [[1400, A, 51820, 0x88], [1400, A, 51820, 0x88], [1400, A, 51820, 0x02]],
    want: [[0, 2], [2, 1]],
  },
  {
    name: "gso off: one message each",
    dgrams: [[1400, A], [1400, A]],
    gso: false,
    want: [[0, 1], [1, 1]],
  },
  {
    name: "slots before plainUntil go alone (a refused run resent singly)",
    dgrams: [[1400, A], [1400, A], [1400, A], [1400, A]],
    plainUntil: 2,
    want: [[0, 1], [1, 1], [2, 2]],
  },
];

Deno.test("planGso() keeps runs to maxSegments when asked (a socket behind a slow link)", () => {
  const n = 20;
  const b = { len: new Array(n).fill(1400), ip: new Array(n).fill(A), port: new Array(n).fill(1) };
  const first = new Int32Array(n), count = new Int32Array(n);
  const k = planGso(b, 0, n, true, 0, first, count, 8);
  assertEquals([...count.subarray(0, k)], [8, 8, 4]);
});

for (const c of CASES) {
  Deno.test(`planGso() ${c.name}`, () => {
    assertEquals(plan(c.dgrams, c.gso ?? true, c.plainUntil ?? 0), c.want);
  });
}
