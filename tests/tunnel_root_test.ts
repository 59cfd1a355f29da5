/**
 * Root integration tests: real namespaces, the real CLI as separate processes, real ping and TCP
 * through the tunnel. Each test builds its own lab and removes it, also on failure.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/core/keys.ts";
import { capture, LAB, ping, tcpTransfer, withLab } from "./support/net.ts";

for (const dataPath of ["fast", "portable"] as const) {
  rootTest(
    `tunnel (${dataPath}): ping both ways, fragmented ping, 50 MB TCP with verified bytes, split routes`,
    async () => {
      await withLab({ mtu: 1500, underlayMtu: 1500, withOther: true, dataPath }, async (lab) => {
        // Before the tunnel: the game host is not reachable from the client at all.
        const before = await ping(lab, "client", LAB.game, { count: 1 });
        assertEquals(before.received, 0, "no route to the game host without the tunnel");

        await lab.up();
        const up = await ping(lab, "client", LAB.game, { count: 5 });
        assertEquals(up.received, 5, `client -> game: ${up.out}`);
        const down = await ping(lab, "game", LAB.clientTunnel, { count: 5 });
        assertEquals(down.received, 5, `game -> client tunnel address: ${down.out}`);
        const srv = await ping(lab, "server", LAB.clientTunnel, { count: 3 });
        assertEquals(srv.received, 3, "server -> client over the tunnel");

        // ping -s 1900 through a 1500-byte TUN over a 1500-byte underlay: inner IP fragments, and
        // each outer datagram (1500 + 60) is fragmented again on the underlay.
        const big = await ping(lab, "client", LAB.game, { count: 5, size: 1900 });
        assertEquals(big.received, 5, `ping -s 1900: ${big.out}`);
        assert(big.out.includes("1908 bytes from"), "full-size echo replies came back");

        // The pushed route goes into the tunnel; an unpushed destination does not.
        const r1 = await lab.topo.exec("client", ["ip", "route", "get", LAB.game]);
        assert(r1.stdout.includes("dev xvpn0"), r1.stdout);
        const r2 = await lab.topo.exec("client", ["ip", "route", "get", LAB.other], {
          allowFailure: true,
        });
        assert(
          !r2.stdout.includes("xvpn0"),
          `unpushed ${LAB.other} must not use the tunnel: ${r2.stdout}${r2.stderr}`,
        );
        const other = await ping(lab, "client", LAB.other, { count: 1 });
        assertEquals(
          other.received,
          0,
          "an unpushed destination is not reachable through the tunnel",
        );

        const bytes = 50 * 1024 * 1024;
        const t = await tcpTransfer(lab, "client", "game", LAB.game, bytes);
        assertEquals(t.got.bytes, bytes);
        assertEquals(t.got.sha256, t.sent.sha256, "bytes arrived intact");
        console.log(
          `  50 MiB client -> game: ${(bytes * 8 / t.sent.seconds / 1e6).toFixed(0)} Mbit/s`,
        );
        const back = await tcpTransfer(
          lab,
          "game",
          "client",
          LAB.clientTunnel,
          10 * 1024 * 1024,
          5202,
        );
        assertEquals(back.got.sha256, back.sent.sha256, "bytes arrived intact (game -> client)");
        const log = await Deno.readTextFile(lab.path("client.log"));
        assert(log.includes(`data path ${dataPath}`), `ran the ${dataPath} path: ${log}`);
      });
    },
  );
}

rootTest("tunnel: a client with an unknown key gets no reply on the wire", async () => {
  await withLab({}, async (lab) => {
    lab.startServer();
    await lab.waitAddress("server", LAB.serverTunnel);
    const stranger = generatePrivateKey();
    await Deno.writeTextFile(
      lab.path("stranger.yaml"),
      [
        `server: "${LAB.serverUnderlay}:${LAB.port}"`,
        `server_public_key: "${encodeKey(publicKeyOf(lab.serverKey))}"`,
        `private_key: "${encodeKey(stranger)}"`,
        `tun: { name: xvpn0 }`,
      ].join("\n"),
    );
    const lines = await capture(lab, "client", "udp", async () => {
      lab.startClient("stranger.yaml");
      await new Promise((r) => setTimeout(r, 3500)); // first try and retries at ~1 s and ~3 s
    });
    const server = `${LAB.serverUnderlay}.${LAB.port}`;
    const sent = lines.filter((l) => l.includes(`> ${server}:`)).length;
    const replies = lines.filter((l) => l.includes(`${server} >`)).length;
    console.log(`  stranger sent ${sent} initiations, server replied ${replies} times`);
    assert(sent >= 2, `the stranger kept trying (saw ${sent} initiations): ${lines.join("\n")}`);
    assertEquals(replies, 0, "the server sent nothing to an unknown key");
    const addr = await lab.topo.exec("client", ["ip", "-j", "addr", "show", "dev", "xvpn0"], {
      allowFailure: true,
    });
    assert(!addr.stdout.includes(LAB.clientTunnel), "the stranger got no address");
    await lab.stopAll();
    const log = await Deno.readTextFile(lab.path("server.log"));
    assert(/unknown_key=\d+/.test(log), `server counted the drops: ${log}`);
  });
});

for (const dataPath of ["fast", "portable"] as const) {
  rootTest(
    `tunnel (${dataPath}): garbage datagrams of random sizes do not stop the server`,
    async () => {
      await withLab({ dataPath }, async (lab) => {
        await lab.up();
        const code = `
      const s = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
      let seed = 42;
      const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
      for (let i = 0; i < 3000; i++) {
        const d = new Uint8Array(rnd() % 1600);
        for (let j = 0; j < d.length; j++) d[j] = rnd() & 255;
        if (i % 4 === 0 && d.length > 1) { d[0] = 1; d[1] = 1 + (i % 4); } // plausible headers
        await s.send(d, { transport: "udp", hostname: "${LAB.serverUnderlay}", port: ${LAB.port} });
      }
      s.close();
    `;
        await lab.topo.exec("client", [Deno.execPath(), "eval", "--unstable-net", code]);
        const after = await ping(lab, "client", LAB.game, { count: 3 });
        assertEquals(after.received, 3, "the tunnel still works after 3000 garbage datagrams");
        const st = await lab.stopAll();
        assertEquals(st.server?.code, 0, "server exited cleanly");
        const log = await Deno.readTextFile(lab.path("server.log"));
        const m = /Dropped datagrams by reason: (.*)/.exec(log);
        assert(m, `the server reports its drops: ${log}`);
        console.log(`  server drops after 3000 garbage datagrams: ${m[1]}`);
      });
    },
  );
}

rootTest("tunnel: after SIGTERM no TUN, address, route or NAT rule is left", async () => {
  await withLab({ nat: true }, async (lab) => {
    const natBefore = await lab.topo.exec("server", ["nft", "list", "tables"]);
    await lab.up();
    const natUp = await lab.topo.exec("server", ["nft", "list", "ruleset"]);
    assert(natUp.stdout.includes("masquerade"), `NAT rule installed: ${natUp.stdout}`);
    const viaNat = await ping(lab, "client", LAB.game, { count: 2 });
    assertEquals(
      viaNat.received,
      2,
      "the game host answers through NAT (it has no route to the pool)",
    );
    const st = await lab.stopAll();
    assertEquals(st.client?.code, 0);
    assertEquals(st.server?.code, 0);
    for (const host of ["client", "server"]) {
      const link = await lab.topo.exec(host, ["ip", "link", "show", "xvpn0"], {
        allowFailure: true,
      });
      assert(link.code !== 0, `${host}: xvpn0 is gone`);
      const routes = await lab.topo.exec(host, ["ip", "route", "show"]);
      assert(
        !routes.stdout.includes("xvpn0") && !routes.stdout.includes("10.77.0."),
        `${host} routes: ${routes.stdout}`,
      );
    }
    const natAfter = await lab.topo.exec("server", ["nft", "list", "tables"]);
    assertEquals(natAfter.stdout, natBefore.stdout, "NAT table removed");
  });
});
