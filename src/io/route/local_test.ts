import { assertEquals } from "../../../tests/support/assert.ts";
import { formatCidr, formatIPv4 } from "../../lib/ip.ts";
import { localNetwork, parseLocalRoutes } from "./local.ts";
import { RecordingRunner } from "../command.ts";

Deno.test("parseLocalRoutes() finds connected subnets and gateways, leaving the TUN out", () => {
  const json = JSON.stringify([
    { dst: "default", gateway: "192.168.77.1", dev: "wlan0", protocol: "dhcp" },
    { dst: "192.168.77.0/24", dev: "wlan0", protocol: "kernel", scope: "link" },
    { dst: "10.7.0.0/24", dev: "xvpn0", protocol: "kernel", scope: "link" },
    { dst: "172.16.0.0/12", gateway: "192.168.77.254", dev: "wlan0" },
  ]);
  const l = parseLocalRoutes(json, "xvpn0");
  assertEquals(l.subnets.map(formatCidr), ["192.168.77.0/24"]);
  assertEquals(l.gateways.map(formatIPv4), ["192.168.77.1"]);
  assertEquals(parseLocalRoutes("not json"), { subnets: [], gateways: [] });
});

Deno.test(
  {
    name: "localNetwork() takes the underlay MTU for an IPv6 server behind a router",
    ignore: Deno.build.os !== "linux", // it reads Linux `ip -j` output only
  },
  async () => {
    const ok = (stdout: string) => ({ code: 0, stdout, stderr: "" });
    const runner = new RecordingRunner((argv) => {
      const line = argv.join(" ");
      if (line === "ip -j route show" || line === "ip -j -6 route show") return ok("[]");
      if (line.startsWith("ip -j route get")) {
        return ok(JSON.stringify([{ dst: "2001:db8::1", gateway: "fe80::1", dev: "eth0" }]));
      }
      if (line === "ip -j link show dev eth0") return ok(JSON.stringify([{ mtu: 1400 }]));
      return undefined;
    });
    const l = await localNetwork(runner, "2001:db8::1", "xvpn0");
    assertEquals(l.underlayMtu, 1400);
  },
);
