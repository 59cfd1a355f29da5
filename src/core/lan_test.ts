/**
 * LANs behind clients, over the cores: one server core with two clients, "alice" carrying
 * 192.168.50.0/24 (and fd50::/64) and "bob" carrying 10.9.0.0/16 with a more specific
 * 10.9.8.0/24, each client a real ClientCore whose datagrams are handed over synchronously.
 * Plus the table itself (longest prefix, IPv6, an empty table).
 */
import { assert, assertEquals } from "../../tests/support/assert.ts";
import { udp6Packet, udpPacket } from "../../tests/support/packets.ts";
import { LanTable } from "./lan.ts";
import { ServerCore } from "./server.ts";
import { ClientCore } from "./client.ts";
import { generatePrivateKey, publicKeyOf } from "./keys.ts";
import { loadAead } from "../crypto/aead.ts";
import { PacketBuf } from "./packet.ts";
import { Verdict } from "./result.ts";
import { type Cidr, parseCidr, parseIPv4 } from "../lib/ip.ts";
import { parseCidr6, parseIPv6 } from "../lib/ip6.ts";
import type { Endpoint } from "../lib/endpoint.ts";

const AEAD = await loadAead("auto");
const ip = (s: string) => parseIPv4(s)!;
const cidr = (s: string): Cidr => parseCidr(s)!;
const GAME = ip("198.51.100.7");

/** A client core with its endpoint as the server sees it. */
interface Peer {
  core: ClientCore;
  from: Endpoint;
}

/** The server and its two clients, both connected and configured. */
function world() {
  const serverKey = generatePrivateKey();
  const keys = { alice: generatePrivateKey(), bob: generatePrivateKey() };
  const server = new ServerCore({
    privateKey: serverKey,
    clients: [
      {
        name: "alice",
        publicKey: publicKeyOf(keys.alice),
        lan: [cidr("192.168.50.0/24")],
        lan6: [parseCidr6("fd50::/64")!],
      },
      {
        name: "bob",
        publicKey: publicKeyOf(keys.bob),
        lan: [cidr("10.9.0.0/16"), cidr("10.9.8.0/24")],
      },
      { name: "carol", publicKey: publicKeyOf(generatePrivateKey()) },
    ],
    pool: cidr("10.7.0.0/24"),
    pool6: parseCidr6("fd00:77::/64")!,
    mtu: 1420,
    routes: [cidr("198.51.100.0/24")],
    dns: [],
    keepaliveMs: 10_000,
    sessionTimeoutMs: 60_000,
    aead: AEAD,
  });
  const now = 1_000_000, wall = 1_800_000_000_000;
  const out = new Uint8Array(4096);
  const peer = (k: Uint8Array, port: number): Peer => ({
    core: new ClientCore({ privateKey: k, serverPublicKey: publicKeyOf(serverKey), aead: AEAD }),
    from: { hostname: "192.0.2.10", port },
  });
  const alice = peer(keys.alice, 40001), bob = peer(keys.bob, 40002);
  /** Moves control datagrams both ways until nothing is left. */
  const settle = () => {
    for (let round = 0; round < 10; round++) {
      let moved = false;
      for (const p of [alice, bob]) {
        for (const d of p.core.outbox.splice(0)) {
          moved = true;
          server.receive(now, new PacketBuf(d), p.from, out);
        }
      }
      for (const o of server.outbox.splice(0)) {
        moved = true;
        const p = o.to.port === alice.from.port ? alice : bob;
        p.core.receive(now, new PacketBuf(o.data), out);
      }
      if (!moved) return;
    }
  };
  alice.core.start(now, wall);
  bob.core.start(now, wall);
  settle();
  assert(alice.core.ready && bob.core.ready, "both clients connected and configured");
  const tx = PacketBuf.alloc(4096);

  /** `p` seals `pkt` as read from its TUN; the verdict of the server, and what reached its TUN. */
  const up = (p: Peer, pkt: Uint8Array) => {
    const r = p.core.fromTun(now, pkt, pkt.length, tx);
    assertEquals(r.verdict, Verdict.Net, "the client sends it");
    const got = server.receive(now, new PacketBuf(tx.buf.slice(0, r.length)), p.from, out);
    return { verdict: got.verdict, tun: out.slice(0, got.length) };
  };
  /** The server routes `pkt` read from its TUN: whose session it went to, if any. */
  const down = (pkt: Uint8Array): "alice" | "bob" | undefined => {
    const r = server.fromTun(now, pkt, pkt.length, tx);
    if (r.verdict !== Verdict.Net) return undefined;
    return r.to!.port === alice.from.port ? "alice" : "bob";
  };
  return { server, alice, bob, up, down };
}

