import { assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { type Cidr, parseCidr, parseIPv4 } from "../../lib/ip.ts";
import { CommandError, ProcessRunner } from "../command.ts";
import { openTun } from "../tun/open.ts";
import { type NetnsRunner, rootTest, uniqueName, withNetns } from "../../../tests/support/root.ts";
import { RouteApplier } from "./applier.ts";
import type { LinkState } from "./state.ts";

const cidr = (t: string): Cidr => parseCidr(t)!;
const host = new ProcessRunner();

/** The main routing table of the namespace as sorted `dst via gw dev X` lines. */
async function routes(run: NetnsRunner): Promise<string[]> {
  const { stdout } = await run.run(["ip", "-j", "route", "show"]);
  const table = JSON.parse(stdout) as { dst: string; gateway?: string; dev: string }[];
  return table.map((r) => `${r.dst} via ${r.gateway ?? "-"} dev ${r.dev}`).sort();
}

/** Addresses on `dev` in the namespace. */
async function addresses(run: NetnsRunner, dev: string): Promise<string[]> {
  const { stdout } = await run.run(["ip", "-j", "-4", "address", "show", "dev", dev]);
  const links = JSON.parse(stdout) as { addr_info: { local: string; prefixlen: number }[] }[];
  return links.flatMap((l) => l.addr_info.map((a) => `${a.local}/${a.prefixlen}`));
}

/**
 * A namespace with an "uplink" veth (192.168.77.2/24, default via 192.168.77.1) and a TUN
 * device moved into it. Nothing leaves the namespace: the plan only changes routing tables.
 */
async function withTunnelNamespace(
  fn: (run: NetnsRunner, tun: string) => Promise<void>,
): Promise<void> {
  await withNetns(async (run, ns) => {
    // No dummy module on every host; a veth pair (both ends up, for carrier) does as well.
    await run.run(["ip", "link", "add", "xvu0", "type", "veth", "peer", "name", "xvu1"]);
    await run.run(["ip", "link", "set", "dev", "xvu1", "up"]);
    await run.run(["ip", "address", "add", "192.168.77.2/24", "dev", "xvu0"]);
    await run.run(["ip", "link", "set", "dev", "xvu0", "up"]);
    await run.run(["ip", "route", "add", "default", "via", "192.168.77.1", "dev", "xvu0"]);
    const tun = openTun(uniqueName("xvr"));
    try {
      await host.run(["ip", "link", "set", "dev", tun.name, "netns", ns]);
      await fn(run, tun.name);
    } finally {
      tun.close();
      await host.run(["ip", "link", "del", "dev", tun.name], { allowFailure: true });
    }
  });
}

rootTest(
  "RouteApplier applies a full-tunnel plan to a TUN in a namespace and removes it",
  async () => {
    await withTunnelNamespace(async (run, tun) => {
      const before = await routes(run);
      const state: LinkState = {
        ifname: tun,
        address: cidr("10.7.0.2/24"),
        mtu: 1380,
        routes: [cidr("0.0.0.0/0"), cidr("10.99.0.0/16"), cidr("10.7.0.0/24")],
        endpoint: { ip: parseIPv4("198.51.100.7")! }, // found via `ip route get`
      };
      const applier = new RouteApplier(run, "linux");
      try {
        await applier.up(state);
        assertEquals(
          await routes(run),
          [
            ...before,
            `0.0.0.0/1 via - dev ${tun}`,
            `128.0.0.0/1 via - dev ${tun}`,
            `10.99.0.0/16 via - dev ${tun}`,
            `10.7.0.0/24 via - dev ${tun}`, // the kernel's connected route, not ours
            "198.51.100.7 via 192.168.77.1 dev xvu0",
          ].sort(),
        );
        assertEquals(await addresses(run, tun), ["10.7.0.2/24"]);
        const link = JSON.parse((await run.run(["ip", "-j", "link", "show", "dev", tun])).stdout);
        assertEquals(link[0].mtu, 1380);
      } finally {
        await applier.down();
      }
      assertEquals(await routes(run), before);
      assertEquals(await addresses(run, tun), []);
    });
  },
);

rootTest("RouteApplier rolls back a real plan when the kernel rejects a route", async () => {
  await withTunnelNamespace(async (run, tun) => {
    // Someone else already routes 10.99.0.0/16, so adding ours fails with "File exists".
    await run.run(["ip", "route", "add", "10.99.0.0/16", "dev", "xvu0"]);
    const before = await routes(run);
    const applier = new RouteApplier(run, "linux");
    const err = await assertRejects(
      () =>
        applier.up({
          ifname: tun,
          address: cidr("10.7.0.2/24"),
          mtu: 1400,
          routes: [cidr("10.98.0.0/16"), cidr("10.99.0.0/16")],
        }),
      CommandError,
      "File exists",
    ) as CommandError;
    assertEquals(err.argv.slice(-6), ["ip", "route", "add", "10.99.0.0/16", "dev", tun]);
    assertEquals(await routes(run), before);
    assertEquals(await addresses(run, tun), []);
    await applier.down(); // nothing left
  });
});
