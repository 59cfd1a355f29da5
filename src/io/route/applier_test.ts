import {
  assert,
  assertEquals,
  assertRejects,
  assertThrows,
} from "../../../tests/support/assert.ts";
import { type Cidr, parseCidr, parseIPv4 } from "../../lib/ip.ts";
import { CommandError, type CommandResult, RecordingRunner } from "../command.ts";
import { parseLinuxRouteGet, parseMacosRouteGet, RouteApplier } from "./applier.ts";
import type { LinkState } from "./state.ts";

const cidr = (t: string): Cidr => parseCidr(t)!;
const ip = (t: string): number => parseIPv4(t)!;
const ok = (stdout = ""): CommandResult => ({ code: 0, stdout, stderr: "" });
const fail = (stderr: string): CommandResult => ({ code: 2, stdout: "", stderr });

/** Full tunnel whose original path to the server the applier must look up. */
const full: LinkState = {
  ifname: "xvpn0",
  address: cidr("10.7.0.2/24"),
  mtu: 1420,
  routes: [cidr("0.0.0.0/0"), cidr("10.7.0.0/24")],
  endpoint: { ip: ip("203.0.113.5") },
};

const split: LinkState = {
  ifname: "xvpn0",
  address: cidr("10.7.0.2/24"),
  mtu: 1420,
  routes: [cidr("10.99.0.0/16")],
};

const ROUTE_GET_JSON =
  '[{"dst":"203.0.113.5","gateway":"192.168.1.1","dev":"eth0","prefsrc":"192.168.1.20",' +
  '"flags":[],"uid":0,"cache":[]}]';

function linuxHost(failOn?: string): RecordingRunner {
  return new RecordingRunner((argv) => {
    const line = argv.join(" ");
    if (line === "ip -j route get 203.0.113.5") return ok(ROUTE_GET_JSON);
    if (failOn !== undefined && line === failOn) return fail("RTNETLINK answers: File exists");
    return undefined;
  });
}

Deno.test("RouteApplier.up() finds the endpoint's old route before changing anything", async () => {
  const runner = linuxHost();
  await new RouteApplier(runner, "linux").up(full);
  assertEquals(runner.transcript(), [
    "ip -j route get 203.0.113.5",
    "ip link set dev xvpn0 mtu 1420 txqueuelen 64",
    "ip address add 10.7.0.2/24 dev xvpn0",
    "ip link set dev xvpn0 up",
    "ip route add 203.0.113.5/32 via 192.168.1.1 dev eth0",
    "ip route add 0.0.0.0/1 dev xvpn0",
    "ip route add 128.0.0.0/1 dev xvpn0",
  ]);
});

Deno.test("RouteApplier.down() after up() removes exactly what up() added", async () => {
  const runner = linuxHost();
  const applier = new RouteApplier(runner, "linux");
  await applier.up(full);
  assert(applier.active);
  runner.calls.length = 0;
  await applier.down();
  assertEquals(runner.transcript(), [
    "ip route del 128.0.0.0/1 dev xvpn0",
    "ip route del 0.0.0.0/1 dev xvpn0",
    "ip route del 203.0.113.5/32 via 192.168.1.1 dev eth0",
    "ip link set dev xvpn0 down",
    "ip address del 10.7.0.2/24 dev xvpn0",
  ]);
  assert(!applier.active);
  runner.calls.length = 0;
  await applier.down(); // idempotent
  assertEquals(runner.transcript(), []);
});

Deno.test("RouteApplier.up() rolls back what succeeded and throws the CommandError", async () => {
  const runner = linuxHost("ip route add 128.0.0.0/1 dev xvpn0");
  const applier = new RouteApplier(runner, "linux");
  const err = await assertRejects(() => applier.up(full), CommandError) as CommandError;
  assertEquals(err.argv, ["ip", "route", "add", "128.0.0.0/1", "dev", "xvpn0"]);
  assertEquals(err.output, "RTNETLINK answers: File exists");
  assert(err.message.includes("ip route add 128.0.0.0/1 dev xvpn0"), err.message);
  assertEquals(runner.transcript().slice(6), [
    "ip route add 128.0.0.0/1 dev xvpn0",
    "ip route del 0.0.0.0/1 dev xvpn0",
    "ip route del 203.0.113.5/32 via 192.168.1.1 dev eth0",
    "ip link set dev xvpn0 down",
    "ip address del 10.7.0.2/24 dev xvpn0",
  ]);
  assert(!applier.active, "nothing left applied");
  runner.calls.length = 0;
  await applier.down();
  assertEquals(runner.transcript(), []);
});

Deno.test("RouteApplier keeps steps whose rollback failed for down() to retry", async () => {
  let brokenDel = true;
  const runner = new RecordingRunner((argv) => {
    const line = argv.join(" ");
    if (line === "ip route add 192.168.50.0/24 dev xvpn0") {
      return fail("Nexthop has invalid gateway");
    }
    if (line === "ip route del 10.99.0.0/16 dev xvpn0" && brokenDel) return fail("busy");
    return undefined;
  });
  const applier = new RouteApplier(runner, "linux");
  await assertRejects(
    () => applier.up({ ...split, routes: [cidr("10.99.0.0/16"), cidr("192.168.50.0/24")] }),
    CommandError,
    "Nexthop has invalid gateway",
  );
  assert(applier.active, "the route that could not be removed is still recorded");
  brokenDel = false;
  runner.calls.length = 0;
  await applier.down();
  assertEquals(runner.transcript(), ["ip route del 10.99.0.0/16 dev xvpn0"]);
});

