/**
 * Find-NetRoute's output, written from Microsoft's documented example (two objects: the local
 * address, then the route) as `Select-Object ... | ConvertTo-Json` prints it, and the
 * applier using it on Windows.
 */
import { assertEquals, assertRejects, assertThrows } from "../../../tests/support/assert.ts";
import { parseCidr, parseIPv4 } from "../../lib/ip.ts";
import { parseIPv6 } from "../../lib/ip6.ts";
import { type CommandResult, RecordingRunner } from "../command.ts";
import { RouteApplier } from "./applier.ts";
import type { LinkState } from "./state.ts";
import {
  findNetRouteArgv,
  parseFindNetRoute,
  windowsOriginalRoute,
  windowsOriginalRoute6,
} from "./windows_lookup.ts";

/** Windows PowerShell 5.1's ConvertTo-Json layout (four-space indent, CRLF). */
const VIA_GATEWAY = [
  "[",
  "    {",
  '        "InterfaceAlias":  "Ethernet",',
  '        "NextHop":  null,',
  '        "InterfaceIndex":  3,',
  '        "IPAddress":  "172.31.234.140"',
  "    },",
  "    {",
  '        "InterfaceAlias":  "Ethernet",',
  '        "NextHop":  "172.31.232.1",',
  '        "InterfaceIndex":  3,',
  '        "IPAddress":  null',
  "    }",
  "]",
].join("\r\n") + "\r\n";

/** An on-link destination: the route's next hop is 0.0.0.0; one object, compressed. */
const ON_LINK = "\uFEFF" +
  '[{"InterfaceAlias":"Wi-Fi","NextHop":null,"InterfaceIndex":14,"IPAddress":"192.168.1.20"},' +
  '{"InterfaceAlias":"Wi-Fi","NextHop":"0.0.0.0","InterfaceIndex":14,"IPAddress":null}]';

const V6 = '[{"InterfaceAlias":"Wi-Fi","NextHop":null,"InterfaceIndex":14,' +
  '"IPAddress":"2001:db8:1::20"},' +
  '{"InterfaceAlias":"Wi-Fi","NextHop":"fe80::1","InterfaceIndex":14,"IPAddress":null}]';

const ok = (stdout: string): CommandResult => ({ code: 0, stdout, stderr: "" });

Deno.test("findNetRouteArgv() asks PowerShell with a checked, quoted address", () => {
  assertEquals(findNetRouteArgv("203.0.113.5"), [
    "powershell",
    "-NoProfile",
    "-NonInteractive",
    "-Command",
    "$ErrorActionPreference = 'Stop'; Find-NetRoute -RemoteIPAddress '203.0.113.5' | " +
    "Select-Object -Property InterfaceAlias,NextHop,InterfaceIndex,IPAddress | ConvertTo-Json",
  ]);
  assertEquals(findNetRouteArgv("2001:DB8::0:1").at(-1)!.includes("'2001:db8::1'"), true);
  assertThrows(() => findNetRouteArgv("1.2.3.4'; calc"), Error, "not an IP address");
});

Deno.test("parseFindNetRoute() takes interface and next hop from the route object", () => {
  assertEquals(parseFindNetRoute(VIA_GATEWAY), {
    ifIndex: 3,
    alias: "Ethernet",
    nextHop: "172.31.232.1",
    source: "172.31.234.140",
  });
  assertEquals(parseFindNetRoute(ON_LINK), { ifIndex: 14, alias: "Wi-Fi", source: "192.168.1.20" });
  // Only the address object (no route printed): still the interface, no next hop.
  assertEquals(
    parseFindNetRoute(
      '{"InterfaceAlias":"Ethernet","NextHop":null,"InterfaceIndex":3,' +
        '"IPAddress":"10.0.0.5"}',
    ),
    { ifIndex: 3, alias: "Ethernet", source: "10.0.0.5" },
  );
  assertEquals(parseFindNetRoute("\r\n"), undefined);
  assertThrows(() => parseFindNetRoute("Find-NetRoute : The term..."), Error, "unexpected output");
  assertThrows(() => parseFindNetRoute('[{"NextHop":"1.2.3.4"}]'), Error, "no interface index");
});

Deno.test("windowsOriginalRoute() gives the index as dev and refuses our own adapter", () => {
  const found = parseFindNetRoute(VIA_GATEWAY)!;
  assertEquals(windowsOriginalRoute(found, "203.0.113.5", "xvpn0"), {
    dev: "3",
    gateway: parseIPv4("172.31.232.1"),
  });
  assertEquals(windowsOriginalRoute(parseFindNetRoute(ON_LINK)!, "192.168.1.7", "xvpn0"), {
    dev: "14",
  });
  assertThrows(
    () => windowsOriginalRoute({ ...found, alias: "xvpn0" }, "203.0.113.5", "xvpn0"),
    Error,
    "already routed through xvpn0",
  );
  assertThrows(
    () => windowsOriginalRoute(parseFindNetRoute(V6)!, "203.0.113.5", "xvpn0"),
    Error,
    "IPv6 next hop",
  );
  assertEquals(windowsOriginalRoute6(parseFindNetRoute(V6)!, "2001:db8:5::1", "xvpn0"), {
    dev: "14",
    gateway: parseIPv6("fe80::1"),
  });
});

Deno.test("RouteApplier on Windows looks the server's way up with Find-NetRoute", async () => {
  const s: LinkState = {
    ifname: "xvpn0",
    address: parseCidr("10.7.0.2/24")!,
    mtu: 1420,
    routes: [parseCidr("0.0.0.0/0")!],
    endpoint: { ip: parseIPv4("203.0.113.5")! },
  };
  const runner = new RecordingRunner((argv) =>
    argv[0] === "powershell" ? ok(VIA_GATEWAY) : undefined
  );
  await new RouteApplier(runner, "windows").up(s);
  assertEquals(runner.calls[0], findNetRouteArgv("203.0.113.5"));
  assertEquals(
    runner.transcript()[4],
    "netsh interface ipv4 add route prefix=203.0.113.5/32 interface=3 nexthop=172.31.232.1 " +
      "store=active",
  );
  // The way to the server is our own adapter: refused before anything changes.
  const looped = new RecordingRunner(() => ok(VIA_GATEWAY.replaceAll('"Ethernet"', '"xvpn0"')));
  await assertRejects(() => new RouteApplier(looped, "windows").up(s), Error, "already routed");
  assertEquals(looped.calls.length, 1);
});
