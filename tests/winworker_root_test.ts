/**
 * The Windows data path (`src/runtime/dataplane/win_worker.ts`: Wintun + Winsock by FFI in a
 * Worker blocked in WaitForMultipleObjects) over the fake wintun, whose library also stands in
 * for ws2_32 and kernel32 here: first the Winsock socket and its event in a wait, then the
 * Worker under a real `xvpn connect` carrying ping and checksummed TCP to the lab's game host.
 * Real Windows has run none of it.
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { buildFakeWintun } from "./support/fakewintun/build.ts";
import { checkTunnelTraffic, LAB, ping, withLab } from "./support/net.ts";
import { selfCommand } from "../src/demo/lab.ts";
import { RECV_EMPTY, WinsockUdp } from "../src/io/udp/winsock.ts";
import { KERNEL32_SYMBOLS, WAIT_OBJECT_0, WAIT_TIMEOUT } from "../src/io/tun/wintun_abi.ts";
import { parseIPv4 } from "../src/lib/ip.ts";
import { runGameClient } from "./lab/gameflow.ts";
import { download, SCHED_TBF, schedulerLine, services } from "./support/sched.ts";

rootTest(
  "winsock (fake): bind, FIONBIO, would-block, sendto/recvfrom, the FD_READ event wakes a wait",
  async () => {
    const dll = await buildFakeWintun();
    {
      const k = Deno.dlopen(
        dll,
        {
          WaitForMultipleObjects: {
            ...KERNEL32_SYMBOLS.WaitForMultipleObjects,
            nonblocking: false,
          },
          CreateEventW: KERNEL32_SYMBOLS.CreateEventW,
          SetEvent: KERNEL32_SYMBOLS.SetEvent,
          CloseHandle: KERNEL32_SYMBOLS.CloseHandle,
        } as const,
      );
      const a = WinsockUdp.open({ dll, host: "127.0.0.1", port: 0 });
      const b = WinsockUdp.open({ dll, host: "127.0.0.1", port: 0 });
      const wake = k.symbols.CreateEventW(null, 0, 0, null)!;
      try {
        assertEquals(a.localHost, "127.0.0.1");
        assert(a.localPort > 0 && b.localPort > 0 && a.localPort !== b.localPort);
        const buf = new Uint8Array(2048);
        assertEquals(a.recv(buf), RECV_EMPTY, "nothing yet: WSAEWOULDBLOCK");
        const handles = new BigUint64Array([
          a.eventHandle,
          BigInt(Deno.UnsafePointer.value(wake)),
        ]);
        const hp = Deno.UnsafePointer.of(handles);
        let t0 = performance.now();
        assertEquals(k.symbols.WaitForMultipleObjects(2, hp, 0, 60), WAIT_TIMEOUT);
        assert(performance.now() - t0 >= 50, "an idle socket's event waits out the timeout");
        // A datagram signals the socket's event.
        const msg = new TextEncoder().encode("hello from b");
        assertEquals(b.send(msg, msg.length, parseIPv4("127.0.0.1")!, a.localPort), msg.length);
        t0 = performance.now();
        assertEquals(k.symbols.WaitForMultipleObjects(2, hp, 0, 5_000), WAIT_OBJECT_0);
        assert(performance.now() - t0 < 1_000);
        a.resetEvent();
        const n = a.recv(buf);
        assertEquals(new TextDecoder().decode(buf.subarray(0, n)), "hello from b");
        assertEquals([a.fromIp, a.fromPort], [parseIPv4("127.0.0.1"), b.localPort]);
        assertEquals(a.recv(buf), RECV_EMPTY, "drained");
        // Drained: the wait goes on to the wake event (index 1).
        k.symbols.SetEvent(wake);
        assertEquals(k.symbols.WaitForMultipleObjects(2, hp, 0, 5_000), WAIT_OBJECT_0 + 1);
        assertEquals(k.symbols.WaitForMultipleObjects(2, hp, 0, 20), WAIT_TIMEOUT, "wake consumed");
      } finally {
        a.close();
        b.close();
        k.symbols.CloseHandle(wake);
        k.close();
      }
    }
  },
);

rootTest(
  "windows data path (fake wintun + winsock): xvpn connect, ping both ways, TCP with verified bytes",
  async () => {
    const dll = await buildFakeWintun();
    // data_path auto on a Wintun adapter: the Windows Worker (the server runs its own fast path).
    await withLab({ clientEnv: { XVPN_WINTUN_DLL: dll } }, async (lab) => {
      await lab.up();
      await lab.waitRoute("client", LAB.game);
      const log = lab.path("client.log");
      assertStringIncludes(
        await Deno.readTextFile(log),
        "data path windows (worker: WaitForMultipleObjects",
        "the client runs the Windows Worker",
      );

      const rate = await checkTunnelTraffic(lab);
      console.log(
        `  20 MiB client -> game over the Windows data path (fake): ${
          rate.upMbps.toFixed(0)
        } Mbit/s; ` +
          `back ${rate.downMbps.toFixed(0)} Mbit/s`,
      );
      // The adapter's queue towards the Worker is Wintun's ring (the fake sizes the TUN's queue
      // from it, and xvpn leaves it so), not Linux's 64-packet client queue: the upload above,
      // as fast as the CPUs go, never overflowed it (an overflow drops at random, a game
      // packet as readily as bulk).
      const link = await lab.topo.exec("client", ["ip", "-s", "-j", "link", "show", "xvpn0"]);
      const [dev] = JSON.parse(link.stdout) as {
        txqlen?: number;
        stats64?: { tx?: { dropped?: number } };
      }[];
      assert((dev?.txqlen ?? 0) > 1000, `the ring's room, not 64 (${dev?.txqlen})`);
      assertEquals(dev?.stats64?.tx?.dropped, 0, "nothing dropped before the Worker read it");
      // A rebind (what a network change or `control reconnect` does): a fresh Winsock socket
      // in the running loop; the server sees the new source port and traffic flows on.
      const doc = async (host: string) =>
        JSON.parse(
          (await lab.topo.exec(host, [...selfCommand(), "status", "--json"])).stdout,
        ) as { clients?: { endpoint?: string }[]; scheduler?: { interactive?: number } };
      const before = (await doc("server")).clients?.[0]?.endpoint;
      assert(before, "the server lists the client");
      await lab.topo.exec("client", [...selfCommand(), "control", "reconnect"]);
      let after: string | undefined = before;
      for (let i = 0; i < 50 && after === before; i++) {
        await ping(lab, "client", LAB.game, { count: 1 });
        after = (await doc("server")).clients?.[0]?.endpoint;
      }
      assert(after !== before, `a new source port after the rebind (${before} -> ${after})`);
      assertEquals((await ping(lab, "client", LAB.game, { count: 3 })).received, 3);
      const sched = (await doc("client")).scheduler;
      assert(
        sched && Number(sched.interactive) > 0,
        "status shows the Windows scheduler's figures",
      );
      const st = await lab.stopAll();
      assertEquals(st.client?.code, 0, `the client stops cleanly\n${await lab.logs(30)}`);
    });
  },
);

rootTest(
  "windows data path (fake): behind a 50 Mbit/s tbf, a game beside a cubic upload loses nothing",
  async () => {
    const dll = await buildFakeWintun();
    await withLab(
      { router: {}, keepalive: "product", clientEnv: { XVPN_WINTUN_DLL: dll } },
      async (lab) => {
        await lab.up();
        await lab.waitRoute("client", LAB.game);
        const t = lab.topo;
        // The bottleneck is the client's own uplink, so the Windows Worker's socket pushes back
        // (FD_WRITE) and its flow scheduler decides what waits: the game goes first.
        const dev = t.iface("client", "router");
        await t.exec("client", ["tc", "qdisc", "replace", "dev", dev, "root", ...SCHED_TBF]);
        await services(lab);
        const up = download(lab, 24, true);
        await new Promise((r) => setTimeout(r, 2000));
        const game = await runGameClient(t, "client", `${LAB.game}:7777`, 20);
        const mbps = await up;
        const st = await lab.stopAll();
        assertEquals(st.client?.code, 0, `the client stops cleanly\n${await lab.logs(30)}`);
        const log = await Deno.readTextFile(lab.path("client.log"));
        assertStringIncludes(log, "data path windows (worker: WaitForMultipleObjects");
        const s = await schedulerLine(lab, "client.log");
        console.log(
          `  game ${game.received}/${game.sent}, RTT p50 ${game.p50} p99 ${game.p99} max ` +
            `${game.max} ms; upload ${mbps.toFixed(1)} Mbit/s; client scheduler ${
              JSON.stringify(s)
            }`,
        );
        assertEquals(game.received, game.sent, "no game packet lost");
        assertEquals(game.duplicates, 0);
        assert(mbps > 20, `the upload ran (${mbps} Mbit/s)`);
        assert(s.interactive > 0 && s.bulk > 0, "the client sent both classes");
        assert(s.waited > 0, "the uplink pushed back, and the scheduler held what did not fit");
      },
    );
  },
);
