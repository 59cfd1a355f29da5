/**
 * The Windows plan's rules beyond the golden transcripts: bypass routes, IPv6 carried or
 * blocked, what it refuses, and the name checks.
 */
import { assert, assertEquals, assertThrows } from "../../../tests/support/assert.ts";
import { type Cidr, parseCidr, parseIPv4 } from "../../lib/ip.ts";
import { type Cidr6, parseCidr6, parseIPv6 } from "../../lib/ip6.ts";
import type { LinkState } from "./state.ts";
import { planWindowsDown, planWindowsUp } from "./windows.ts";
import { invalidWindowsIfnameReason, psQuote } from "./windows_args.ts";

const cidr = (t: string): Cidr => parseCidr(t)!;
const cidr6 = (t: string): Cidr6 => parseCidr6(t)!;
const ip = (t: string): number => parseIPv4(t)!;
const lines = (plan: string[][]): string[] => plan.map((argv) => argv.join(" "));

const full: LinkState = {
  ifname: "xvpn0",
  address: cidr("10.7.0.2/24"),
  mtu: 1420,
  routes: [cidr("0.0.0.0/0")],
  endpoint: { ip: ip("203.0.113.5"), gateway: ip("192.168.1.1"), dev: "12" },
};

Deno.test("planWindowsUp() keeps the other nodes outside a full tunnel, the endpoint's way", () => {
  const s: LinkState = { ...full, bypass: [ip("203.0.113.5"), ip("198.51.100.9")] };
  const hosts = lines(planWindowsUp(s)).filter((l) => l.includes("/32"));
  assertEquals(hosts, [
    "netsh interface ipv4 add route prefix=203.0.113.5/32 interface=12 nexthop=192.168.1.1 " +
    "store=active",
    "netsh interface ipv4 add route prefix=198.51.100.9/32 interface=12 nexthop=192.168.1.1 " +
    "store=active",
  ]);
  // Each has its undo, in reverse order.
  assertEquals(lines(planWindowsDown(s)).filter((l) => l.includes("/32")), [
    "netsh interface ipv4 delete route prefix=198.51.100.9/32 interface=12 nexthop=192.168.1.1 " +
    "store=active",
    "netsh interface ipv4 delete route prefix=203.0.113.5/32 interface=12 nexthop=192.168.1.1 " +
    "store=active",
  ]);
  // A split tunnel that does not cover the server needs no host routes, bypass or not.
  const split: LinkState = { ...s, routes: [cidr("10.99.0.0/16")] };
  assertEquals(lines(planWindowsUp(split)).filter((l) => l.includes("/32")), []);
});

Deno.test("planWindowsUp() installs 0.0.0.0/0 as its halves, never itself", () => {
  const all = lines(planWindowsUp(full));
  assert(all.some((l) => l.includes("prefix=0.0.0.0/1 interface=xvpn0")));
  assert(all.some((l) => l.includes("prefix=128.0.0.0/1 interface=xvpn0")));
  assert(!all.some((l) => l.includes("0.0.0.0/0")));
});

Deno.test("planWindowsUp() carries IPv6: settings, address, ::/0 as halves", () => {
  const s: LinkState = {
    ...full,
    address6: cidr6("fd00:7::2/64"),
    routes6: [cidr6("::/0"), cidr6("2001:db8::/32")],
  };
  const six = lines(planWindowsUp(s)).filter((l) => l.includes(" ipv6 "));
  assertEquals(six, [
    "netsh interface ipv6 set subinterface xvpn0 mtu=1420 store=active",
    "netsh interface ipv6 set interface xvpn0 metric=1 routerdiscovery=disabled " +
    "managedaddress=disabled otherstateful=disabled dadtransmits=0 store=active",
    "netsh interface ipv6 add address interface=xvpn0 address=fd00:7::2/64 store=active",
    "netsh interface ipv6 add route prefix=::/1 interface=xvpn0 store=active",
    "netsh interface ipv6 add route prefix=8000::/1 interface=xvpn0 store=active",
    "netsh interface ipv6 add route prefix=2001:db8::/32 interface=xvpn0 store=active",
  ]);
  assertThrows(() => planWindowsUp({ ...s, mtu: 1200 }), Error, "below 1280");
});

Deno.test("planWindowsUp() blocks IPv6 by routing the halves into the address-less adapter", () => {
  const s: LinkState = { ...full, blockIPv6: true };
  const six = lines(planWindowsUp(s)).filter((l) => l.includes(" ipv6 "));
  assertEquals(six, [
    "netsh interface ipv6 add route prefix=::/1 interface=xvpn0 store=active",
    "netsh interface ipv6 add route prefix=8000::/1 interface=xvpn0 store=active",
  ]);
  // The block is undone like any route; and when IPv6 is carried, there is nothing to block.
  assertEquals(lines(planWindowsDown(s)).slice(0, 2), [
    "netsh interface ipv6 delete route prefix=8000::/1 interface=xvpn0 store=active",
    "netsh interface ipv6 delete route prefix=::/1 interface=xvpn0 store=active",
  ]);
  const carried = { ...s, address6: cidr6("fd00:7::2/64"), routes6: [cidr6("2001:db8::/32")] };
  assert(!lines(planWindowsUp(carried)).some((l) => l.includes("8000::/1")));
});

Deno.test("planWindowsUp() keeps an IPv6 server outside IPv6 routes, and needs its interface", () => {
  const ep6 = { ip6: parseIPv6("2001:db8:5::1")!, gateway: parseIPv6("fe80::1")!, dev: "7" };
  const s: LinkState = {
    ...full,
    endpoint: undefined,
    serverOverIPv6: true,
    blockIPv6: true,
    endpoint6: ep6,
  };
  assert(
    lines(planWindowsUp(s)).includes(
      "netsh interface ipv6 add route prefix=2001:db8:5::1/128 interface=7 nexthop=fe80::1 " +
        "store=active",
    ),
  );
  // No IPv6 routes and no block: the server's traffic is not swallowed, no /128.
  assert(!lines(planWindowsUp({ ...s, blockIPv6: false })).some((l) => l.includes("/128")));
  const noDev = { ...s, endpoint6: { ip6: ep6.ip6, gateway: ep6.gateway } };
  assertThrows(() => planWindowsUp(noDev), Error, "needs its interface (endpoint6.dev)");
});

Deno.test("planWindowsUp() refuses names no Windows tokenizer takes safely", () => {
  assertThrows(() => planWindowsUp({ ...full, ifname: 'xvpn"0' }), Error, "bad Windows tunnel");
  assertThrows(
    () => planWindowsUp({ ...full, endpoint: { ...full.endpoint!, dev: "Wi-Fi & more" } }),
    Error,
    "bad Windows server interface",
  );
  for (const ok of ["xvpn0", "Ethernet 2", "Wi-Fi", "12", "my_vpn.1"]) {
    assertEquals(invalidWindowsIfnameReason(ok), undefined, ok);
  }
  for (const bad of ["", " x", "x ", "a'b", "a\u2019b", "a%b", "a^b", "a|b", "a;b", "a$b", "é"]) {
    assert(invalidWindowsIfnameReason(bad) !== undefined, bad);
  }
  assert(invalidWindowsIfnameReason("x".repeat(128))!.includes("longer than 127"));
  assertEquals(psQuote("fd00::1"), "'fd00::1'");
  assertThrows(() => psQuote("x'; Remove-Item C:\\"), Error, "refusing");
});
