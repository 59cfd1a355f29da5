import { assertEquals, assertThrows } from "../../../tests/support/assert.ts";
import { type Cidr, parseCidr, parseIPv4 } from "../../lib/ip.ts";
import { planLinuxDown, planLinuxUp } from "./linux.ts";
import { planMacosDown, planMacosUp } from "./macos.ts";
import type { LinkState } from "./state.ts";
import { planWindowsDown, planWindowsUp } from "./windows.ts";

const cidr = (t: string): Cidr => parseCidr(t)!;
const ip = (t: string): number => parseIPv4(t)!;
const lines = (plan: string[][]): string[] => plan.map((argv) => argv.join(" "));

/** Split tunnel: the connected subnet is listed too, and must be skipped. */
const split: LinkState = {
  ifname: "xvpn0",
  address: cidr("10.7.0.2/24"),
  mtu: 1420,
  routes: [cidr("10.7.0.0/24"), cidr("10.99.0.0/16"), cidr("192.168.50.0/24")],
};

/** Full tunnel with the original path to the server known. */
const full: LinkState = {
  ifname: "xvpn0",
  address: cidr("10.7.0.2/24"),
  mtu: 1420,
  routes: [cidr("0.0.0.0/0")],
  endpoint: { ip: ip("203.0.113.5"), gateway: ip("192.168.1.1"), dev: "eth0" },
};

Deno.test("planLinuxUp() installs split routes and skips the connected subnet", () => {
  assertEquals(lines(planLinuxUp(split)), [
    "ip link set dev xvpn0 mtu 1420 txqueuelen 64",
    "ip address add 10.7.0.2/24 dev xvpn0",
    "ip link set dev xvpn0 up",
    "ip route add 10.99.0.0/16 dev xvpn0",
    "ip route add 192.168.50.0/24 dev xvpn0",
  ]);
});

Deno.test("planLinuxUp() gives a server's TUN the longer queue it asks for", () => {
  const server = { ...split, routes: [], txqueuelen: 1000 };
  assertEquals(lines(planLinuxUp(server))[0], "ip link set dev xvpn0 mtu 1420 txqueuelen 1000");
});

Deno.test("planLinuxDown() undoes the split plan in reverse order", () => {
  assertEquals(lines(planLinuxDown(split)), [
    "ip route del 192.168.50.0/24 dev xvpn0",
    "ip route del 10.99.0.0/16 dev xvpn0",
    "ip link set dev xvpn0 down",
    "ip address del 10.7.0.2/24 dev xvpn0",
  ]);
});

Deno.test("planLinuxUp() routes the endpoint via the old gateway, then the two halves", () => {
  assertEquals(lines(planLinuxUp(full)), [
    "ip link set dev xvpn0 mtu 1420 txqueuelen 64",
    "ip address add 10.7.0.2/24 dev xvpn0",
    "ip link set dev xvpn0 up",
    "ip route add 203.0.113.5/32 via 192.168.1.1 dev eth0",
    "ip route add 0.0.0.0/1 dev xvpn0",
    "ip route add 128.0.0.0/1 dev xvpn0",
  ]);
  assertEquals(lines(planLinuxDown(full)), [
    "ip route del 128.0.0.0/1 dev xvpn0",
    "ip route del 0.0.0.0/1 dev xvpn0",
    "ip route del 203.0.113.5/32 via 192.168.1.1 dev eth0",
    "ip link set dev xvpn0 down",
    "ip address del 10.7.0.2/24 dev xvpn0",
  ]);
});

Deno.test("planLinuxUp() never installs 0.0.0.0/0 and drops duplicates and host bits", () => {
  const s: LinkState = {
    ...full,
    routes: [cidr("0.0.0.0/0"), cidr("0.0.0.0/1"), cidr("10.99.1.2/16"), cidr("10.99.0.0/16")],
    endpoint: { ip: ip("203.0.113.5"), dev: "eth0" }, // on-link server: no gateway
  };
  assertEquals(lines(planLinuxUp(s)).slice(3), [
    "ip route add 203.0.113.5/32 dev eth0",
    "ip route add 0.0.0.0/1 dev xvpn0",
    "ip route add 128.0.0.0/1 dev xvpn0",
    "ip route add 10.99.0.0/16 dev xvpn0",
  ]);
});

