/**
 * Soak: traffic through a real tunnel for a bounded time (XVPN_SOAK_SECONDS, default 60), with
 * the resident memory of both xvpn processes sampled every few seconds. After warm-up it must
 * not grow: a per-packet leak of even a few bytes shows up as megabytes at these rates.
 */
import { assert } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { LAB, Lab } from "./support/net.ts";

async function rssKiB(pid: number): Promise<number> {
  const s = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(s)![1]);
}

rootTest("soak: memory of both xvpn processes does not grow under sustained traffic", async () => {
  const seconds = Number(Deno.env.get("XVPN_SOAK_SECONDS") ?? 60);
  const warmup = Math.min(15, Math.floor(seconds / 4));
  const lab = await Lab.create({ dataPath: "fast" });
  try {
    await lab.up();
    const pids = { server: lab.server!.pid, client: lab.client!.pid };
    const iperf = lab.topo.spawn("game", ["iperf3", "-s", "-1"]);
    await new Promise((r) => setTimeout(r, 300));
    // Bidirectional UDP at a fixed rate: many packets, and a steady load for comparison.
    const load = lab.topo.exec("client", [
      "iperf3",
      "-c",
      LAB.game,
      "-u",
      "-b",
      "150M",
      "--bidir",
      "-t",
      String(seconds),
      "-l",
      "1200",
    ], { allowFailure: true });
    const samples: { t: number; server: number; client: number }[] = [];
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000) {
      await new Promise((r) => setTimeout(r, 5000));
      samples.push({
        t: Math.round((performance.now() - t0) / 1000),
        server: await rssKiB(pids.server),
        client: await rssKiB(pids.client),
      });
    }
    await load;
    await iperf.status;
    const after = samples.filter((s) => s.t >= warmup);
    console.log(
      "  RSS MiB (t: server/client): " +
        samples.map((s) =>
          `${s.t}s ${(s.server / 1024).toFixed(1)}/${(s.client / 1024).toFixed(1)}`
        )
          .join(", "),
    );
    for (const who of ["server", "client"] as const) {
      const first = after[0]![who];
      const peak = Math.max(...after.map((s) => s[who]));
      const growth = (peak - first) / 1024;
      console.log(`  ${who}: growth after warm-up ${growth.toFixed(1)} MiB`);
      assert(growth < 8, `${who} RSS grew ${growth.toFixed(1)} MiB after warm-up`);
    }
  } finally {
    await lab.destroy();
  }
});
