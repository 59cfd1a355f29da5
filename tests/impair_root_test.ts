/**
 * The tunnel over an impaired underlay: loss and duplication from nftables on the veth link,
 * reordering from the seeded UDP relay of the test harness (src/netns/relay.ts) standing in
 * front of the server. Bytes must arrive intact, and the client must not mistake loss for a
 * dead path. Figures are printed so they can be quoted.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import type { LabOptions } from "../src/demo/lab.ts";
import { spawnRelay } from "./lab/relay.ts";
import { addDuplication, addLoss } from "./lab/impair.ts";
import { LAB, Lab, ping, tcpTransfer } from "./support/net.ts";

const RELAY_PORT = 7000;

/** A lab whose client talks to the server through a reordering relay, with nftables loss
 * (and optional duplication) on the client-server link in both directions. */
async function impairedLab(
  opts: LabOptions & { lossPercent: number; reorderPercent: number; dupPercent?: number },
  fn: (lab: Lab) => Promise<void>,
) {
  const lab = await Lab.create({ ...opts, clientServer: `${LAB.serverUnderlay}:${RELAY_PORT}` });
  try {
    lab.startServer();
    await lab.waitAddress("server", LAB.serverTunnel);
    const relay = await spawnRelay(lab.topo, "server", {
      listen: { hostname: LAB.serverUnderlay, port: RELAY_PORT },
      target: { hostname: LAB.serverUnderlay, port: LAB.port },
      seed: 42,
      upstream: { reorderPercent: opts.reorderPercent, holdPackets: 3, holdMs: 30 },
      downstream: { reorderPercent: opts.reorderPercent, holdPackets: 3, holdMs: 30 },
    });
    const ci = lab.topo.iface("client", "server");
    const si = lab.topo.iface("server", "client");
    await addLoss(lab.topo, "client", ci, opts.lossPercent);
    await addLoss(lab.topo, "server", si, opts.lossPercent);
    if (opts.dupPercent) {
      await addDuplication(lab.topo, "client", ci, opts.dupPercent);
      await addDuplication(lab.topo, "server", si, opts.dupPercent);
    }
    lab.startClient();
    await lab.waitAddress("client", LAB.clientTunnel, 30_000);
    await lab.waitRoute("client", LAB.game, 30_000);
    await fn(lab);
    const stats = await relay.stop();
    console.log(
      `  relay: ${stats.upstream.held + stats.downstream.held} datagrams reordered of ` +
        `${stats.upstream.received + stats.downstream.received}`,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await lab.logs(40)}`, { cause: err });
  } finally {
    await lab.destroy();
  }
}

for (const dataPath of ["fast", "portable"] as const) {
  rootTest(
    `impaired (${dataPath}): 10% loss and 5% reordering, TCP bytes arrive intact`,
    async () => {
      await impairedLab({ dataPath, lossPercent: 10, reorderPercent: 5 }, async (lab) => {
        const p = await ping(lab, "client", LAB.game, { count: 50, interval: 0.02 });
        const bytes = 8 * 1024 * 1024;
        const t = await tcpTransfer(lab, "client", "game", LAB.game, bytes);
        assertEquals(t.got.bytes, bytes);
        assertEquals(t.got.sha256, t.sent.sha256, "no corruption under loss and reordering");
        const back = await tcpTransfer(lab, "game", "client", LAB.clientTunnel, bytes, 5202);
        assertEquals(back.got.sha256, back.sent.sha256, "no corruption the other way");
        console.log(
          `  ${dataPath}: ping ${p.received}/${p.transmitted} through 10% loss each way; ` +
            `8 MiB up at ${(bytes * 8 / t.sent.seconds / 1e6).toFixed(1)} Mbit/s, down at ` +
            `${(bytes * 8 / back.sent.seconds / 1e6).toFixed(1)} Mbit/s, bytes intact`,
        );
      });
    },
  );
}

rootTest(
  "impaired: 60 s of 10% loss, 5% reordering, 1% duplication without a false disconnect",
  async () => {
    const seconds = Number(Deno.env.get("XVPN_IMPAIR_SECONDS") ?? 60);
    await impairedLab({ lossPercent: 10, reorderPercent: 5, dupPercent: 1 }, async (lab) => {
      const count = Math.round(seconds * 1000 / 20);
      const p = await ping(lab, "client", LAB.game, { count, interval: 0.02 });
      const st = await lab.stopAll();
      assertEquals(st.client?.code, 0);
      const clientLog = await Deno.readTextFile(lab.path("client.log"));
      const serverLog = await Deno.readTextFile(lab.path("server.log"));
      const dead = clientLog.split("\n").filter((l) => l.includes("No reply from the server"));
      const drops = /Dropped datagrams by reason: (.*)/.exec(serverLog)?.[1] ?? "";
      const replays = Number(/replay=(\d+)/.exec(drops)?.[1] ?? 0);
      console.log(
        `  ${seconds} s: ${p.received}/${p.transmitted} pings answered ` +
          `(${(100 * p.received / p.transmitted).toFixed(1)}%; 10% loss each way loses ~19% ` +
          `of round trips), dead-path events ${dead.length}, server drops: ${drops || "none"}`,
      );
      assertEquals(dead.length, 0, `no false dead path: ${dead.join("\n")}`);
      assert(p.received > 0.7 * p.transmitted, "most pings answered");
      assert(replays > 0, "duplicated datagrams were dropped by the replay window");
    });
  },
);