Deno.test("planLinuxUp() adds an endpoint host route when a split route covers the server", () => {
  const s: LinkState = {
    ...split,
    endpoint: { ip: ip("10.99.3.4"), gateway: ip("192.168.1.1"), dev: "eth0" },
  };
  assertEquals(lines(planLinuxUp(s)).slice(3), [
    "ip route add 10.99.3.4/32 via 192.168.1.1 dev eth0",
    "ip route add 10.99.0.0/16 dev xvpn0",
    "ip route add 192.168.50.0/24 dev xvpn0",
  ]);
  // A server outside every tunnel route needs nothing.
  const outside = { ...split, endpoint: { ip: ip("203.0.113.5") } };
  assertEquals(planLinuxUp(outside).length, 5);
});

Deno.test("planLinuxUp() refuses a full tunnel that would cut off the server", () => {
  assertThrows(() => planLinuxUp({ ...full, endpoint: undefined }), Error, "needs the server");
  assertThrows(
    () => planLinuxUp({ ...full, endpoint: { ip: ip("203.0.113.5") } }),
    Error,
    "route to the server 203.0.113.5 is unknown",
  );
  assertThrows(
    () => planLinuxUp({ ...full, endpoint: { ip: ip("203.0.113.5"), dev: "xvpn0" } }),
    Error,
    "already routed through xvpn0",
  );
  assertThrows(() => planLinuxUp({ ...split, mtu: 20 }), Error, "outside 68..65535");
  assertThrows(() => planLinuxUp({ ...split, ifname: "bad name" }), Error, "whitespace");
});

Deno.test("planWindowsUp() sets MTU, address and split routes with netsh", () => {
  assertEquals(lines(planWindowsUp(split)), [
    "netsh interface ipv4 set subinterface xvpn0 mtu=1420 store=active",
    "netsh interface ipv4 set interface xvpn0 metric=1 store=active",
    "netsh interface ipv4 add address name=xvpn0 address=10.7.0.2 mask=255.255.255.0 store=active",
    "netsh interface ipv4 add route prefix=10.99.0.0/16 interface=xvpn0 store=active",
    "netsh interface ipv4 add route prefix=192.168.50.0/24 interface=xvpn0 store=active",
  ]);
  assertEquals(lines(planWindowsDown(split)), [
    "netsh interface ipv4 delete route prefix=192.168.50.0/24 interface=xvpn0 store=active",
    "netsh interface ipv4 delete route prefix=10.99.0.0/16 interface=xvpn0 store=active",
    "netsh interface ipv4 delete address name=xvpn0 address=10.7.0.2 store=active",
  ]);
});

Deno.test("planWindowsUp() routes the endpoint via the old gateway, then the two halves", () => {
  const s: LinkState = { ...full, endpoint: { ...full.endpoint!, dev: "Ethernet 2" } };
  assertEquals(lines(planWindowsUp(s)), [
    "netsh interface ipv4 set subinterface xvpn0 mtu=1420 store=active",
    "netsh interface ipv4 set interface xvpn0 metric=1 store=active",
    "netsh interface ipv4 add address name=xvpn0 address=10.7.0.2 mask=255.255.255.0 store=active",
    "netsh interface ipv4 add route prefix=203.0.113.5/32 interface=Ethernet 2 " +
    "nexthop=192.168.1.1 store=active",
    "netsh interface ipv4 add route prefix=0.0.0.0/1 interface=xvpn0 store=active",
    "netsh interface ipv4 add route prefix=128.0.0.0/1 interface=xvpn0 store=active",
  ]);
  // The interface name with a space stays one argv element.
  assertEquals(planWindowsUp(s)[3]![6], "interface=Ethernet 2");
  assertEquals(lines(planWindowsDown(s)), [
    "netsh interface ipv4 delete route prefix=128.0.0.0/1 interface=xvpn0 store=active",
    "netsh interface ipv4 delete route prefix=0.0.0.0/1 interface=xvpn0 store=active",
    "netsh interface ipv4 delete route prefix=203.0.113.5/32 interface=Ethernet 2 " +
    "nexthop=192.168.1.1 store=active",
    "netsh interface ipv4 delete address name=xvpn0 address=10.7.0.2 store=active",
  ]);
});

