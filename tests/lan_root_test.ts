/**
 * Root tests of LANs behind a client (issue 11, part 4; docs/lan.md), with the real CLI:
 *
 *   console 10.201.5.2 ── client ══ tunnel ══ server ── game 10.201.2.2
 *   (gateway: the client)  lan: 10.201.5.0/24      └── other 10.201.3.2: a second client
 *
 * Without NAT anywhere: the console reaches the game host through the tunnel and the game host
 * sees the console's own address; a second client sending from the console's LAN is dropped at
 * the server and counted. With `nat: true`: the server masquerades the LAN, and its forward
 * filter keeps a host beside it from opening connections to the console. The client's
 * ip_forward is its own business, put back at exit and after a SIGKILL.
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { capture, LAB, Lab, ping, tcpTransfer, withLab } from "./support/net.ts";
import { selfCommand } from "../src/demo/lab.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/core/keys.ts";

const FORWARD = "net.ipv4.ip_forward";
/** The second client's static tunnel address (in the lab's pool). */
const SECOND = "10.77.0.9";

async function sysctl(lab: Lab, host: string, key: string): Promise<string> {
  return (await lab.topo.exec(host, ["sysctl", "-n", key])).stdout.trim();
}

/** The client's journal of this lab (absent after a clean exit). */
function journalOf(lab: Lab): string {
  return `/run/xvpn/xvpn0.${lab.topo.ns("client")}.state.json`;
}

rootTest(
  "lan: a console behind the client reaches the game host with its own address; a second " +
    "client cannot send from that LAN",
  async () => {
    const second = generatePrivateKey();
    await withLab({
      withConsole: true,
      lan: true,
      withOther: true,
      // The second client, in "other", reaches the server on its address on that link.
      listen: `0.0.0.0:${LAB.port}`,
      moreClients: [
        `  - name: second`,
        `    public_key: "${encodeKey(publicKeyOf(second))}"`,
        `    address: ${SECOND}`,
      ].join("\n"),
      // A full tunnel: its /1 halves must leave the console's LAN where it is.
      clientExtra: "routes: [0.0.0.0/0]",
    }, async (lab) => {
      const { topo } = lab;
      // The game host routes the console's LAN back via the server: nothing NATs it.
      await topo.exec("game", ["ip", "route", "add", LAB.consoleNet, "via", "10.201.2.1"]);
      await topo.exec("client", ["sysctl", "-qw", `${FORWARD}=0`]);
      await lab.up();
      assertEquals(await sysctl(lab, "client", FORWARD), "1", "the client forwards for its LAN");
      const lanRoute = await topo.exec("server", ["ip", "route", "show", LAB.consoleNet]);
      assertStringIncludes(lanRoute.stdout, "dev xvpn0", "the server routes the LAN to its TUN");
      const toConsole = await topo.exec("client", ["ip", "route", "get", LAB.console]);
      assertStringIncludes(toConsole.stdout, `dev ${topo.iface("client", "console")}`);
      assert(
        !toConsole.stdout.includes("xvpn0"),
        `the full tunnel spares the LAN: ${toConsole.stdout}`,
      );

      const seen = await capture(lab, "game", "icmp or tcp port 5201", async () => {
        const p = await ping(lab, "console", LAB.game, { count: 3 });
        assertEquals(p.received, 3, `the console pings the game host: ${p.out}`);
        const t = await tcpTransfer(lab, "console", "game", LAB.game, 4 * 1024 * 1024);
        assertEquals(t.got.bytes, 4 * 1024 * 1024);
        assertEquals(t.got.sha256, t.sent.sha256, "the bytes arrived intact");
      });
      // `IP 10.201.5.2 > 10.201.2.2: ICMP ...` and `IP 10.201.5.2.45766 > 10.201.2.2.5201: tcp ...`
      const dots = (a: string) => a.replaceAll(".", "\\.");
      const up = new RegExp(` ${dots(LAB.console)}(\\.\\d+)? > ${dots(LAB.game)}[.:]`);
      const fromConsole = seen.filter((l) => up.test(l));
      assert(
        fromConsole.length > 5,
        `the game host sees the console's address:\n${seen.join("\n")}`,
      );
      assert(
        !seen.some((l) => l.includes(LAB.clientTunnel)),
        `and never the client's tunnel address (no NAT):\n${seen.join("\n")}`,
      );

      // The second client, in "other": its own traffic passes; the console's address does not.
      await topo.exec("other", ["ip", "route", "del", LAB.pool]); // the lab's way around
      await Deno.writeTextFile(
        lab.path("second.yaml"),
        [
          `server: "${topo.addr("server", "other")}:${LAB.port}"`,
          `server_public_key: "${encodeKey(publicKeyOf(lab.serverKey))}"`,
          `private_key: "${encodeKey(second)}"`,
          `log: { level: info, file: ${lab.path("second.log")} }`,
        ].join("\n"),
        { mode: 0o600 },
      );
      const child = topo.spawn("other", [
        ...selfCommand(),
        "connect",
        "--config",
        lab.path("second.yaml"),
      ], { logFile: lab.path("second.out") });
      // A failure in the body is the one reported: the exit code is checked only after success.
      let bodyOk = false;
      try {
        await lab.waitAddress("other", SECOND);
        await lab.waitRoute("other", LAB.game);
        const own = await ping(lab, "other", LAB.game, { count: 2 });
        assertEquals(own.received, 2, `the second client's own traffic passes: ${own.out}`);
        await topo.exec("other", ["ip", "address", "add", `${LAB.console}/32`, "dev", "lo"]);
        const spoofed = await capture(lab, "game", `icmp and host ${LAB.console}`, async () => {
          const r = await topo.exec("other", [
            ...["ping", "-n", "-c", "5", "-i", "0.2", "-W", "1", "-I", LAB.console, LAB.game],
          ], { allowFailure: true });
          assertStringIncludes(r.stdout, "5 packets transmitted, 0 received");
        });
        assertEquals(spoofed, [], "nothing from the console's address reached the game host");
        bodyOk = true;
      } finally {
        const stopped = await Lab.stop(child).catch((e) => {
          if (bodyOk) throw e;
          return undefined; // the body's error is the one that matters
        });
        if (bodyOk) assertEquals(stopped?.code, 0, "the second client exits cleanly");
      }

      const st = await lab.stopAll();
      assertEquals(st.client?.code, 0);
      assertEquals(st.server?.code, 0);
      const log = await Deno.readTextFile(lab.path("server.log"));
      assertStringIncludes(log, `LAN ${LAB.consoleNet} behind demo-client`);
      const m = /foreign_lan_src=(\d+)/.exec(log);
      assert(m && Number(m[1]) >= 5, `the server counted the spoofed packets:\n${log}`);
      assertEquals(await sysctl(lab, "client", FORWARD), "0", "forwarding as it was before");
      const left = await Deno.stat(journalOf(lab)).then(() => true, () => false);
      assertEquals(left, false, "no journal left by a clean exit");
    });
  },
);

