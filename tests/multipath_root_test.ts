/**
 * Dual channel in real namespaces: a client with two separate links to the server (see
 * tests/support/multilab.ts), real `xvpn` processes, a 20 ms ping stream to a game host behind
 * the server. Figures are printed so they can be quoted:
 *   (a) random loss on both links: redundant vs a single path over one such link;
 *   (b) one link taken down mid-stream: pings lost (redundant), longest gap (failover).
 */
import { assert } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { MLAB, MultiLab } from "./support/multilab.ts";

const INTERVAL_MS = 20;

/** Starts a 20 ms ping stream from the client to the game host; resolves to the replies'
 * sequence numbers. */
function pingStream(lab: MultiLab, count: number): Promise<number[]> {
  const child = lab.topo.spawn("client", [
    ...["ping", "-n", "-i", String(INTERVAL_MS / 1000), "-c", String(count), "-W", "1"],
    MLAB.game,
  ], { stdout: "piped" });
  return new Response(child.stdout).text().then((
    out,
  ) => [...new Set([...out.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1])))]);
}

/** The longest run of missing replies, in pings. */
function longestGap(seqs: number[], count: number): number {
  const got = new Set(seqs);
  let worst = 0, run = 0;
  for (let i = 1; i <= count; i++) {
    run = got.has(i) ? 0 : run + 1;
    worst = Math.max(worst, run);
  }
  return worst;
}

const pct = (n: number, of: number) => `${(n / of * 100).toFixed(1)}%`;

async function withLab(
  fn: (lab: MultiLab) => Promise<void>,
  dataPath = "auto",
): Promise<void> {
  const lab = await MultiLab.create();
  try {
    await lab.startServer(dataPath);
    await fn(lab);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await lab.logs(40)}`, { cause: err });
  } finally {
    await lab.destroy();
  }
}

/** `paths:` config lines for both links, by interface or by source address. */
function pathsBy(
  lab: MultiLab,
  mode: "redundant" | "failover",
  by: "interface" | "source" = "interface",
): string[] {
  const path = (l: 1 | 2) =>
    by === "interface"
      ? `{ interface: ${lab.clientIface(l)} }`
      : `{ source: ${lab.clientAddr(l)} }`;
  return [`paths: [${path(1)}, ${path(2)}]`, `multipath: ${mode}`];
}

/** Loss per direction (percent) that makes `roundTrip` percent loss on one link:
 * 1 - (1 - p)^2 = roundTrip. */
function perDirection(roundTrip: number): number {
  return Math.round((1 - Math.sqrt(1 - roundTrip / 100)) * 10000) / 100;
}

rootTest("multipath: redundant over two lossy links vs one path over one", async () => {
  await withLab(async (lab) => {
    const count = 1000;
    const figures: string[] = [];
    let redundant20 = 0;
    // 20% loss per link, counted per round trip (10.56% each way), and 20% each way.
    for (
      const [label, each] of [["20% per link", perDirection(20)], ["20% each way", 20]] as const
    ) {
      await lab.addLoss([1, 2], each);
      await lab.startClient([]); // no paths: one socket, the kernel's route (link 1)
      const single = (await pingStream(lab, count)).length;
      await lab.stopClient();
      const log = await lab.startClient(pathsBy(lab, "redundant"));
      const both = (await pingStream(lab, count)).length;
      await lab.stopClient();
      await lab.clearLoss();
      figures.push(
        `  ${label} (${each}% loss each way on both links): single path ${pct(single, count)}, ` +
          `redundant ${pct(both, count)} of ${count} pings answered`,
      );
      const text = await Deno.readTextFile(log);
      assert(/Path 1 \(to-server\): rtt [\d.]+ ms, loss [\d.]+%/.test(text), "per-path figures");
      if (label === "20% per link") {
        assert(both >= 0.95 * count, `redundant delivered ${both}/${count}, want >= 95%`);
      } else {
        redundant20 = both;
      }
      assert(both > single, "redundant beats a single path");
    }
    console.log(figures.join("\n"));
    // 20% each way: each direction arrives with 1 - 0.2^2 = 96%, so 92.2% round trip at best.
    assert(redundant20 >= 0.88 * count, `redundant at 20% each way: ${redundant20}/${count}`);
  });
});

const variants = [
  { mode: "redundant", dataPath: "auto", by: "interface" },
  { mode: "failover", dataPath: "auto", by: "interface" },
  // The portable data path binds source addresses (Deno cannot set SO_BINDTODEVICE).
  { mode: "redundant", dataPath: "portable", by: "source" },
  { mode: "failover", dataPath: "portable", by: "source" },
] as const;

for (const { mode, dataPath, by } of variants) {
  const name = dataPath === "auto" ? mode : `${mode}, ${dataPath}, by ${by}`;
  rootTest(`multipath (${name}): link 1 goes down mid-stream`, async () => {
    await withLab(async (lab) => {
      if (by === "source") await lab.routeBySource();
      const log = await lab.startClient([...pathsBy(lab, mode, by), `data_path: ${dataPath}`]);
      await new Promise((r) => setTimeout(r, 1000)); // probes on both paths
      const count = 400; // 8 s
      const pings = pingStream(lab, count);
      await new Promise((r) => setTimeout(r, 3000));
      await lab.topo.exec("server", ["ip", "link", "set", lab.serverIface(1), "down"]);
      const seqs = await pings;
      const lost = count - seqs.length;
      const gap = longestGap(seqs, count);
      console.log(
        `  ${name}, link 1 down at 3 s: ${seqs.length}/${count} answered, ${lost} lost, ` +
          `longest gap ${gap * INTERVAL_MS} ms`,
      );
      if (mode === "redundant") assert(lost <= 2, `${lost} pings lost, want <= 2`);
      else assert(gap * INTERVAL_MS < 1000, `gap ${gap * INTERVAL_MS} ms, want < 1 s`);
      const text = await Deno.readTextFile(log);
      const path1 = by === "interface" ? lab.clientIface(1) : lab.clientAddr(1);
      assert(text.includes(`Path 1 (${path1}) is down`), "the client logged the path down");
      assert(!text.includes("No reply from the server"), "the tunnel itself never died");
    }, dataPath);
  });
}
