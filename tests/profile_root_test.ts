/**
 * Game profiles end to end (issue 11, part 3): `xvpn connect --profile NAME` routes the
 * profile's ranges into the tunnel, and follows its domains: a DNS answer that comes back
 * through the tunnel for a followed name (directly or through a CNAME) gets a /32 route for its
 * address before the application sees the answer; a name outside the profile gets none.
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { LAB, ping, withLab } from "./support/net.ts";
import { selfCommand } from "../src/demo/lab.ts";

const ZONE = {
  "play.example.com": [["A", "10.201.9.9", 30]],
  "cdn.example.com": [["CNAME", "edge.cdn.test", 60], ["A", "10.201.9.10", 20]],
  "other.test": [["A", "10.201.9.11", 30]],
};

function support(file: string): string {
  return new URL(`./support/${file}`, import.meta.url).pathname;
}

rootTest("profiles: --profile routes its ranges and follows its domains' answers", async () => {
  await withLab({ clientExtra: "dns: false" }, async (lab) => {
    const t = lab.topo;
    // Beyond the game host: a range of the profile, and addresses only DNS names.
    for (const a of ["10.201.8.1/32", "10.201.9.9/32", "10.201.9.10/32", "10.201.9.11/32"]) {
      await t.exec("game", ["ip", "address", "add", a, "dev", "lo"]);
    }
    for (const net of ["10.201.8.0/24", "10.201.9.0/24"]) {
      await t.exec("server", ["ip", "route", "add", net, "via", LAB.game]);
    }
    const dns = t.spawn("game", [
      Deno.execPath(),
      ...["run", "-A", support("dnsserver.ts"), JSON.stringify(ZONE)],
    ], { stdout: "piped" });
    const ready = dns.stdout.pipeThrough(new TextDecoderStream()).getReader();
    assertStringIncludes((await ready.read()).value ?? "", "ready");
    ready.releaseLock();
    // The profile, where a user's profiles live ($XDG_CONFIG_HOME/xvpn/profiles).
    const xdg = lab.path("xdg");
    await Deno.mkdir(`${xdg}/xvpn/profiles`, { recursive: true });
    await Deno.writeTextFile(
      `${xdg}/xvpn/profiles/lab-game.yaml`,
      [
        "name: lab-game",
        "description: the lab's game",
        "source: this test",
        "cidrs: [10.201.8.0/24]",
        "domains: [example.com]",
      ].join("\n"),
    );
    lab.startServer();
    await lab.waitAddress("server", LAB.serverTunnel);
    await lab.waitListening();
    lab.client = t.spawn("client", [
      ...selfCommand(),
      ...["connect", "--config", lab.path("client.yaml"), "--profile", "lab-game"],
    ], { logFile: lab.path("client.out"), env: { XDG_CONFIG_HOME: xdg } });
    await lab.waitAddress("client", LAB.clientTunnel);
    await lab.waitRoute("client", "10.201.8.1");

    assertEquals((await ping(lab, "client", "10.201.8.1")).received, 3, "the profile's range");
    // (The client namespace has no default route: outside the tunnel it is unreachable.)
    const before = await t.exec("client", ["ip", "route", "get", "10.201.9.9"], {
      allowFailure: true,
    });
    assert(!before.stdout.includes("xvpn0"), `not routed before the answer: ${before.stdout}`);

    const query = async (name: string) => {
      const r = await t.exec("client", [
        Deno.execPath(),
        ...["run", "-A", support("dnsquery.ts"), LAB.game, name],
      ]);
      return JSON.parse(r.stdout) as {
        addresses: string[];
        sent: Record<string, string>;
        routes: Record<string, string>;
      };
    };
    const play = await query("play.example.com");
    assertEquals(play.addresses, ["10.201.9.9"]);
    assertEquals(play.sent["10.201.9.9"], "ok", "the first packet after the answer had a route");
    assertStringIncludes(play.routes["10.201.9.9"]!, "dev xvpn0", "routed before the answer");
    assertEquals((await ping(lab, "client", "10.201.9.9")).received, 3, "through the tunnel");

    const cdn = await query("cdn.example.com");
    assertEquals(cdn.addresses, ["10.201.9.10"]);
    assertStringIncludes(cdn.routes["10.201.9.10"]!, "dev xvpn0", "followed through the CNAME");

    const other = await query("other.test");
    assertEquals(other.addresses, ["10.201.9.11"]);
    assert(!other.routes["10.201.9.11"]!.includes("xvpn0"), "a name outside the profile");
    assert(other.sent["10.201.9.11"] !== "ok", "and no way to it (the control case)");

    const st = JSON.parse(
      (await t.exec("client", [...selfCommand(), "status", "--json"])).stdout,
    ) as Record<string, unknown>;
    assertEquals([st.profiles, st.learned_routes, st.followed], [["lab-game"], 2, 2]);
    const log = await Deno.readTextFile(lab.path("client.log"));
    assertStringIncludes(log, "Profiles lab-game: 1 ranges routed, 1 domains followed");
    assertStringIncludes(log, "10.201.9.9/32 routed into the tunnel");
    dns.kill("SIGTERM");
    await dns.status;
  });
});