rootTest(
  "lan: with nat the server masquerades the LAN and filters it; a SIGKILLed client's " +
    "ip_forward is put back at the next start",
  async () => {
    await withLab({ nat: true, withConsole: true, lan: true }, async (lab) => {
      const { topo } = lab;
      await topo.exec("client", ["sysctl", "-qw", `${FORWARD}=0`]);
      await lab.up();
      const seen = await capture(lab, "game", "icmp", async () => {
        const p = await ping(lab, "console", LAB.game, { count: 3 });
        assertEquals(p.received, 3, `the console pings the game host: ${p.out}`);
      });
      const serverSide = topo.addr("server", "game");
      assert(
        seen.some((l) => l.includes(`${serverSide} > ${LAB.game}`)) &&
          !seen.some((l) => l.includes(LAB.console)),
        `the game host sees the server's address (masqueraded):\n${seen.join("\n")}`,
      );
      // A host beside the server that routes the LAN via the server gets nowhere (only replies
      // and the clients' own traffic enter the LAN), and the drops are counted.
      await topo.exec("game", ["ip", "route", "add", LAB.consoleNet, "via", serverSide]);
      const into = await ping(lab, "game", LAB.console, { count: 3 });
      assertEquals(into.received, 0, `a new connection into the LAN is dropped: ${into.out}`);
      const rules = await topo.exec("server", ["nft", "list", "ruleset"]);
      const m = /counter packets (\d+) bytes \d+ drop/.exec(rules.stdout);
      assert(m && Number(m[1]) >= 3, `the drops are counted: ${rules.stdout}`);

      // A SIGKILL leaves forwarding on; the next start puts it back (then turns it on again).
      assertEquals(await sysctl(lab, "client", FORWARD), "1");
      lab.client!.kill("SIGKILL");
      await lab.client!.status;
      assertEquals(await sysctl(lab, "client", FORWARD), "1", "left on by the kill");
      lab.startClient();
      await lab.waitAddress("client", LAB.clientTunnel);
      await lab.waitRoute("client", LAB.game);
      const log = await Deno.readTextFile(lab.path("client.log"));
      assertStringIncludes(log, "did not clean up");
      assertStringIncludes(log, "ip_forward was 0", "the value from before the first run");
      const again = await ping(lab, "console", LAB.game, { count: 2 });
      assertEquals(again.received, 2, "the second run carries the LAN too");
      const st = await lab.stopAll();
      assertEquals(st.client?.code, 0);
      assertEquals(await sysctl(lab, "client", FORWARD), "0", "forwarding as before either run");
    });
  },
);
