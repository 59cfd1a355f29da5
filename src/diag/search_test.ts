import { assert, assertEquals } from "../../tests/support/assert.ts";
import { seededRandom } from "../../tests/lab/prng.ts";
import { type ProbeOutcome, type Prober, searchPathMtu } from "./search.ts";

/** A path as the kernel sees it: a local device, a bottleneck, maybe ICMP, maybe loss. */
interface FakePath {
  localMtu: number;
  pathMtu: number;
  /** The bottleneck router answers ICMP "fragmentation needed". */
  icmp: boolean;
  /** Loss per probe (either way), 0..1. */
  loss?: number;
  seed?: number;
  /** A PMTU the kernel cached before the run (e.g. from an earlier ICMP). */
  cached?: number;
}

/** Emulates the kernel and the network for the search: EMSGSIZE, ICMP, loss, acks. */
class FakeProber implements Prober {
  pmtu: number;
  sent: number[] = [];
  readonly #rand: () => number;
  constructor(readonly p: FakePath) {
    this.pmtu = p.cached ?? p.localMtu;
    this.#rand = seededRandom(p.seed ?? 1);
  }
  probe(size: number): Promise<ProbeOutcome> {
    this.sent.push(size);
    const packet = size + 28;
    if (packet > this.pmtu) {
      return Promise.resolve({ kind: "too_big", pmtu: this.pmtu, via: "emsgsize" });
    }
    if (packet > this.p.pathMtu) {
      if (!this.p.icmp) return Promise.resolve({ kind: "timeout" });
      this.pmtu = this.p.pathMtu; // the kernel caches what the ICMP said
      return Promise.resolve({ kind: "too_big", pmtu: this.pmtu, via: "icmp" });
    }
    if (this.#rand() < (this.p.loss ?? 0)) return Promise.resolve({ kind: "timeout" });
    return Promise.resolve({ kind: "ack", received: size, serverMtu: 1420, rttMs: 1 });
  }
}

function search(p: FakePath, tries?: number) {
  const prober = new FakeProber(p);
  const start = p.cached ?? p.localMtu;
  return searchPathMtu(prober, { maxPayload: start - 28, localMtu: p.localMtu, tries })
    .then((r) => ({ r, prober }));
}

Deno.test("search: a clean 1500-byte path takes two probes", async () => {
  const { r, prober } = await search({ localMtu: 1500, pathMtu: 1500, icmp: true });
  assertEquals(r.pathMtu, 1500);
  assertEquals(prober.sent, [548, 1472]);
  assertEquals(r.blackHole, false);
  assertEquals(r.reportedMtu, undefined);
  assertEquals(r.serverMtu, 1420);
});

Deno.test("search: ICMP fragmentation needed leads straight to the exact boundary", async () => {
  const { r, prober } = await search({ localMtu: 1500, pathMtu: 1400, icmp: true });
  assertEquals(r.pathMtu, 1400);
  assertEquals(r.largestPayload, 1372);
  assertEquals(r.reportedMtu, 1400);
  assertEquals(r.icmpSeen, true);
  assertEquals(r.blackHole, false);
  assertEquals(prober.sent, [548, 1472, 1372], "the reported MTU is tried next and passes");
});

Deno.test("search: exact boundary at every size of a range, with and without ICMP", async () => {
  for (let mtu = 1380; mtu <= 1500; mtu += 7) {
    for (const icmp of [true, false]) {
      const { r } = await search({ localMtu: 1500, pathMtu: mtu, icmp });
      assertEquals(r.pathMtu, mtu, `path MTU ${mtu}, icmp ${icmp}`);
      assertEquals(r.blackHole, !icmp && mtu < 1500, `black hole at ${mtu}, icmp ${icmp}`);
    }
  }
});

Deno.test("search: a black hole is found by size and named", async () => {
  const { r, prober } = await search({ localMtu: 1500, pathMtu: 1400, icmp: false });
  assertEquals(r.pathMtu, 1400);
  assertEquals(r.blackHole, true);
  assertEquals(r.reportedMtu, undefined);
  assertEquals(r.icmpSeen, false);
  assertEquals(r.silentPayload, 1373, "the smallest vanished size is just above the limit");
  // Every failing size was tried three times before it counted.
  for (const s of r.steps.filter((s) => s.result === "lost")) assertEquals(s.tries, 3);
  assert(prober.sent.length < 45, `${prober.sent.length} probes`);
});

Deno.test("search: 5% loss does not talk the result down", async () => {
  for (let seed = 1; seed <= 40; seed++) {
    for (const icmp of [true, false]) {
      const { r } = await search({ localMtu: 1500, pathMtu: 1400, icmp, loss: 0.05, seed });
      assertEquals(r.pathMtu, 1400, `seed ${seed}, icmp ${icmp}`);
    }
  }
});

Deno.test("search: a size passes on its last try; losses before it are counted", async () => {
  // Every size loses its first two probes, as on a very bad path: three tries still suffice.
  const inner = new FakeProber({ localMtu: 1500, pathMtu: 1400, icmp: false });
  const seen = new Map<number, number>();
  const prober: Prober = {
    probe(size) {
      const n = (seen.get(size) ?? 0) + 1;
      seen.set(size, n);
      return n <= 2 ? Promise.resolve({ kind: "timeout" }) : inner.probe(size);
    },
  };
  const r = await searchPathMtu(prober, { maxPayload: 1472, localMtu: 1500 });
  assertEquals(r.pathMtu, 1400);
  assertEquals(r.blackHole, true);
  const passed = r.steps.filter((s) => s.result === "pass").length;
  assertEquals(r.lostRetried, 2 * passed);
  const short = await searchPathMtu(prober, { maxPayload: 1472, localMtu: 1500, tries: 2 });
  assertEquals(short.pathMtu, 1400, "sizes seen before now pass at once");
});

Deno.test("search: a second, silent bottleneck below the ICMP one is a black hole", async () => {
  // A router says 1450 by ICMP; a later hop drops everything above 1400 silently.
  class TwoHops extends FakeProber {
    override probe(size: number): Promise<ProbeOutcome> {
      if (size + 28 <= this.pmtu && size + 28 > 1400 && size + 28 <= 1450) {
        this.sent.push(size);
        return Promise.resolve({ kind: "timeout" });
      }
      return super.probe(size);
    }
  }
  const prober = new TwoHops({ localMtu: 1500, pathMtu: 1450, icmp: true });
  const r = await searchPathMtu(prober, { maxPayload: 1472, localMtu: 1500 });
  assertEquals(r.pathMtu, 1400);
  assertEquals(r.reportedMtu, 1450);
  assertEquals(r.blackHole, true);
});

Deno.test("search: a PMTU cached before the run bounds the search and is reported", async () => {
  const { r, prober } = await search({ localMtu: 1500, pathMtu: 1400, icmp: true, cached: 1400 });
  assertEquals(r.pathMtu, 1400);
  assertEquals(prober.sent, [548, 1372]);
  assertEquals(r.icmpSeen, false);
});

Deno.test("search: no answer even to the small probe is no result", async () => {
  const prober: Prober = { probe: () => Promise.resolve({ kind: "timeout" }) };
  const r = await searchPathMtu(prober, { maxPayload: 1472, localMtu: 1500, tries: 2 });
  assertEquals(r.pathMtu, undefined);
  assertEquals(r.probes, 2);
  assertEquals(r.blackHole, false);
});
