/**
 * IPv6 inside the tunnel, with the real CLI in namespaces: a server with an IPv6 pool carries
 * IPv6 both ways (bytes checked by ping payloads, full-size packets too), and a full tunnel from
 * a server without one blocks IPv6 rather than leaking it (the leak test: a capture on the
 * client's underlay sees no IPv6 packet to the outside host while the tunnel is up).
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { addAddress6, capture, type Lab, ping, withLab } from "./support/net.ts";

/** An "outside" IPv6 host: an address on the server's loopback, which the client reaches
 * over its own underlay (its IPv6 default route) when no tunnel is in the way. */
const OUTSIDE6 = "2001:db8:1::9";
const SERVER_LINK6 = "fd00:201:1::2", CLIENT_LINK6 = "fd00:201:1::1";
const GAME6 = "fd00:202::2";

async function ipv6Underlay(lab: Lab): Promise<void> {
  await addAddress6(lab, "server", "client", `${SERVER_LINK6}/64`);
  await addAddress6(lab, "client", "server", `${CLIENT_LINK6}/64`);
  await lab.topo.exec("client", ["ip", "-6", "route", "add", "default", "via", SERVER_LINK6]);
  await lab.topo.exec("server", ["ip", "-6", "address", "add", `${OUTSIDE6}/128`, "dev", "lo"]);
}

/** The game host's IPv6 network behind the server (fd00:202::/64). */
async function gameNet6(lab: Lab): Promise<void> {
  await addAddress6(lab, "server", "game", "fd00:202::1/64");
  await addAddress6(lab, "game", "server", `${GAME6}/64`);
}

/** Waits until `host` routes `dst` (IPv6) through xvpn0: the IPv6 routes follow the IPv4 ones. */
async function waitRoute6(lab: Lab, dst: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = await lab.topo.exec("client", ["ip", "-6", "route", "get", dst], {
      allowFailure: true,
    });
    if (r.stdout.includes("dev xvpn0")) return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`no IPv6 route to ${dst} through xvpn0`);
}

/** Waits until the client's IPv6 block (unreachable halves) is in place. */
async function waitBlock(lab: Lab): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = await lab.topo.exec("client", ["ip", "-6", "route", "show"]);
    if (r.stdout.includes("unreachable 8000::/1")) return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error("the IPv6 block never came");
}

