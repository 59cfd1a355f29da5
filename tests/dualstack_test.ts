/**
 * IPv6 inside the tunnel, root-free: the cores over the in-memory link with an IPv6 pool
 * beside the IPv4 one, the config push carrying both, the server routing by its pool6 and
 * checking IPv6 sources, the client checking them against what it routes, and the packet
 * helpers (ECN, MSS, flow hash) on IPv6 headers.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { Pair } from "./support/pair.ts";
import { udp6Packet, udpPacket } from "./support/packets.ts";
import { parseIPv4 } from "../src/lib/ip.ts";
import { formatCidr6, formatIPv6, parseCidr6, parseIPv6 } from "../src/lib/ip6.ts";
import { decodeConfigPush, encodeConfigPush } from "../src/core/control.ts";
import { ecnOf, markCe } from "../src/lib/ecn.ts";
import { clampMss } from "../src/core/mss.ts";
import { flowHash } from "../src/core/sched/classify.ts";
import { innerLength, validInnerPacket } from "../src/core/inner.ts";
import { planLinuxUp } from "../src/io/route/linux.ts";

const ip6 = (s: string) => parseIPv6(s)!;
const REMOTE6 = ip6("2001:db8:77::7");

function dualPair(): Pair {
  const p = new Pair({}, {
    pool6: parseCidr6("fd00:77::/64")!,
    routes6: [parseCidr6("2001:db8:77::/48")!],
    dns6: [ip6("fd00:77::1")],
  });
  p.client.start(p.now, p.wall);
  p.run(20);
  assert(p.client.ready);
  return p;
}

Deno.test("dual stack: the push carries an IPv6 address, routes and DNS; both families flow", () => {
  const p = dualPair();
  const c = p.client.config!;
  assertEquals(formatCidr6(c.address6!), "fd00:77::/64");
  assertEquals(formatIPv6(c.address6!.addr), "fd00:77::2", "the host number of 10.7.0.2");
  assertEquals(formatIPv6(c.serverAddress6!), "fd00:77::1");
  assertEquals(c.routes6.map(formatCidr6), ["2001:db8:77::/48"]);
  const me6 = c.address6!.addr;
  assert(p.clientSend(udp6Packet(me6, REMOTE6, new Uint8Array([1, 2, 3]))));
  assert(p.serverSend(udp6Packet(REMOTE6, me6, new Uint8Array([4, 5]))));
  assert(p.clientSend(udpPacket(c.address.addr, parseIPv4("198.51.100.7")!, new Uint8Array([6]))));
  p.run(5);
  assertEquals(p.serverTun.length, 2);
  assertEquals(p.serverTun[0]!.subarray(48), new Uint8Array([1, 2, 3]), "IPv6 bytes intact up");
  assertEquals(p.clientTun.length, 1);
  assertEquals(p.clientTun[0]!.subarray(48), new Uint8Array([4, 5]), "IPv6 bytes intact down");
});

Deno.test("dual stack: spoofed IPv6 sources are dropped on both sides", () => {
  const p = dualPair();
  const me6 = p.client.config!.address6!.addr;
  // The server: only the client's own pool6 address.
  assert(p.clientSend(udp6Packet(ip6("fd00:77::3"), REMOTE6, new Uint8Array(4))));
  p.run(2);
  assertEquals(p.serverTun.length, 0);
  assertEquals(p.server.drops.bad_inner_src, 1);
  // The client: only sources it routes into the tunnel (2001:db8:77::/48 here).
  assert(p.serverSend(udp6Packet(ip6("2001:db8:99::1"), me6, new Uint8Array(4))));
  p.run(2);
  assertEquals(p.clientTun.length, 0);
  assertEquals(p.client.drops.bad_inner_src, 1);
  // And an IPv6 destination outside pool6 goes nowhere.
  assertEquals(p.server.route(udp6Packet(REMOTE6, ip6("fd00:78::2"), new Uint8Array(4)), 52), -1);
  // An alias with the client's host number but other bits above it (pool6 is a /64; the
  // addresses live in its first /96) is not the client's, either way.
  const alias = ip6("fd00:77::1:0:2");
  assert(p.clientSend(udp6Packet(alias, REMOTE6, new Uint8Array(4))));
  p.run(2);
  assertEquals(p.serverTun.length, 0);
  assertEquals(p.server.drops.bad_inner_src, 2);
  assertEquals(p.server.route(udp6Packet(REMOTE6, alias, new Uint8Array(4)), 52), -1);
  assert(p.server.route(udp6Packet(REMOTE6, me6, new Uint8Array(4)), 52) >= 0);
});

Deno.test("dual stack: a server without pool6 pushes no IPv6 address and routes no IPv6", () => {
  const p = new Pair({}, { routes6: [parseCidr6("::/0")!] });
  p.client.start(p.now, p.wall);
  p.run(20);
  assertEquals(p.client.config!.address6, undefined);
  const me = p.client.config!.address.addr;
  assert(p.serverSend(udpPacket(parseIPv4("198.51.100.7")!, me, new Uint8Array(1))));
  p.run(2);
  assertEquals(p.clientTun.length, 1, "IPv4 still flows");
  const me6 = ip6("fd00:77::2");
  assertEquals(p.server.route(udp6Packet(REMOTE6, me6, new Uint8Array(1)), 49), -1);
});

Deno.test("config push v2 round-trips IPv6 and refuses a half of it", () => {
  const c = dualPair().client.config!;
  const wire = encodeConfigPush(c);
  assertEquals(decodeConfigPush(wire.subarray(1)), c);
  const o = JSON.parse(new TextDecoder().decode(wire.subarray(1)));
  delete o.server6;
  assertEquals(decodeConfigPush(new TextEncoder().encode(JSON.stringify(o))), undefined);
});

Deno.test("IPv6 headers: validity, length, ECN, MSS clamping and the flow hash", () => {
  const p = udp6Packet(ip6("fd00::2"), REMOTE6, new Uint8Array(10), [5000, 27015], 0x02);
  assert(validInnerPacket(p, p.length));
  assert(!validInnerPacket(p, p.length - 1), "payload length beyond the datagram");
  const padded = new Uint8Array(p.length + 8);
  padded.set(p);
  assertEquals(innerLength(padded), p.length);
  assertEquals(ecnOf(p), 2, "ECT(0) from the traffic class");
  assert(markCe(p));
  assertEquals(ecnOf(p), 3);
  assertEquals(p[0]! & 15, 0, "DSCP bits untouched");
  // A TCP SYN with MSS 1440 over a 1420 tunnel: IPv6 gets MTU - 60 = 1360.
  const syn = new Uint8Array(40 + 24);
  syn[0] = 0x60;
  syn[5] = 24;
  syn[6] = 6;
  syn[40 + 12] = 6 << 4; // data offset 24
  syn[40 + 13] = 0x02;
  syn.set([2, 4, 1440 >> 8, 1440 & 255], 60);
  assert(clampMss(syn, syn.length, 1420 - 40));
  assertEquals((syn[62]! << 8) | syn[63]!, 1360);
  // Flows: different ports, different hash; same packet, same hash.
  const q = udp6Packet(ip6("fd00::2"), REMOTE6, new Uint8Array(10), [5001, 27015]);
  assert(flowHash(p, p.length, 7) !== flowHash(q, q.length, 7));
  assertEquals(flowHash(q, q.length, 7), flowHash(q.slice(), q.length, 7));
});

Deno.test("route plan: IPv6 address and routes, or unreachable halves that block IPv6", () => {
  const base = {
    ifname: "xvpn0",
    address: { addr: parseIPv4("10.7.0.2")!, prefix: 24 },
    mtu: 1420,
    routes: [{ addr: 0, prefix: 0 }],
    endpoint: { ip: parseIPv4("203.0.113.5")!, gateway: parseIPv4("192.168.1.1")! },
  };
  const carried = planLinuxUp({
    ...base,
    address6: parseCidr6("fd00:77::2/64")!,
    routes6: [parseCidr6("::/0")!],
  }).map((a) => a.join(" "));
  assert(carried.includes("ip -6 address add fd00:77::2/64 dev xvpn0 nodad"), carried.join("\n"));
  assert(carried.includes("ip -6 route add ::/1 dev xvpn0"));
  assert(carried.includes("ip -6 route add 8000::/1 dev xvpn0"));
  const blocked = planLinuxUp({ ...base, blockIPv6: true }).map((a) => a.join(" "));
  assert(blocked.includes("ip -6 route add unreachable ::/1"), blocked.join("\n"));
  assert(blocked.includes("ip -6 route add unreachable 8000::/1"));
  const v6server = planLinuxUp({
    ...base,
    blockIPv6: true,
    endpoint6: { ip6: ip6("2001:db8::5"), gateway: ip6("fe80::1"), dev: "eth0" },
  }).map((a) => a.join(" "));
  const host = v6server.indexOf("ip -6 route add 2001:db8::5/128 via fe80::1 dev eth0");
  assert(
    host >= 0 && host < v6server.indexOf("ip -6 route add unreachable ::/1"),
    "an IPv6 server keeps its way around the block",
  );
});
