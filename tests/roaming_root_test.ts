/**
 * Smart reconnect in real namespaces: the client's underlay address changes in the middle of a
 * TCP transfer, and the server is killed and restarted under a ping stream. Figures (the gap in
 * a 20 ms ping stream) are printed so they can be quoted.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { LAB, Lab, tcpTransfer, withLab } from "./support/net.ts";

const INTERVAL_MS = 20;

/** Starts a 20 ms ping stream; resolves to the received sequence numbers. */
function pingStream(lab: Lab, count: number): Promise<number[]> {
  const child = lab.topo.spawn("client", [
    "ping",
    "-n",
    "-i",
    String(INTERVAL_MS / 1000),
    "-c",
    String(count),
    "-W",
    "1",
    LAB.game,
  ], { stdout: "piped" });
  return new Response(child.stdout).text().then((out) =>
    [...out.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1]))
  );
}

/** The longest run of missing replies, in ms. */
function longestGapMs(seqs: number[], count: number): number {
  const got = new Set(seqs);
  let worst = 0, run = 0;
  for (let i = 1; i <= count; i++) {
    run = got.has(i) ? 0 : run + 1;
    worst = Math.max(worst, run);
  }
  return worst * INTERVAL_MS;
}

for (const dataPath of ["fast", "portable"] as const) {
  rootTest(`roaming (${dataPath}): the client's address changes mid-transfer`, async () => {
    await withLab({ dataPath }, async (lab) => {
      await lab.up();
      const iface = lab.topo.iface("client", "server");
      await lab.topo.exec("client", [
        "sysctl",
        "-qw",
        `net.ipv4.conf.${iface}.promote_secondaries=1`,
      ]);
      const count = 300; // 6 s
      const pings = pingStream(lab, count);
      const transfer = tcpTransfer(lab, "client", "game", LAB.game, 40 * 1024 * 1024);
      await new Promise((r) => setTimeout(r, 1500));
      // Wi-Fi to mobile, in miniature: a new address, and the old one goes away.
      await lab.topo.exec("client", ["ip", "addr", "add", "10.201.1.3/24", "dev", iface]);
      await lab.topo.exec("client", ["ip", "addr", "del", "10.201.1.1/24", "dev", iface]);
      const t = await transfer;
      assertEquals(t.got.sha256, t.sent.sha256, "the transfer completed with the same bytes");
      const seqs = await pings;
      const gap = longestGapMs(seqs, count);
      console.log(
        `  address change: ${seqs.length}/${count} pings answered, longest gap ${gap} ms, ` +
          `transfer ${(t.sent.bytes * 8 / t.sent.seconds / 1e6).toFixed(0)} Mbit/s`,
      );
      assert(gap < 1000, `gap ${gap} ms must be under 1 s`);
      const log = await Deno.readTextFile(lab.path("server.log"));
      assert(/moved from 10\.201\.1\.1:\d+ to 10\.201\.1\.3:\d+/.test(log), "the server followed");
    });
  });
}

// With the product's defaults (keepalive 10 s): a client that is sending must notice a dead
// server from its liveness probes in about a second, on either data path, not at its next
// keepalive. (The fast path once noticed only after 8.8 s: a send armed a timer the Worker's
// loop never looked at.)
for (const dataPath of ["fast", "portable"] as const) {
  rootTest(
    `roaming (${dataPath}): a killed and restarted server is noticed in about a second, default keepalive`,
    async () => {
      await withLab({ dataPath, keepalive: "product" }, async (lab) => {
        await lab.up();
        const clientPid = lab.client!.pid;
        const count = 400; // 8 s
        const pings = pingStream(lab, count);
        await new Promise((r) => setTimeout(r, 1000));
        lab.server!.kill("SIGKILL");
        await lab.server!.status;
        await new Promise((r) => setTimeout(r, 1000));
        lab.startServer();
        const seqs = await pings;
        const after = seqs.filter((s) => s > 200).length; // the second half of the stream
        const gap = longestGapMs(seqs, count);
        const log = await Deno.readTextFile(lab.path("client.log"));
        const line = log.split("\n").find((l) => l.includes("No reply from the server"));
        const noticed = Number(/for (\d+) ms/.exec(line ?? "")?.[1]);
        console.log(
          `  server restart: dead path noticed after ${noticed} ms; ${seqs.length}/${count} ` +
            `answered, ${after}/200 in the last 4 s, longest gap ${gap} ms (server down 1 s)`,
        );
        assert(line, "the client noticed the dead path");
        assert(line.includes("probes unanswered while sending"), line);
        assert(noticed <= 1500, `noticed after ${noticed} ms, not about a second`);
        assert(after >= 180, "pings flow again after the restart");
        assertEquals(lab.client!.pid, clientPid, "the same client process");
        const addr = await lab.topo.exec("client", ["ip", "-j", "addr", "show", "dev", "xvpn0"]);
        assert(addr.stdout.includes(LAB.clientTunnel), "same tunnel address after the restart");
      });
    },
  );
}