Deno.test("lan: a client's LAN device sends through it; the server delivers it unchanged", () => {
  const w = world();
  const pkt = udpPacket(ip("192.168.50.20"), GAME, new Uint8Array([1, 2, 3]));
  const r = w.up(w.alice, pkt);
  assertEquals(r.verdict, Verdict.Tun);
  assertEquals(r.tun, pkt, "no NAT: the console's own address reaches the server's TUN");
  // Its own tunnel address still passes, and the LAN's IPv6 prefix too.
  const own = w.alice.core.config!.address.addr;
  assertEquals(w.up(w.alice, udpPacket(own, GAME, new Uint8Array(4))).verdict, Verdict.Tun);
  const v6 = udp6Packet(parseIPv6("fd50::20")!, parseIPv6("2001:db8::7")!, new Uint8Array(2));
  assertEquals(w.up(w.alice, v6).verdict, Verdict.Tun);
  assertEquals(w.server.drops.bad_inner_src + w.server.drops.foreign_lan_src, 0);
});

/** An IPv4 TCP SYN from `src` to `dst` announcing MSS `mss` (checksums left 0). */
function syn(src: number, dst: number, mss: number): Uint8Array {
  const p = new Uint8Array(44);
  p[0] = 0x45;
  p[3] = 44;
  p[8] = 64;
  p[9] = 6;
  new DataView(p.buffer).setUint32(12, src);
  new DataView(p.buffer).setUint32(16, dst);
  p[32] = 6 << 4; // data offset: 24 bytes
  p[33] = 0x02; // SYN
  p.set([2, 4, mss >> 8, mss & 255], 40);
  return p;
}

Deno.test("lan: a LAN device's SYN is clamped to the tunnel's MSS on the way up and down", () => {
  const w = world();
  const consoleIp = ip("192.168.50.20");
  const r = w.up(w.alice, syn(consoleIp, GAME, 1460));
  assertEquals(r.verdict, Verdict.Tun);
  assertEquals((r.tun[42]! << 8) | r.tun[43]!, 1420 - 40, "the console's 1460 lowered");
  // The SYN-ACK back is clamped by the server's seal, then by the client on its way to the TUN.
  const back = syn(GAME, consoleIp, 1460);
  back[33] = 0x12;
  assertEquals(w.down(back), "alice");
  assertEquals((back[42]! << 8) | back[43]!, 1420 - 40);
});

Deno.test("lan: another client sending from that LAN is dropped and counted apart", () => {
  const w = world();
  for (const src of ["192.168.50.20", "192.168.50.1"]) {
    const r = w.up(w.bob, udpPacket(ip(src), GAME, new Uint8Array(8)));
    assertEquals(r.verdict, Verdict.Drop, `bob cannot pass ${src} off as his`);
  }
  const v6 = udp6Packet(parseIPv6("fd50::20")!, parseIPv6("2001:db8::7")!, new Uint8Array(2));
  assertEquals(w.up(w.bob, v6).verdict, Verdict.Drop);
  assertEquals(w.server.drops.foreign_lan_src, 3);
  // A source in nobody's LAN stays what it was.
  assertEquals(
    w.up(w.alice, udpPacket(ip("172.16.0.1"), GAME, new Uint8Array(8))).verdict,
    Verdict.Drop,
  );
  assertEquals(w.server.drops.bad_inner_src, 1);
  // And alice cannot send from bob's LAN either.
  assertEquals(
    w.up(w.alice, udpPacket(ip("10.9.8.1"), GAME, new Uint8Array(8))).verdict,
    Verdict.Drop,
  );
  assertEquals(w.server.drops.foreign_lan_src, 4);
});

