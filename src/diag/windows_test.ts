import { assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { RecordingRunner } from "../io/command.ts";
import { parseIPv4 } from "../lib/ip.ts";
import {
  interfaceAddressArgv,
  interfaceMtuArgv,
  parseInterfaceAddress,
  parseInterfaceMtu,
  parsePingStatuses,
  pingArgv,
  windowsPingCheck,
  windowsRouteDevice,
  windowsTunLink,
} from "./windows.ts";

/** What Windows PowerShell 5.1 prints for `Find-NetRoute ... | ConvertTo-Json` (a sample). */
const FIND_NET_ROUTE = `\uFEFF[
    {
        "InterfaceAlias":  "Wi-Fi",
        "NextHop":  null,
        "InterfaceIndex":  12,
        "IPAddress":  "192.168.1.23"
    },
    {
        "InterfaceAlias":  "Wi-Fi",
        "NextHop":  "192.168.1.1",
        "InterfaceIndex":  12,
        "IPAddress":  null
    }
]\r\n`;

Deno.test("diag on Windows: argv lists ask PowerShell, values quoted or refused", () => {
  const script = (argv: string[]) => argv[4]!;
  assertEquals(interfaceMtuArgv({ index: 12 }).slice(0, 4), [
    "powershell",
    "-NoProfile",
    "-NonInteractive",
    "-Command",
  ]);
  assertEquals(
    script(interfaceMtuArgv({ index: 12 })),
    "$ErrorActionPreference = 'Stop'; Get-NetIPInterface -InterfaceIndex 12 -AddressFamily " +
      "IPv4 | Select-Object -Property InterfaceAlias,NlMtu | ConvertTo-Json",
  );
  assertEquals(
    script(interfaceAddressArgv("xvpn0")),
    "$ErrorActionPreference = 'Stop'; Get-NetIPAddress -InterfaceAlias 'xvpn0' -AddressFamily " +
      "IPv4 | Select-Object -Property IPAddress,PrefixLength | ConvertTo-Json",
  );
  assertEquals(
    script(pingArgv("10.201.0.1", 1312, true)),
    "$ErrorActionPreference = 'Stop'; $p = New-Object System.Net.NetworkInformation.Ping; " +
      "$o = New-Object System.Net.NetworkInformation.PingOptions(64, $true); " +
      "$b = New-Object byte[] 1312; $r = @(1..3 | ForEach-Object { if ($_ -gt 1) " +
      "{ Start-Sleep -Milliseconds 200 }; try { $p.Send('10.201.0.1', 1000, $b, $o).Status." +
      "ToString() } catch { 'Exception' } }); ConvertTo-Json -InputObject $r",
  );
  assertEquals(script(pingArgv("10.201.0.1", 56, false)).includes("PingOptions(64, $false)"), true);
  assertThrows(() => interfaceAddressArgv("x'; Remove-Item C:\\"), Error, "bad Windows adapter");
  assertThrows(() => pingArgv("10.0.0.1'; calc", 56, true), Error, "refusing");
  assertThrows(() => pingArgv("10.0.0.1", 70000, true), RangeError);
});

Deno.test("diag on Windows: the outputs PowerShell prints are parsed, odd ones are unknown", () => {
  assertEquals(
    parseInterfaceMtu('{\r\n    "InterfaceAlias":  "Wi-Fi",\r\n    "NlMtu":  1500\r\n}\r\n'),
    { alias: "Wi-Fi", mtu: 1500 },
  );
  // Two objects (an interface seen twice): the first.
  assertEquals(parseInterfaceMtu('[{"NlMtu": 1420}, {"NlMtu": 1500}]'), { mtu: 1420 });
  assertEquals(parseInterfaceMtu(""), undefined);
  assertEquals(
    parseInterfaceMtu("Get-NetIPInterface : No MSFT_NetIPInterface objects found"),
    undefined,
  );
  assertEquals(parseInterfaceMtu('{"NlMtu": "1500"}'), undefined, "not a number");
  assertEquals(
    parseInterfaceAddress('{ "IPAddress": "10.201.0.2", "PrefixLength": 24 }'),
    { addr: parseIPv4("10.201.0.2")!, prefix: 24 },
  );
  assertEquals(parseInterfaceAddress('{ "IPAddress": "fe80::1", "PrefixLength": 64 }'), undefined);
  assertEquals(
    parseInterfaceAddress(
      '[{ "IPAddress": "169.254.7.9", "PrefixLength": 16 }, ' +
        '{ "IPAddress": "10.201.0.2", "PrefixLength": 24 }]',
    ),
    { addr: parseIPv4("10.201.0.2")!, prefix: 24 },
    "an APIPA address is passed over",
  );
  assertEquals(parsePingStatuses('[\r\n    "Success",\r\n    "Success",\r\n    "Success"\r\n]'), {
    sent: 3,
    received: 3,
    ok: true,
  });
  assertEquals(parsePingStatuses('["PacketTooBig", "PacketTooBig", "PacketTooBig"]'), {
    sent: 3,
    received: 0,
    ok: false,
    error: "PacketTooBig",
  });
  assertEquals(parsePingStatuses('["Success", "TimedOut", "Success"]').error, "TimedOut");
  assertEquals(parsePingStatuses("garbage"), { sent: 0, received: 0, ok: false });
});

Deno.test("diag on Windows: the route's device and MTU, the tunnel adapter, a ping check", async () => {
  const runner = new RecordingRunner((argv) => {
    const s = argv[4] ?? "";
    if (s.includes("Find-NetRoute")) return { code: 0, stdout: FIND_NET_ROUTE, stderr: "" };
    if (s.includes("-InterfaceIndex 12")) {
      return { code: 0, stdout: '{"InterfaceAlias": "Wi-Fi", "NlMtu": 1500}', stderr: "" };
    }
    if (s.includes("Get-NetIPInterface -InterfaceAlias 'xvpn0'")) {
      return { code: 0, stdout: '{"InterfaceAlias": "xvpn0", "NlMtu": 1420}', stderr: "" };
    }
    if (s.includes("Get-NetIPAddress -InterfaceAlias 'xvpn0'")) {
      return { code: 0, stdout: '{"IPAddress": "10.201.0.2", "PrefixLength": 24}', stderr: "" };
    }
    if (s.includes("-InterfaceAlias 'gone0'")) {
      return { code: 1, stdout: "", stderr: "No MSFT_NetIPInterface objects found" };
    }
    if (s.includes("byte[] 1393")) {
      return { code: 0, stdout: '["PacketTooBig","PacketTooBig","PacketTooBig"]', stderr: "" };
    }
    return undefined;
  });
  assertEquals(await windowsRouteDevice(runner, "203.0.113.7"), { name: "Wi-Fi", mtu: 1500 });
  assertEquals(await windowsTunLink(runner, "xvpn0"), {
    mtu: 1420,
    address: { addr: parseIPv4("10.201.0.2")!, prefix: 24 },
  });
  assertEquals(await windowsTunLink(runner, "gone0"), undefined, "no such adapter: no tunnel");
  const check = await windowsPingCheck(runner, "10.201.0.1", {
    packet: 1421,
    df: true,
    label: "one byte over",
  });
  assertEquals(check, {
    packet: 1421,
    df: true,
    label: "one byte over",
    payload: 1393,
    sent: 3,
    received: 0,
    ok: false,
    error: "PacketTooBig",
  });
  // No powershell at all (the fake-wintun hook on Linux): unknown, never a throw.
  const none = {
    run: () => Promise.reject(new Deno.errors.NotFound("powershell")),
  };
  assertEquals(await windowsRouteDevice(none, "203.0.113.7"), undefined);
  assertEquals(await windowsTunLink(none, "xvpn0"), undefined);
  assertEquals(
    (await windowsPingCheck(none, "10.201.0.1", { packet: 84, df: true, label: "small" })).error,
    "the PowerShell ping did not run",
  );
});
