import { assertEquals } from "../../../tests/support/assert.ts";
import { RecordingRunner } from "../command.ts";
import { formatCidr, parseIPv4 } from "../../lib/ip.ts";
import { formatCidr6 } from "../../lib/ip6.ts";
import { localNetwork } from "./local.ts";
import { parseWindowsRoutes4, parseWindowsRoutes6, windowsRoutesArgv } from "./windows_local.ts";

// `Get-NetRoute ... | Select-Object DestinationPrefix,NextHop,InterfaceAlias | ConvertTo-Json`
// as Windows prints it (one object per route; fields as documented for MSFT_NetRoute).
const ROUTES4 = JSON.stringify([
  { DestinationPrefix: "255.255.255.255/32", NextHop: "0.0.0.0", InterfaceAlias: "Wi-Fi" },
  { DestinationPrefix: "224.0.0.0/4", NextHop: "0.0.0.0", InterfaceAlias: "Wi-Fi" },
  { DestinationPrefix: "192.168.1.255/32", NextHop: "0.0.0.0", InterfaceAlias: "Wi-Fi" },
  { DestinationPrefix: "192.168.1.23/32", NextHop: "0.0.0.0", InterfaceAlias: "Wi-Fi" },
  { DestinationPrefix: "192.168.1.0/24", NextHop: "0.0.0.0", InterfaceAlias: "Wi-Fi" },
  { DestinationPrefix: "10.7.0.0/24", NextHop: "0.0.0.0", InterfaceAlias: "xvpn0" },
  {
    DestinationPrefix: "127.0.0.0/8",
    NextHop: "0.0.0.0",
    InterfaceAlias: "Loopback Pseudo-Interface 1",
  },
  { DestinationPrefix: "0.0.0.0/0", NextHop: "192.168.1.1", InterfaceAlias: "Wi-Fi" },
  { DestinationPrefix: "0.0.0.0/1", NextHop: "0.0.0.0", InterfaceAlias: "xvpn0" },
]);
const ROUTES6 = JSON.stringify([
  { DestinationPrefix: "ff00::/8", NextHop: "::", InterfaceAlias: "Wi-Fi" },
  { DestinationPrefix: "fe80::/64", NextHop: "::", InterfaceAlias: "Wi-Fi" },
  { DestinationPrefix: "2001:db8:1:2::/64", NextHop: "::", InterfaceAlias: "Wi-Fi" },
  { DestinationPrefix: "::/0", NextHop: "fe80::1", InterfaceAlias: "Wi-Fi" },
]);

Deno.test("windows local network: on-link subnets and default gateways, the tunnel left out", () => {
  const r = parseWindowsRoutes4(ROUTES4, "xvpn0");
  assertEquals(r.subnets.map(formatCidr), ["192.168.1.0/24"]);
  assertEquals(r.gateways, [parseIPv4("192.168.1.1")!]);
  // One route: ConvertTo-Json prints an object, not an array.
  const one = JSON.stringify({ DestinationPrefix: "0.0.0.0/0", NextHop: "10.0.0.1" });
  assertEquals(parseWindowsRoutes4(one).gateways, [parseIPv4("10.0.0.1")!]);
  assertEquals(parseWindowsRoutes4("not json"), { subnets: [], gateways: [] });
});

Deno.test("windows local network: IPv6 of its own is a default route outside the tunnel", () => {
  const r = parseWindowsRoutes6(ROUTES6, "xvpn0");
  assertEquals(r.subnets6.map(formatCidr6), ["2001:db8:1:2::/64"]);
  assertEquals(r.hasIPv6, true);
  const onlyTunnel = JSON.stringify([{
    DestinationPrefix: "::/0",
    NextHop: "::",
    InterfaceAlias: "xvpn0",
  }]);
  assertEquals(parseWindowsRoutes6(onlyTunnel, "xvpn0").hasIPv6, false);
});

Deno.test("localNetwork on Windows asks Get-NetRoute per family (a failure is nothing known)", async () => {
  const runner = new RecordingRunner((argv) => {
    const cmd = argv.at(-1)!;
    if (cmd.includes("IPv4")) return { code: 0, stdout: ROUTES4, stderr: "" };
    return { code: 1, stdout: "", stderr: "Get-NetRoute : access denied" };
  });
  const n = await localNetwork(runner, "203.0.113.5", "xvpn0", "windows");
  assertEquals(runner.calls, [windowsRoutesArgv("IPv4"), windowsRoutesArgv("IPv6")]);
  assertEquals(n.subnets.map(formatCidr), ["192.168.1.0/24"]);
  assertEquals(n.hasIPv6, false);
});