Deno.test("planWindowsUp() needs the endpoint's interface for a full tunnel", () => {
  const s: LinkState = { ...full, endpoint: { ip: ip("203.0.113.5"), gateway: ip("192.168.1.1") } };
  assertThrows(() => planWindowsUp(s), Error, "needs its interface (endpoint.dev)");
});

Deno.test("planMacosUp() configures the utun and routes its subnet and split routes", () => {
  const s: LinkState = { ...split, ifname: "utun3" };
  assertEquals(lines(planMacosUp(s)), [
    "ifconfig utun3 inet 10.7.0.2 10.7.0.2 netmask 255.255.255.0 mtu 1420 up",
    "route -n add -net 10.7.0.0/24 -interface utun3",
    "route -n add -net 10.99.0.0/16 -interface utun3",
    "route -n add -net 192.168.50.0/24 -interface utun3",
  ]);
  assertEquals(lines(planMacosDown(s)), [
    "route -n delete -net 192.168.50.0/24 -interface utun3",
    "route -n delete -net 10.99.0.0/16 -interface utun3",
    "route -n delete -net 10.7.0.0/24 -interface utun3",
    "ifconfig utun3 inet 10.7.0.2 -alias",
  ]);
});

Deno.test("planMacosUp() routes the endpoint via the old gateway, then the two halves", () => {
  const s: LinkState = { ...full, ifname: "utun3", address: cidr("10.7.0.2/32") };
  assertEquals(lines(planMacosUp(s)), [
    "ifconfig utun3 inet 10.7.0.2 10.7.0.2 netmask 255.255.255.255 mtu 1420 up",
    "route -n add -host 203.0.113.5 192.168.1.1",
    "route -n add -net 0.0.0.0/1 -interface utun3",
    "route -n add -net 128.0.0.0/1 -interface utun3",
  ]);
  assertEquals(lines(planMacosDown(s)), [
    "route -n delete -net 128.0.0.0/1 -interface utun3",
    "route -n delete -net 0.0.0.0/1 -interface utun3",
    "route -n delete -host 203.0.113.5 192.168.1.1",
    "ifconfig utun3 inet 10.7.0.2 -alias",
  ]);
  const onLink: LinkState = { ...s, endpoint: { ip: ip("203.0.113.5"), dev: "en0" } };
  assertEquals(lines(planMacosUp(onLink))[1], "route -n add -host 203.0.113.5 -interface en0");
});

Deno.test("linux plan: a full tunnel keeps the client's other nodes outside it, the endpoint's way", () => {
  const cmds = planLinuxUp({
    ifname: "xvpn0",
    address: { addr: parseIPv4("10.7.0.2")!, prefix: 24 },
    mtu: 1420,
    routes: [{ addr: 0, prefix: 0 }],
    endpoint: { ip: parseIPv4("203.0.113.1")!, gateway: parseIPv4("192.168.1.1")!, dev: "eth0" },
    bypass: [parseIPv4("203.0.113.1")!, parseIPv4("198.51.100.9")!],
  });
  const adds = cmds.map((c) => c.join(" ")).filter((c) => c.includes("/32"));
  assertEquals(adds, [
    "ip route add 203.0.113.1/32 via 192.168.1.1 dev eth0",
    "ip route add 198.51.100.9/32 via 192.168.1.1 dev eth0",
  ]);
});
