import { assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { type CommandResult, RecordingRunner } from "../io/command.ts";
import { parseCidr } from "../lib/ip.ts";
import { parseCidr6 } from "../lib/ip6.ts";
import { logger } from "../log.ts";
import type { ClientConfig, ServerConfig } from "../config/mod.ts";
import { carryLan, lanConflicts, serverLans } from "./lan.ts";

const log = logger("test");
const c4 = (s: string) => parseCidr(s)!;
const key = new Uint8Array(32);

const clients: ServerConfig["clients"] = [
  { name: "alice", publicKey: key, lan: [c4("192.168.50.0/24")] },
  { name: "bob", publicKey: key, lan: [c4("10.9.0.0/16")], lan6: [parseCidr6("fd50::/64")!] },
  { name: "carol", publicKey: key },
];

/** `ip -j route show` of a server on 192.168.1.0/24 and 10.9.8.0/24 (and its old TUN). */
const ROUTES = JSON.stringify([
  { dst: "default", gateway: "192.168.1.1", dev: "eth0" },
  { dst: "192.168.1.0/24", dev: "eth0", protocol: "kernel", scope: "link" },
  { dst: "10.9.8.0/24", dev: "eth1", protocol: "kernel", scope: "link" },
  { dst: "192.168.50.0/24", dev: "xvpn0", protocol: "kernel", scope: "link" },
]);

Deno.test("lanConflicts: a LAN overlapping a subnet connected to the server is named", () => {
  assertEquals(lanConflicts(clients, [c4("192.168.1.0/24")]), []);
  assertEquals(lanConflicts(clients, [c4("10.9.8.0/24")], [parseCidr6("fd50::/48")!]), [
    `lan 10.9.0.0/16 of client "bob" overlaps 10.9.8.0/24, a subnet connected to this server: ` +
    "without NAT it cannot tell its own network from the client's; give that LAN another subnet",
    `lan fd50::/64 of client "bob" overlaps fd50::/48, a subnet connected to this server: ` +
    "without NAT it cannot tell its own network from the client's; give that LAN another subnet",
  ]);
});

Deno.test("serverLans: every client's LANs, refused when connected here (its TUN left out)", async () => {
  const runner = new RecordingRunner((argv): CommandResult | undefined =>
    argv.join(" ") === "ip -j route show" ? { code: 0, stdout: ROUTES, stderr: "" } : undefined
  );
  const cfg = { clients, tun: { name: "xvpn0" } } as ServerConfig;
  if (Deno.build.os !== "linux") return;
  await assertRejects(
    () => serverLans(cfg, runner, log),
    Error,
    `client "bob" overlaps 10.9.8.0/24`,
  );
  const ok = { clients: [clients[0]!, clients[2]!], tun: { name: "xvpn0" } } as ServerConfig;
  const lans = await serverLans(ok, runner, log);
  assertEquals(lans.routes, [c4("192.168.50.0/24")], "the TUN's own route is no conflict");
  assertEquals(lans.routes6, []);
  const none = new RecordingRunner();
  await serverLans({ clients: [clients[2]!], tun: { name: "xvpn0" } } as ServerConfig, none, log);
  assertEquals(none.calls, [], "no LAN: nothing asked");
});

Deno.test("carryLan: forwarding on for the LAN's families, put back by the undo", async () => {
  if (Deno.build.os !== "linux") return;
  const runner = new RecordingRunner((argv): CommandResult | undefined =>
    argv[1] === "-n" ? { code: 0, stdout: "0\n", stderr: "" } : undefined
  );
  const cfg = {
    tun: { name: "xvpn0" },
    lan: [c4("192.168.50.0/24")],
    lan6: [parseCidr6("fd50::/64")!],
  } as ClientConfig;
  const undo = await carryLan(cfg, { runner }, { subnets: [c4("192.168.50.0/24")] }, log);
  await undo();
  assertEquals(runner.transcript(), [
    "sysctl -n net.ipv4.ip_forward",
    "sysctl -w net.ipv4.ip_forward=1",
    "sysctl -n net.ipv6.conf.all.forwarding",
    "sysctl -w net.ipv6.conf.all.forwarding=1",
    "sysctl -w net.ipv4.ip_forward=0",
    "sysctl -w net.ipv6.conf.all.forwarding=0",
  ]);
});
