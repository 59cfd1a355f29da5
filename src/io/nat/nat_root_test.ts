import { assert, assertEquals } from "../../../tests/support/assert.ts";
import { parseCidr } from "../../lib/ip.ts";
import { ProcessRunner } from "../command.ts";
import { type NetnsRunner, rootTest, withNetns } from "../../../tests/support/root.ts";
import { Nat } from "./nat.ts";

const pool = parseCidr("10.7.0.0/24")!;
const host = new ProcessRunner();

async function forwarding(run: NetnsRunner): Promise<string> {
  return (await run.run(["sysctl", "-n", "net.ipv4.ip_forward"])).stdout.trim();
}

async function tables(run: NetnsRunner): Promise<string[]> {
  const { stdout } = await run.run(["nft", "-j", "list", "tables"]);
  const items = (JSON.parse(stdout) as { nftables: { table?: { name: string } }[] }).nftables;
  return items.flatMap((i) => (i.table ? [i.table.name] : []));
}

rootTest(
  "Nat.enable() adds our masquerade table in a namespace and disable() removes it",
  async () => {
    await withNetns(async (run) => {
      assertEquals(await forwarding(run), "0", "a new namespace starts with forwarding off");
      const nat = new Nat(run, "xvtest0");
      try {
        await nat.enable(pool, "xvu0");
        assertEquals(await forwarding(run), "1");
        assertEquals(await tables(run), ["xvpn_nat_xvtest0"]);
        const listing = (await run.run(["nft", "list", "table", "ip", "xvpn_nat_xvtest0"])).stdout;
        assert(listing.includes("type nat hook postrouting priority srcnat"), listing);
        assert(listing.includes('ip saddr 10.7.0.0/24 oifname "xvu0" masquerade'), listing);

        await nat.enable(pool); // replaces the rule rather than adding a second one
        const again = (await run.run(["nft", "list", "table", "ip", "xvpn_nat_xvtest0"])).stdout;
        assertEquals(again.match(/masquerade/g)?.length, 1, again);
        assert(again.includes("ip saddr 10.7.0.0/24 masquerade"), again);
      } finally {
        await nat.disable();
      }
      assertEquals(await tables(run), []);
      assertEquals(await forwarding(run), "0");
    });
  },
);

rootTest("Nat masquerades pool traffic routed between namespaces", async () => {
  // client (10.7.0.2) -> router (10.7.0.1 | 192.0.2.1) -> server (192.0.2.2). The server has
  // no route back to 10.7.0.0/24, so a ping only succeeds when the router masquerades it.
  await withNetns((client, c) =>
    withNetns((router, r) =>
      withNetns(async (server, s) => {
        await host.run([
          "ip",
          "-n",
          r,
          "link",
          "add",
          "rc0",
          "type",
          "veth",
          "peer",
          "c0",
          "netns",
          c,
        ]);
        await host.run([
          "ip",
          "-n",
          r,
          "link",
          "add",
          "rs0",
          "type",
          "veth",
          "peer",
          "s0",
          "netns",
          s,
        ]);
        for (
          const [run, dev, addr] of [
            [client, "c0", "10.7.0.2/24"],
            [router, "rc0", "10.7.0.1/24"],
            [router, "rs0", "192.0.2.1/24"],
            [server, "s0", "192.0.2.2/24"],
          ] as const
        ) {
          await run.run(["ip", "address", "add", addr, "dev", dev]);
          await run.run(["ip", "link", "set", "dev", dev, "up"]);
        }
        await client.run(["ip", "route", "add", "default", "via", "10.7.0.1"]);
        const ping = async () =>
          (await client.run(["ping", "-n", "-c", "1", "-W", "1", "192.0.2.2"], {
            allowFailure: true,
          })).code === 0;

        // Forwarding alone is not enough: the reply has no way back without masquerade.
        await router.run(["sysctl", "-w", "net.ipv4.ip_forward=1"]);
        assert(!(await ping()), "the ping got through without NAT");
        await router.run(["sysctl", "-w", "net.ipv4.ip_forward=0"]);
        const nat = new Nat(router, "rc0");
        try {
          await nat.enable(pool, "rs0");
          assert(await ping(), "ping through the NAT failed");
        } finally {
          await nat.disable();
        }
        assert(!(await ping()), "ping still gets through after disable()");
      })
    )
  );
});
