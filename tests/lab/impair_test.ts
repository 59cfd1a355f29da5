import { assert, assertEquals } from "../support/assert.ts";
import { requireTools } from "./tools.ts";
import { pingSummary, rootTest } from "./testing.ts";
import { Topology } from "../../src/demo/topology.ts";
import { addDuplication, addLoss } from "./impair.ts";

async function pair(): Promise<Topology> {
  await requireTools(["ip", "ping", "nft"]); // a clear "apt-get install" message, not a failed exec
  return await Topology.create({
    hosts: ["a", "b"],
    links: [{ a: "a", b: "b", subnet: "10.201.9.0/24" }],
  });
}

/** 300 pings, 2 ms apart: enough to tell 0% from 40% loss with a wide margin. */
async function ping(
  topo: Topology,
): Promise<{ sent: number; received: number; duplicates: number }> {
  const r = await topo.exec("a", [
    "ping",
    "-q",
    "-c",
    "300",
    "-i",
    "0.002",
    "-W",
    "1",
    "10.201.9.2",
  ], {
    allowFailure: true, // ping exits 1 when replies are missing
  });
  return pingSummary(r.stdout);
}

rootTest("addLoss drops about the asked share of packets, and remove() restores", async () => {
  const topo = await pair();
  try {
    assertEquals((await ping(topo)).received, 300);
    const loss = await addLoss(topo, "a", topo.iface("a"), 40);
    const lossy = await ping(topo);
    // Binomial(300, 0.4) for requests: the band is > 6 standard deviations wide.
    assert(lossy.received > 120 && lossy.received < 240, `received ${lossy.received}/300`);
    // Replacing the rule (same host and interface) changes the rate instead of stacking.
    await addLoss(topo, "a", topo.iface("a"), 0);
    assertEquals((await ping(topo)).received, 300);
    await loss.remove();
    await loss.remove(); // idempotent
    assertEquals((await ping(topo)).received, 300);
  } finally {
    await topo.destroy();
  }
});

rootTest("addDuplication sends extra copies of about the asked share", async () => {
  const topo = await pair();
  try {
    const dup = await addDuplication(topo, "a", topo.iface("a"), 30);
    const r = await ping(topo);
    assertEquals(r.received, 300);
    // 30% of the requests are sent twice; each copy draws a duplicate reply.
    assert(r.duplicates > 45 && r.duplicates < 135, `duplicates ${r.duplicates}/300`);
    await dup.remove();
    assertEquals((await ping(topo)).duplicates, 0);
  } finally {
    await topo.destroy();
  }
});
