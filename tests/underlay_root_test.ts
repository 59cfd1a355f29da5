/**
 * The underlay beyond one IPv4 address (audit findings 8 and 9): a server listening on `[::]`
 * (the README's own example) takes IPv4 and IPv6 clients, and a server reached at a second
 * address of its host answers from that address.
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { addAddress6, LAB, type Lab, ping, withLab } from "./support/net.ts";

const V6_SERVER = "fd00:201:1::2", V6_CLIENT = "fd00:201:1::1";

/** Gives the client-server link IPv6 addresses (no DAD: usable at once). */
async function addV6(lab: Lab): Promise<void> {
  for (const [host, peer] of [["server", "client"], ["client", "server"]]) {
    const dev = lab.topo.iface(host!, peer!);
    await lab.topo.exec(host!, ["sysctl", "-qw", `net.ipv6.conf.${dev}.disable_ipv6=0`]);
  }
  await addAddress6(lab, "server", "client", `${V6_SERVER}/64`);
  await addAddress6(lab, "client", "server", `${V6_CLIENT}/64`);
}

for (const dataPath of ["fast", "portable"] as const) {
  rootTest(
    `underlay (${dataPath}): a server on [::] takes an IPv4 client and an IPv6 one`,
    async () => {
      await withLab({ listen: `[::]:${LAB.port}`, dataPath }, async (lab) => {
        await addV6(lab);
        // An IPv4 client of the dual-stack socket.
        await lab.up();
        const v4 = await ping(lab, "client", LAB.game, { count: 3 });
        assertEquals(v4.received, 3, `over IPv4 to [::]: ${v4.out}`);
        await lab.stopAll();
        // The same over IPv6: the client reaches the server at its IPv6 address.
        const cfg = await Deno.readTextFile(lab.path("client.yaml"));
        await Deno.writeTextFile(
          lab.path("client6.yaml"),
          cfg.replace(/^server: .*$/m, `server: "[${V6_SERVER}]:${LAB.port}"`),
          { mode: 0o600 },
        );
        lab.startServer();
        await lab.waitAddress("server", LAB.serverTunnel);
        await lab.waitListening(20_000, 2);
        lab.startClient("client6.yaml");
        await lab.waitAddress("client", LAB.clientTunnel);
        await lab.waitRoute("client", LAB.game);
        const v6 = await ping(lab, "client", LAB.game, { count: 3 });
        assertEquals(v6.received, 3, `over IPv6: ${v6.out}`);
        const big = await ping(lab, "client", LAB.game, { count: 2, size: 1300 });
        assertEquals(big.received, 2, "full-size packets over IPv6");
        const log = await Deno.readTextFile(lab.path("server.log"));
        assertStringIncludes(log, `[${V6_CLIENT}]:`, "the session came from the IPv6 client");
      });
    },
  );
}

rootTest("underlay (fast): a server reached at a second address answers from it", async () => {
  const floating = "198.18.19.9";
  await withLab(
    { listen: `0.0.0.0:${LAB.port}`, clientServer: `${floating}:${LAB.port}` },
    async (lab) => {
      // The service address lives on the loopback device (no dummy module here); the route back
      // to the client leaves by the veth, whose primary address is 10.201.1.2: without PKTINFO
      // the replies came from there, and the client dropped them.
      await lab.topo.exec("server", ["ip", "address", "add", `${floating}/32`, "dev", "lo"]);
      await lab.topo.exec("client", [
        "ip",
        "route",
        "add",
        `${floating}/32`,
        "via",
        LAB.serverUnderlay,
      ]);
      await lab.up();
      const up = await ping(lab, "client", LAB.game, { count: 3 });
      assertEquals(up.received, 3, `through a server at its second address: ${up.out}`);
      const log = await Deno.readTextFile(lab.path("client.log"));
      assert(!log.includes("Handshake attempt 3"), "no endless handshake");
    },
  );
});