Deno.test("RouteApplier.down() continues past failures and throws an AggregateError", async () => {
  const runner = new RecordingRunner((argv) =>
    argv[1] === "route" && argv[2] === "del"
      ? fail("RTNETLINK answers: No such process")
      : undefined
  );
  const applier = new RouteApplier(runner, "linux");
  await applier.up({ ...split, routes: [cidr("10.99.0.0/16"), cidr("192.168.50.0/24")] });
  runner.calls.length = 0;
  const err = await assertRejects(() => applier.down(), AggregateError) as AggregateError;
  assertEquals(err.errors.length, 2);
  assert(err.errors.every((e) => e instanceof CommandError));
  assert(err.message.includes("No such process"), err.message);
  assertEquals(runner.transcript(), [
    "ip route del 192.168.50.0/24 dev xvpn0",
    "ip route del 10.99.0.0/16 dev xvpn0",
    "ip link set dev xvpn0 down",
    "ip address del 10.7.0.2/24 dev xvpn0",
  ]);
  runner.calls.length = 0;
  await applier.down(); // nothing left to retry
  assertEquals(runner.transcript(), []);
});

Deno.test("RouteApplier.up() refuses to run twice without down()", async () => {
  const applier = new RouteApplier(new RecordingRunner(), "linux");
  await applier.up(split);
  await assertRejects(() => applier.up(split), Error, "already up");
});

Deno.test("RouteApplier.up() on Windows replays the golden netsh transcript", async () => {
  const runner = new RecordingRunner();
  const applier = new RouteApplier(runner, "windows");
  await applier.up({
    ...full,
    endpoint: { ip: ip("203.0.113.5"), gateway: ip("192.168.1.1"), dev: "Ethernet" },
  });
  await applier.down();
  assertEquals(runner.transcript(), [
    "netsh interface ipv4 set subinterface xvpn0 mtu=1420 store=active",
    "netsh interface ipv4 set interface xvpn0 metric=1 store=active",
    "netsh interface ipv4 add address name=xvpn0 address=10.7.0.2 mask=255.255.255.0 store=active",
    "netsh interface ipv4 add route prefix=203.0.113.5/32 interface=Ethernet " +
    "nexthop=192.168.1.1 store=active",
    "netsh interface ipv4 add route prefix=0.0.0.0/1 interface=xvpn0 store=active",
    "netsh interface ipv4 add route prefix=128.0.0.0/1 interface=xvpn0 store=active",
    "netsh interface ipv4 delete route prefix=128.0.0.0/1 interface=xvpn0 store=active",
    "netsh interface ipv4 delete route prefix=0.0.0.0/1 interface=xvpn0 store=active",
    "netsh interface ipv4 delete route prefix=203.0.113.5/32 interface=Ethernet " +
    "nexthop=192.168.1.1 store=active",
    "netsh interface ipv4 delete address name=xvpn0 address=10.7.0.2 store=active",
  ]);
  // Without the original route the applier asks Find-NetRoute first; with no answer, nothing
  // else runs (the lookup itself is windows_lookup_test.ts's).
  const idle = new RecordingRunner();
  await assertRejects(() => new RouteApplier(idle, "windows").up(full), Error, "no route");
  assertEquals(idle.calls.map((c) => c[0]), ["powershell"]);
});

Deno.test("RouteApplier.up() on macOS looks up the old route with route -n get", async () => {
  const runner = new RecordingRunner((argv) =>
    argv.join(" ") === "route -n get 203.0.113.5"
      ? ok(
        "   route to: 203.0.113.5\ndestination: default\n       mask: default\n" +
          "    gateway: 192.168.1.1\n  interface: en0\n" +
          "      flags: <UP,GATEWAY,DONE,STATIC,PRCLONING>\n",
      )
      : undefined
  );
  const applier = new RouteApplier(runner, "darwin");
  await applier.up({ ...full, ifname: "utun3" });
  await applier.down();
  assertEquals(runner.transcript(), [
    "route -n get 203.0.113.5",
    "ifconfig utun3 inet 10.7.0.2 10.7.0.2 netmask 255.255.255.0 mtu 1420 up",
    "route -n add -net 10.7.0.0/24 -interface utun3",
    "route -n add -host 203.0.113.5 192.168.1.1",
    "route -n add -net 0.0.0.0/1 -interface utun3",
    "route -n add -net 128.0.0.0/1 -interface utun3",
    "route -n delete -net 128.0.0.0/1 -interface utun3",
    "route -n delete -net 0.0.0.0/1 -interface utun3",
    "route -n delete -host 203.0.113.5 192.168.1.1",
    "route -n delete -net 10.7.0.0/24 -interface utun3",
    "ifconfig utun3 inet 10.7.0.2 -alias",
  ]);
});

Deno.test("parseLinuxRouteGet() reads gateway and device, and rejects IPv6 next hops", () => {
  assertEquals(parseLinuxRouteGet(ROUTE_GET_JSON), { gateway: ip("192.168.1.1"), dev: "eth0" });
  assertEquals(
    parseLinuxRouteGet('[{"dst":"192.168.1.7","dev":"eth0","prefsrc":"192.168.1.20"}]'),
    {
      dev: "eth0",
    },
  );
  assertThrows(
    () => parseLinuxRouteGet('[{"dst":"203.0.113.5","gateway":"fe80::1","dev":"eth0"}]'),
    Error,
    "IPv6 next hop",
  );
  assertThrows(() => parseLinuxRouteGet("[]"), Error, "unexpected output");
});

Deno.test("parseMacosRouteGet() treats a link# gateway as on-link", () => {
  assertEquals(parseMacosRouteGet("    gateway: link#4\n  interface: en0\n"), { dev: "en0" });
  assertThrows(() => parseMacosRouteGet("route: writing to routing socket: not in table"), Error);
});
