import { assertEquals } from "../../../tests/support/assert.ts";
import { formatCidr, formatIPv4 } from "../../lib/ip.ts";
import { parseLocalRoutes } from "./local.ts";

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
