/**
 * Several nodes (issue 11, part 2): three node namespaces at different delays (the test relay),
 * `xvpn ping` measuring them all at once without disturbing a running tunnel, `connect` starting
 * on the best one, moving off it when it dies, and `xvpn control node` moving on request.
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { NodeLab, nodeTunnel } from "./support/nodelab.ts";
import { selfCommand } from "../src/demo/lab.ts";

type Doc = Record<string, unknown>;

async function status(lab: NodeLab): Promise<Doc> {
  const r = await lab.topo.exec("client", [...selfCommand(), "status", "--json"]);
  return JSON.parse(r.stdout) as Doc;
}

async function waitStatus(lab: NodeLab, ok: (d: Doc) => boolean, timeoutMs: number): Promise<Doc> {
  const deadline = performance.now() + timeoutMs;
  let last: Doc = {};
  while (performance.now() < deadline) {
    last = await status(lab).catch(() => ({}));
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`status never matched: ${JSON.stringify(last)}`);
}

/** True when all `count` pings to node `i`'s tunnel address came back. */
async function pingTunnel(lab: NodeLab, i: number, count = 3): Promise<boolean> {
  const r = await lab.topo.exec("client", [
    ...["ping", "-n", "-c", String(count), "-i", "0.2", "-W", "2", nodeTunnel(i)],
  ], { allowFailure: true });
  return new RegExp(`${count} packets transmitted, ${count} received`).test(r.stdout);
}

async function withNodeLab(delays: number[], fn: (lab: NodeLab) => Promise<void>) {
  const lab = await NodeLab.create(delays);
  try {
    await fn(lab);
  } catch (err) {
    const logs = await Deno.readTextFile(lab.path("client.log")).catch(() => "");
    throw new Error(`${(err as Error).message}\nclient.log:\n${logs.slice(-4000)}`, { cause: err });
  } finally {
    await lab.destroy();
  }
}

rootTest(
  "nodes: ping ranks three nodes, connect takes the best, leaves it when it dies",
  async () => {
    // One-way delays: n1 45 ms, n2 20 ms, n3 3 ms (round trips about twice that). The best is
    // last in the list, and after it dies the best of the others is neither the first in the
    // list nor the one after it.
    await withNodeLab([45, 20, 3], async (lab) => {
      await lab.writeClient();
      const r = await lab.topo.exec("client", [
        ...selfCommand(),
        ...["ping", "--config", lab.path("client.yaml"), "--count", "10", "--interval", "50"],
        "--json",
      ]);
      const p = JSON.parse(r.stdout) as { best: string; nodes: Doc[] };
      assertEquals(p.best, "n3");
      const by = Object.fromEntries(p.nodes.map((n) => [n.name, n]));
      for (const [name, oneWay] of [["n1", 45], ["n2", 20], ["n3", 3]] as const) {
        const n = by[name]!;
        assertEquals([n.reachable, n.answered], [true, 10], `${name}: ${JSON.stringify(n)}`);
        const p50 = Number(n.p50_ms);
        assert(p50 >= 2 * oneWay, `${name} p50 ${p50} for ${oneWay} ms each way`);
      }
      const order = p.nodes.map((n) => [n.name, Number(n.p50_ms)] as const)
        .sort((a, b) => a[1] - b[1]).map((x) => x[0]);
      assertEquals(order, ["n3", "n2", "n1"], "ranked by their delays");
      const text = await lab.topo.exec("client", [
        ...selfCommand(),
        ...["ping", "--config", lab.path("client.yaml"), "--count", "3"],
      ]);
      assertStringIncludes(text.stdout, "best: n3");

      lab.startClient();
      let s = await waitStatus(lab, (d) => d.address !== undefined, 20_000);
      assertEquals((s.node as Doc).name, "n3", "the best node at start");
      assertEquals(s.address, "10.78.3.2/24");
      assert(await pingTunnel(lab, 3), "traffic through n3");
      const log = await lab.waitLog("client.log", "Nodes measured:");
      assertStringIncludes(log, "using n3");

      // xvpn ping beside the running tunnel: the tunnel is not disturbed (given the time a
      // dead-path verdict would take to show).
      const hsBefore = Number(s.handshakes);
      await lab.topo.exec("client", [
        ...selfCommand(),
        ...["ping", "--config", lab.path("client.yaml"), "--count", "5", "--interval", "20"],
      ]);
      assertEquals(await pingTunnel(lab, 3, 20), true, "20 of 20 through n3 meanwhile");
      s = await status(lab);
      assertEquals([s.handshakes, s.dead_paths, s.state], [hsBefore, 0, "connected"]);
      assertEquals(((s.paths as Doc[])[0]!).loss_pct, 0, "no probe of the tunnel lost");

      // n3 dies: after its dead spell, the client moves to the best of the others (n2).
      const t0 = performance.now();
      await lab.killNode(2);
      s = await waitStatus(
        lab,
        (d) => (d.node as Doc)?.name !== "n3" && d.address !== undefined,
        60_000,
      );
      console.log(`  moved off the dead node in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      assertEquals([(s.node as Doc).name, s.moves, s.address], ["n2", 1, "10.78.2.2/24"]);
      assert(await pingTunnel(lab, 2), "traffic through n2");
      const moved = await lab.waitLog("client.log", "Moving from node n3 to n2");
      assertStringIncludes(moved, "n3 silent for");

      // A move on request (xvpn control), logged as such.
      const ctl = await lab.topo.exec("client", [...selfCommand(), "control", "node", "n1"]);
      assertStringIncludes(ctl.stdout, "moving to n1");
      s = await waitStatus(
        lab,
        (d) => (d.node as Doc)?.name === "n1" && d.address !== undefined,
        30_000,
      );
      assertEquals(s.moves, 2);
      assert(await pingTunnel(lab, 1), "traffic through n1");
      await lab.waitLog("client.log", "asked by xvpn control");
    });
  },
);

rootTest(
  "nodes: --node starts on the named (slower) node; a dead node in ping is reported, not fatal",
  async () => {
    await withNodeLab([2, 15, 2], async (lab) => {
      await lab.writeClient();
      await lab.killNode(2);
      const r = await lab.topo.exec("client", [
        ...selfCommand(),
        ...["ping", "--config", lab.path("client.yaml"), "--count", "3", "--json"],
      ]);
      const p = JSON.parse(r.stdout) as { best: string; nodes: Doc[] };
      assertEquals(p.best, "n1");
      const dead = p.nodes.find((n) => n.name === "n3")!;
      assertEquals(dead.reachable, false);
      assertStringIncludes(String(dead.error), "no answer to the handshake");
      lab.startClient(["--node", "n2"]);
      const s = await waitStatus(lab, (d) => d.address !== undefined, 20_000);
      assertEquals((s.node as Doc).name, "n2", "the named node, not the fastest");
      assertStringIncludes(await lab.waitLog("client.log", "chosen with --node"), "n2");
      const bad = await lab.topo.exec("client", [
        ...selfCommand(),
        ...["connect", "--config", lab.path("client.yaml"), "--node", "nope"],
      ], { allowFailure: true });
      assertEquals(bad.code, 2);
      assertStringIncludes(bad.stderr, "--node nope: no such node");
    });
  },
);
