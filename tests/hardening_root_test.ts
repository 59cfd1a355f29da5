/**
 * Root tests of the audit findings (issue 10), each reproduced as the audit did, in namespaces
 * with the real CLI: a host beside a forwarding server reaching the clients, SIGKILLed clients
 * and servers and the start after them, a second `connect` on a running TUN.
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { LAB, Lab, ping, withLab } from "./support/net.ts";
import { selfCommand } from "../src/demo/lab.ts";

/** Kills a process with SIGKILL (no cleanup at all) and waits for it. */
async function kill9(child: Deno.ChildProcess | undefined): Promise<void> {
  assert(child, "a running process");
  child.kill("SIGKILL");
  await child.status;
}

async function sysctl(lab: Lab, host: string, key: string): Promise<string> {
  return (await lab.topo.exec(host, ["sysctl", "-n", key])).stdout.trim();
}

async function nftTables(lab: Lab): Promise<string> {
  return (await lab.topo.exec("server", ["nft", "list", "tables"])).stdout;
}

/** The game host routes the pool via the server, as a host beside a NAT server could. */
async function routePoolFromGame(lab: Lab): Promise<void> {
  await lab.topo.exec("game", ["ip", "route", "add", LAB.pool, "via", "10.201.2.1"]);
}

rootTest(
  "forward filter: with nat, a host beside the server cannot reach the clients",
  async () => {
    await withLab({ nat: true }, async (lab) => {
      await lab.up();
      await routePoolFromGame(lab);
      const out = await ping(lab, "client", LAB.game, { count: 3 });
      assertEquals(out.received, 3, "the client's own traffic and its replies pass");
      const into = await ping(lab, "game", LAB.clientTunnel, { count: 3 });
      assertEquals(into.received, 0, `a new connection from outside is dropped: ${into.out}`);
      const rules = await lab.topo.exec("server", ["nft", "list", "ruleset"]);
      const m = /counter packets (\d+) bytes \d+ drop/.exec(rules.stdout);
      assert(m && Number(m[1]) >= 3, `the drops are counted: ${rules.stdout}`);
    });
  },
);

rootTest(
  "inbound: true lets the outside in; the client still drops sources it does not route",
  async () => {
    await withLab(
      { nat: true, withConsole: true, serverExtra: "inbound: true" },
      async (lab) => {
        await lab.up();
        await routePoolFromGame(lab);
        const into = await ping(lab, "game", LAB.clientTunnel, { count: 3 });
        assertEquals(into.received, 3, `inbound: true: a match host can be reached: ${into.out}`);
        // The audit's packet: from beside the server, claiming to come from the client's own LAN
        // (the console's address), which the client routes to its LAN, not into the tunnel.
        const gameIf = lab.topo.iface("game", "server");
        await lab.topo.exec("game", ["ip", "address", "add", `${LAB.console}/32`, "dev", gameIf]);
        const spoofed = await lab.topo.exec("game", [
          "ping",
          "-n",
          "-c",
          "5",
          "-i",
          "0.2",
          "-W",
          "1",
          "-I",
          LAB.console,
          LAB.clientTunnel,
        ], { allowFailure: true });
        assertStringIncludes(spoofed.stdout, "5 packets transmitted, 0 received");
        const st = await lab.stopAll();
        assertEquals(st.client?.code, 0);
        const log = await Deno.readTextFile(lab.path("client.log"));
        const m = /bad_inner_src=(\d+)/.exec(log);
        assert(m && Number(m[1]) >= 5, `the client counted the spoofed packets:\n${log}`);
      },
    );
  },
);

rootTest(
  "crash: a SIGKILLed full-tunnel client's host route is put back at the next start",
  async () => {
    await withLab({ clientExtra: "routes: [0.0.0.0/0]" }, async (lab) => {
      await lab.up();
      const hostRoute = ["ip", "route", "show", `${LAB.serverUnderlay}/32`];
      const before = await lab.topo.exec("client", hostRoute);
      assert(before.stdout.trim(), "a full tunnel adds a host route to the server");
      await kill9(lab.client);
      const left = await lab.topo.exec("client", hostRoute);
      assert(left.stdout.trim(), "SIGKILL leaves it behind (what broke the next connect)");
      lab.startClient();
      await lab.waitAddress("client", LAB.clientTunnel);
      await lab.waitRoute("client", LAB.game);
      const log = await Deno.readTextFile(lab.path("client.log"));
      assertStringIncludes(log, "did not clean up");
      const up = await ping(lab, "client", LAB.game, { count: 3 });
      assertEquals(up.received, 3, "the second run works");
      const st = await lab.stopAll();
      assertEquals(st.client?.code, 0);
      const after = await lab.topo.exec("client", hostRoute);
      assertEquals(after.stdout.trim(), "", "and removes it at its own exit");
    });
  },
);

rootTest("crash: a SIGKILLed server's ip_forward and NAT table are put back", async () => {
  await withLab({ nat: true }, async (lab) => {
    await lab.topo.exec("server", ["sysctl", "-w", "net.ipv4.ip_forward=0"]);
    const tablesBefore = await nftTables(lab);
    lab.startServer();
    await lab.waitListening();
    assertEquals(await sysctl(lab, "server", "net.ipv4.ip_forward"), "1");
    await kill9(lab.server);
    assertEquals(await sysctl(lab, "server", "net.ipv4.ip_forward"), "1", "left on by the kill");
    assert((await nftTables(lab)).includes("xvpn_nat_xvpn0"), "and the NAT table");
    lab.startServer();
    await lab.waitListening(20_000, 2); // the second run's "Listening on"
    const log = await Deno.readTextFile(lab.path("server.log"));
    assertStringIncludes(log, "did not clean up");
    const st = await lab.stopAll();
    assertEquals(st.server?.code, 0);
    assertEquals(
      await sysctl(lab, "server", "net.ipv4.ip_forward"),
      "0",
      "the original value, not the 1 the killed run left",
    );
    assertEquals(await nftTables(lab), tablesBefore, "no NAT table left");
  });
});

rootTest(
  "lock: a second connect on a running TUN is refused and leaves its DNS alone",
  async () => {
    const resolv = "# the client namespace's own resolv.conf\nnameserver 192.0.2.1\n";
    await withLab({ clientResolvConf: resolv }, async (lab) => {
      await lab.up();
      const path = lab.clientResolvConfPath;
      // The first client's DNS is in place before the second one starts.
      for (let i = 0; i < 100 && !(await Deno.readTextFile(path)).includes(LAB.serverTunnel); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const dnsUp = await Deno.readTextFile(path);
      assertStringIncludes(dnsUp, `nameserver ${LAB.serverTunnel}`);
      const second = await lab.topo.exec("client", [
        ...selfCommand(),
        "connect",
        "--config",
        lab.path("client.yaml"),
      ], { allowFailure: true, timeoutMs: 20_000 });
      assert(second.code !== 0, "the second connect fails");
      assertStringIncludes(
        second.stderr + second.stdout,
        "TUN xvpn0 is in use by another xvpn (pid",
      );
      assertEquals(await Deno.readTextFile(path), dnsUp, "the running tunnel's DNS is untouched");
      const up = await ping(lab, "client", LAB.game, { count: 2 });
      assertEquals(up.received, 2, "and the tunnel still works");
    });
  },
);
