import { assert, assertEquals, assertNotEquals } from "../support/assert.ts";
import { parseRelayArgs, type RelayOptions, spawnRelay, UdpRelay } from "./relay.ts";
import { rootTest } from "./testing.ts";
import { Topology } from "../../src/demo/topology.ts";

const COUNT = 300;

/** Sends COUNT numbered datagrams through a relay; returns the order in which they arrive. */
async function runThrough(opts: Omit<RelayOptions, "listen" | "target">): Promise<number[]> {
  const sink = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const sinkPort = (sink.addr as Deno.NetAddr).port;
  const relay = await UdpRelay.start({
    ...opts,
    listen: { hostname: "127.0.0.1", port: 0 },
    target: { hostname: "127.0.0.1", port: sinkPort },
  });
  const src = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const got: number[] = [];
  const done = (async () => {
    for (;;) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<null>((r) => (timer = setTimeout(() => r(null), 400)));
      const next = await Promise.race([sink.receive(), idle]);
      clearTimeout(timer);
      if (!next) return;
      got.push(new DataView(next[0].buffer).getUint32(0));
    }
  })();
  const buf = new Uint8Array(32);
  for (let i = 0; i < COUNT; i++) {
    new DataView(buf.buffer).setUint32(0, i);
    await src.send(buf, relay.addr);
    // Pace a little: a burst would overflow the sink's socket buffer (~256 datagrams) before this
    // single event loop gets round to reading it. Holds are counted in datagrams, not time, so
    // the pacing does not change the outcome.
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 1));
  }
  await done;
  await relay.close();
  src.close();
  sink.close();
  return got;
}

const impaired = {
  seed: 7,
  upstream: {
    lossPercent: 10,
    reorderPercent: 10,
    holdPackets: 3,
    holdMs: 200,
    duplicatePercent: 5,
  },
};

Deno.test("relay: same seed, same fate for every datagram; another seed differs", async () => {
  const a = await runThrough(impaired);
  const b = await runThrough(impaired);
  assertEquals(a, b);
  const inOrder = a.every((v, i) => i === 0 || v >= a[i - 1]!);
  assert(!inOrder, "nothing was reordered");
  const distinct = new Set(a).size;
  assert(distinct < COUNT && distinct > COUNT * 0.8, `${distinct} distinct delivered`);
  assert(a.length > distinct, "nothing was duplicated");
  const c = await runThrough({ ...impaired, seed: 8 });
  assertNotEquals(a, c);
});

Deno.test("relay: unimpaired relay delivers everything in order", async () => {
  const got = await runThrough({});
  assertEquals(got, [...Array(COUNT).keys()]);
});

Deno.test("relay: delay applies and replies come back to the sender", async () => {
  const echo = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const echoLoop = (async () => {
    try {
      for (;;) {
        const [d, from] = await echo.receive();
        await echo.send(d, from);
      }
    } catch {
      // closed
    }
  })();
  const relay = await UdpRelay.start({
    listen: { hostname: "127.0.0.1", port: 0 },
    target: { hostname: "127.0.0.1", port: (echo.addr as Deno.NetAddr).port },
    upstream: { delayMs: 30 },
    downstream: { delayMs: 20 },
  });
  const c = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const t0 = performance.now();
    await c.send(new TextEncoder().encode("hi"), relay.addr);
    const [d] = await c.receive();
    const rtt = performance.now() - t0;
    assertEquals(new TextDecoder().decode(d), "hi");
    assert(rtt >= 49, `rtt ${rtt} ms is below the 50 ms of configured delay`);
    const s = relay.stats();
    assertEquals([s.upstream.sent, s.downstream.sent, s.sessions], [1, 1, 1]);
  } finally {
    c.close();
    await relay.close();
    echo.close();
    await echoLoop;
  }
});

Deno.test("relay: flags parse into symmetric options", () => {
  const o = parseRelayArgs([
    "--listen",
    ":7000",
    "--target=10.0.0.2:9",
    "--seed",
    "5",
    "--loss",
    "2",
  ]);
  assertEquals(o.listen, { hostname: "0.0.0.0", port: 7000 });
  assertEquals(o.target, { hostname: "10.0.0.2", port: 9 });
  assertEquals(o.seed, 5);
  assertEquals(o.upstream?.lossPercent, 2);
  assertEquals(o.downstream?.lossPercent, 2);
});

rootTest("relay: runs in a namespace between two hosts and reports statistics", async () => {
  const topo = await Topology.create({
    hosts: ["client", "relay", "game"],
    links: [
      { a: "client", b: "relay", subnet: "10.201.1.0/24" },
      { a: "relay", b: "game", subnet: "10.201.2.0/24" },
    ],
  });
  try {
    // The game host echoes UDP (a tiny Deno echo server in its namespace).
    const echo = topo.spawn("game", [
      Deno.execPath(),
      "eval",
      "--unstable-net",
      `const s = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 9000 });
       console.log("up");
       for (;;) { const [d, a] = await s.receive(); await s.send(d, a); }`,
    ], { stdout: "piped" });
    const reader = echo.stdout.getReader();
    await reader.read(); // "up"
    reader.releaseLock();
    const relay = await spawnRelay(topo, "relay", {
      listen: { port: 7000 },
      target: { hostname: topo.addr("game"), port: 9000 },
      seed: 3,
      upstream: { lossPercent: 20 },
    });
    assertEquals(relay.listen, "0.0.0.0:7000");
    // Client: 50 datagrams through the relay, counting echoes.
    const r = await topo.exec("client", [
      Deno.execPath(),
      "eval",
      "--unstable-net",
      `const s = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
       const to = { transport: "udp", hostname: "${topo.addr("relay", "client")}", port: 7000 };
       for (let i = 0; i < 50; i++) await s.send(new Uint8Array([i]), to);
       let n = 0;
       const t = setTimeout(() => { console.log(n); Deno.exit(0); }, 1500);
       for (;;) { await s.receive(); n++; if (n === 50) { clearTimeout(t); console.log(n); Deno.exit(0); } }`,
    ]);
    const echoed = Number(r.stdout.trim());
    const stats = await relay.stop();
    assertEquals(stats.upstream.received, 50);
    assertEquals(stats.upstream.dropped + stats.upstream.sent, 50);
    assertEquals(echoed, stats.upstream.sent);
    assert(stats.upstream.dropped > 0 && stats.upstream.dropped < 25, JSON.stringify(stats));
    await echo.stdout.cancel();
  } finally {
    await topo.destroy();
  }
});