Deno.test("lan: the server routes a LAN's destinations to its client's session", () => {
  const w = world();
  const to = (dst: string) => w.down(udpPacket(GAME, ip(dst), new Uint8Array(16)));
  assertEquals(to("192.168.50.20"), "alice");
  assertEquals(to("10.9.8.1"), "bob", "the longer prefix");
  assertEquals(to("10.9.200.1"), "bob", "the shorter one");
  assertEquals(to(`10.7.0.${w.alice.core.config!.address.addr & 255}`), "alice", "pool first");
  assertEquals(to("192.168.51.1"), undefined);
  assertEquals(w.server.drops.no_route, 1);
  const v6 = udp6Packet(parseIPv6("2001:db8::7")!, parseIPv6("fd50::20")!, new Uint8Array(2));
  assertEquals(w.down(v6), "alice", "an IPv6 LAN outside pool6");
  const none6 = udp6Packet(parseIPv6("2001:db8::7")!, parseIPv6("fd51::1")!, new Uint8Array(2));
  assertEquals(w.down(none6), undefined);
  assertEquals(w.server.drops.no_route, 2);
});

Deno.test("lan: a LAN whose client has no session goes nowhere (no_route)", () => {
  const w = world();
  const bob = [...w.server.sessions()].find((s) => s.peer.name === "bob")!;
  // bob says goodbye: his session, and with it the route to his LAN, goes.
  w.bob.core.close();
  for (const d of w.bob.core.outbox.splice(0)) {
    w.server.receive(1_000_000, new PacketBuf(d), w.bob.from, new Uint8Array(4096));
  }
  assert(![...w.server.sessions()].includes(bob), "bob's session is gone");
  assertEquals(w.down(udpPacket(GAME, ip("10.9.8.1"), new Uint8Array(4))), undefined);
  assertEquals(w.server.drops.no_route, 1);
  assertEquals(w.down(udpPacket(GAME, ip("192.168.50.9"), new Uint8Array(4))), "alice");
});

Deno.test("LanTable: longest prefix, IPv6, and an empty table", () => {
  const t = new LanTable();
  assert(t.empty);
  assertEquals(t.owner4(ip("10.1.2.3")), undefined);
  const pkt = udpPacket(ip("10.1.2.3"), GAME, new Uint8Array(1));
  assertEquals(t.refuseSource(pkt, "a"), "bad_inner_src");
  t.add("a", [cidr("10.0.0.0/8")]);
  t.add("b", [cidr("10.1.0.0/16")], [parseCidr6("fd00:1::/32")!]);
  t.add("c", [cidr("10.1.2.0/24")], [parseCidr6("fd00:1:2::/64")!]);
  assertEquals(t.owner4(ip("10.1.2.3")), "c");
  assertEquals(t.owner4(ip("10.1.3.3")), "b");
  assertEquals(t.owner4(ip("10.200.0.1")), "a");
  assertEquals(t.owner4(ip("11.0.0.1")), undefined);
  assertEquals(t.owner6(parseIPv6("fd00:1:2::9")!, 0), "c");
  assertEquals(t.owner6(parseIPv6("fd00:1:3::9")!, 0), "b");
  assertEquals(t.owner6(parseIPv6("fd01::9")!, 0), undefined);
  assertEquals(t.refuseSource(pkt, "c"), undefined);
  assertEquals(t.refuseSource(pkt, "b"), "foreign_lan_src");
  t.add("d", [cidr("10.1.2.0/24")]);
  assertEquals(t.owner4(ip("10.1.2.3")), "c", "a prefix keeps its first owner");
});
