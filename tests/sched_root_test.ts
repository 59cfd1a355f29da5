/**
 * Game packets first, in real namespaces with the real CLI: a game-like flow (64 Hz, echoed)
 * and a cubic download share the tunnel behind a tbf bottleneck, and the game loses nothing; a
 * download that asks for ECN gets CE marks from xvpn's queue instead of drops; with `shaping`
 * the queue lives in xvpn and the router's bottleneck queue stays empty. Figures are printed;
 * the benchmark (bench/game.ts) holds the timing targets.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { LAB, withLab } from "./support/net.ts";
import { runGameClient } from "./lab/gameflow.ts";
import { download, SCHED_TBF, schedulerLine, services } from "./support/sched.ts";

rootTest(
  "scheduler: behind a 50 Mbit/s tbf, a game beside a cubic download loses nothing",
  async () => {
    await withLab({ router: {}, keepalive: "product" }, async (lab) => {
      await lab.up();
      const t = lab.topo;
      await t.exec("server", [
        "tc",
        "qdisc",
        "replace",
        "dev",
        t.iface("server", "router"),
        "root",
        ...SCHED_TBF,
      ]);
      await services(lab);
      const dl = download(lab, 24);
      await new Promise((r) => setTimeout(r, 2000));
      const game = await runGameClient(t, "client", `${LAB.game}:7777`, 20);
      const mbps = await dl;
      await lab.stopAll();
      const s = await schedulerLine(lab, "server.log");
      console.log(
        `  game ${game.received}/${game.sent}, RTT p50 ${game.p50} p99 ${game.p99} max ` +
          `${game.max} ms; download ${mbps.toFixed(1)} Mbit/s; server scheduler ${
            JSON.stringify(s)
          }`,
      );
      assertEquals(game.received, game.sent, "no game packet lost");
      assertEquals(game.duplicates, 0);
      assert(mbps > 20, "the download ran");
      assert(s.interactive > 0 && s.bulk > 0, "the server sent both classes");
      assert(s.waited > 0, "the link pushed back, and the scheduler held what did not fit");
    });
  },
);

rootTest(
  "scheduler: a download that asks for ECN gets CE marks from xvpn's queue, not drops",
  async () => {
    await withLab(
      { keepalive: "product", clientExtra: "shaping: { down: 20mbit }" },
      async (lab) => {
        await lab.up();
        const t = lab.topo;
        for (const h of ["client", "game"]) {
          await t.exec(h, ["sysctl", "-qw", "net.ipv4.tcp_ecn=1"]);
        }
        await services(lab);
        // Count CE-marked packets arriving on the client's TUN (the inner header).
        const dump = t.spawn("client", [
          ...["timeout", "14", "tcpdump", "-i", "xvpn0", "-n", "-q", "-l"],
          "ip[1] & 3 == 3",
        ], { stdout: "piped", stderr: "null" });
        const lines = new Response(dump.stdout).text();
        const mbps = await download(lab, 12);
        const ce = (await lines).split("\n").filter((l) => l.includes(" IP ")).length;
        await lab.stopAll();
        const s = await schedulerLine(lab, "server.log");
        console.log(
          `  ECN download ${mbps.toFixed(1)} Mbit/s (shaped to 20); CE packets at the client ` +
            `${ce}; server scheduler ${JSON.stringify(s)}`,
        );
        assert(s.ce > 0, "the server's queue marked CE");
        assertEquals(s.codel, 0, "and dropped none of that ECN flow");
        assert(ce > 0, "the marks reached the receiver's TUN");
        assert(mbps > 14 && mbps < 21, `shaped to 20 Mbit/s, got ${mbps}`);
      },
    );
  },
);

rootTest(
  "scheduler: with shaping under a remote bottleneck, the queue lives in xvpn, not the router",
  async () => {
    for (const shaped of [false, true]) {
      await withLab({
        router: {},
        keepalive: "product",
        clientExtra: shaped ? "shaping: { down: 45mbit, overhead: 14 }" : "",
      }, async (lab) => {
        await lab.up();
        const t = lab.topo;
        const dev = t.iface("router", "client");
        await t.exec("router", ["tc", "qdisc", "replace", "dev", dev, "root", ...SCHED_TBF]);
        await services(lab);
        const dl = download(lab, 10);
        let most = 0;
        await new Promise((r) => setTimeout(r, 2000));
        for (let i = 0; i < 12; i++) {
          const q = await t.exec("router", ["tc", "-s", "qdisc", "show", "dev", dev]);
          most = Math.max(most, Number(/backlog (\d+)b/.exec(q.stdout)?.[1] ?? 0));
          await new Promise((r) => setTimeout(r, 500));
        }
        const mbps = await dl;
        console.log(
          `  ${shaped ? "shaped to 45 Mbit/s" : "not shaped"}: router queue up to ${most} bytes, ` +
            `download ${mbps.toFixed(1)} Mbit/s`,
        );
        assert(mbps > 20, `the download ran (${mbps} Mbit/s)`);
        if (shaped) assert(most < 30_000, `the router's queue stays short (${most} bytes)`);
        else assert(most > 100_000, `without shaping the router queues (${most} bytes)`);
      });
    }
  },
);