rootTest("dual stack: a server with pool6 carries IPv6 both ways through the tunnel", async () => {
  await withLab({
    ipv6: true,
    serverExtra: "pool6: fd00:77::/64",
    clientExtra: 'routes: ["fd00:202::/64"]',
  }, async (lab) => {
    // The game host's IPv6 network, routed back to the pool6 via the server.
    await gameNet6(lab);
    await lab.topo.exec("game", ["ip", "-6", "route", "add", "fd00:77::/64", "via", "fd00:202::1"]);
    await lab.topo.exec("server", ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    await lab.up();
    await waitRoute6(lab, GAME6);
    const addr = await lab.topo.exec("client", ["ip", "-6", "addr", "show", "dev", "xvpn0"]);
    assertStringIncludes(addr.stdout, "fd00:77::2/64");
    const up = await ping(lab, "client", GAME6, { pattern: "c0ffee" });
    assertEquals(up.received, 3, `client -> game over IPv6: ${up.out}`);
    const big = await ping(lab, "client", GAME6, { size: 1300 });
    assertEquals(big.received, 3, `full-size IPv6 packets: ${big.out}`);
    const down = await ping(lab, "game", "fd00:77::2");
    assertEquals(down.received, 3, `game -> client over IPv6: ${down.out}`);
    // Too big for the tunnel: IPv6 routers never fragment, so the server's kernel must answer
    // ICMPv6 "packet too big" with the TUN's MTU; the game host then fragments at the source
    // and the rest of the echoes arrive.
    const link = await lab.topo.exec("server", ["ip", "link", "show", "dev", "xvpn0"]);
    const mtu = /mtu (\d+)/.exec(link.stdout)![1];
    const ptb = await ping(lab, "game", "fd00:77::2", { size: 1450 });
    const said = /too big: mtu=(\d+)/i.exec(ptb.out);
    assertEquals(said?.[1], mtu, `ICMPv6 packet too big with the TUN MTU: ${ptb.out}`);
    assert(ptb.received >= 2, `fragmented at the source, the echoes arrive: ${ptb.out}`);
    const route = await lab.topo.exec("client", ["ip", "-6", "route", "get", GAME6]);
    assertStringIncludes(route.stdout, "dev xvpn0");
  });
});

rootTest(
  "leak test: a full tunnel without IPv6 at the server blocks IPv6, never leaks it",
  async () => {
    await withLab({ ipv6: true, clientExtra: "routes: [0.0.0.0/0]" }, async (lab) => {
      await ipv6Underlay(lab);
      // The capture's control: without the tunnel the same pings are seen on the underlay.
      let before = { received: 0, out: "" };
      const seen = await capture(lab, "client", "ip6 and host " + OUTSIDE6, async () => {
        before = await ping(lab, "client", OUTSIDE6);
      });
      assertEquals(
        before.received,
        3,
        `without the tunnel the outside host answers: ${before.out}`,
      );
      assert(seen.length >= 3, `the capture sees them: ${seen.length} packets`);
      await lab.up();
      await waitBlock(lab);
      let during = { received: 0, out: "" };
      let tcp = { stdout: "" };
      const leaked = await capture(lab, "client", "ip6 and host " + OUTSIDE6, async () => {
        during = await ping(lab, "client", OUTSIDE6);
        // bash, not sh: /dev/tcp is bash's (dash has none, and would never print rc=).
        tcp = await lab.topo.exec("client", [
          "bash",
          "-c",
          `exec 3<>/dev/tcp/${OUTSIDE6}/80 2>&1; echo rc=$?`,
        ], { allowFailure: true });
      });
      assertEquals(
        during.received,
        0,
        "the outside IPv6 host is out of reach while the tunnel is up",
      );
      assert(/unreachable|no route to host/i.test(during.out), `refused at once: ${during.out}`);
      assertEquals(leaked, [], "not one IPv6 packet to it on the underlay");
      assert(/rc=[1-9]/.test(tcp.stdout), `no TCP either: ${tcp.stdout}`);
      const log = await Deno.readTextFile(lab.path("client.log"));
      assertStringIncludes(log, "IPv6 blocked");
      await lab.stopAll();
      const after = await ping(lab, "client", OUTSIDE6);
      assertEquals(after.received, 3, `the block goes with the tunnel: ${after.out}`);
    });
  },
);

rootTest(
  "leak test: with pool6 and ::/0 the same IPv6 traffic goes through the tunnel",
  async () => {
    await withLab({
      ipv6: true,
      serverExtra: "pool6: fd00:77::/64",
      clientExtra: 'routes: [0.0.0.0/0, "::/0"]',
    }, async (lab) => {
      await ipv6Underlay(lab);
      await lab.up();
      await waitRoute6(lab, OUTSIDE6);
      let through = { received: 0, out: "" };
      const outside = await capture(lab, "client", "ip6 and host " + OUTSIDE6, async () => {
        through = await ping(lab, "client", OUTSIDE6);
      });
      assertEquals(through.received, 3, `IPv6 reaches it through the tunnel: ${through.out}`);
      assertEquals(outside, [], "none outside it");
      const route = await lab.topo.exec("client", ["ip", "-6", "route", "get", OUTSIDE6]);
      assertStringIncludes(route.stdout, "dev xvpn0");
    });
  },
);

rootTest(
  "dual stack: with nat, IPv6 from the clients leaves masqueraded and comes back",
  async () => {
    await withLab({
      ipv6: true,
      nat: true,
      serverExtra: "pool6: fd00:77::/64",
      clientExtra: 'routes: ["fd00:202::/64"]',
    }, async (lab) => {
      await gameNet6(lab);
      // No route back to fd00:77::/64 on the game host: only NAT66 can bring the replies home.
      const fwdBefore =
        (await lab.topo.exec("server", ["sysctl", "-n", "net.ipv6.conf.all.forwarding"]))
          .stdout.trim();
      await lab.up();
      await waitRoute6(lab, GAME6);
      const up = await ping(lab, "client", GAME6);
      assertEquals(up.received, 3, `through NAT66: ${up.out}`);
      const st = await lab.stopAll();
      assertEquals(st.server?.code, 0);
      const fwdAfter =
        (await lab.topo.exec("server", ["sysctl", "-n", "net.ipv6.conf.all.forwarding"]))
          .stdout.trim();
      assertEquals(fwdAfter, fwdBefore, "IPv6 forwarding put back");
      const tables = await lab.topo.exec("server", ["nft", "list", "tables"]);
      assert(!tables.stdout.includes("xvpn_nat"), `no NAT table left: ${tables.stdout}`);
    });
  },
);
