/**
 * Client and server cores over an in-memory link with a virtual clock: handshake, data both
 * ways, keepalive, expiry, rekey, replays, restart — minutes of protocol time in milliseconds.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { Pair } from "./support/pair.ts";
import { udpPacket } from "./support/packets.ts";
import { formatCidr, formatIPv4, parseCidr, parseIPv4 } from "../src/lib/ip.ts";
import { ClientCore } from "../src/core/client.ts";
import { PacketBuf } from "../src/core/packet.ts";
import { generatePrivateKey, publicKeyOf } from "../src/core/keys.ts";
import { REKEY_AFTER_TIME_MS } from "../src/core/timers.ts";

const GAME = parseIPv4("198.51.100.7")!;

function connected(): Pair {
  const p = new Pair();
  p.client.start(p.now, p.wall);
  p.run(20);
  assert(p.client.ready, "client ready after the handshake and config push");
  return p;
}

Deno.test("Pair handshake pushes address, MTU, routes, DNS and keepalive", () => {
  const p = connected();
  const c = p.client.config!;
  assertEquals(`${formatIPv4(c.address.addr)}/${c.address.prefix}`, "10.7.0.2/24");
  assertEquals(formatIPv4(c.serverAddress), "10.7.0.1");
  assertEquals(c.mtu, 1420);
  assertEquals(c.routes.map(formatCidr), ["198.51.100.0/24"]);
  assertEquals(c.dns.map(formatIPv4), ["10.7.0.1"]);
  assertEquals(c.keepaliveMs, 10_000);
  const [s] = [...p.server.sessions()];
  const up = p.client.events.find((e) => e.type === "connected");
  assertEquals(up?.type === "connected" && up.connId, s!.current!.localId, "the id of its keys");
  assertEquals(p.client.events.some((e) => e.type === "config"), true);
});

Deno.test("Pair data flows both ways with the bytes intact", () => {
  const p = connected();
  const me = p.client.config!.address.addr;
  for (let i = 0; i < 100; i++) {
    const payload = crypto.getRandomValues(new Uint8Array(i * 13 % 1400));
    const up = udpPacket(me, GAME, payload);
    assert(p.clientSend(up));
    const down = udpPacket(GAME, me, payload);
    p.run(2);
    assert(p.serverSend(down));
    p.run(2);
    assertEquals(p.serverTun.at(-1), up);
    assertEquals(p.clientTun.at(-1), down);
  }
  assertEquals(p.serverTun.length, 100);
  assertEquals(p.clientTun.length, 100);
});

Deno.test("Pair server drops an inner packet with a spoofed source", () => {
  const p = connected();
  assert(p.clientSend(udpPacket(parseIPv4("10.7.0.99")!, GAME, new Uint8Array(10))));
  p.run(2);
  assertEquals(p.serverTun.length, 0);
  assertEquals(p.server.drops.bad_inner_src, 1);
});

Deno.test("Pair keepalive pings every interval and measures RTT (no RTT probes)", () => {
  const p = new Pair({ delayMs: 7, client: { probeMs: 0 } }, { probeMs: 0 });
  p.client.start(p.now, p.wall);
  p.run(100);
  const before = p.wire.length;
  p.run(30_000);
  const pings = p.wire.length - before;
  assert(pings >= 6 && pings <= 8, `3 pings + 3 pongs in 30 s, saw ${pings} datagrams`);
  assertEquals(p.client.rttMs, 14);
  assertEquals([...p.server.sessions()].length, 1, "keepalives keep the session");
});

Deno.test("Pair server expires a silent session and returns its address", () => {
  const p = connected();
  p.linkUp = false;
  p.run(59_000);
  assertEquals([...p.server.sessions()].length, 1);
  p.run(2_000);
  assertEquals([...p.server.sessions()].length, 0);
  assertEquals(p.server.pool.size, 0);
  assert(p.server.events.some((e) => e.type === "session_expired"));
});

Deno.test("Pair rekeys after two minutes without losing a packet", () => {
  const p = connected();
  const me = p.client.config!.address.addr;
  const epoch0 = [...p.server.sessions()][0]!.current!.epoch;
  let sent = 0;
  for (let t = 0; t < REKEY_AFTER_TIME_MS + 10_000; t += 500) {
    assert(p.clientSend(udpPacket(me, GAME, new Uint8Array([t & 255]))));
    assert(p.serverSend(udpPacket(GAME, me, new Uint8Array([t & 255]))));
    sent++;
    p.run(500);
  }
  const s = [...p.server.sessions()][0]!;
  assert(s.current!.epoch !== epoch0, "new keys in use");
  assertEquals(p.server.pool.size, 1);
  assertEquals(p.serverTun.length, sent);
  assertEquals(p.clientTun.length, sent);
  assertEquals(p.client.stats.handshakes, 2);
  assertEquals(p.client.config!.address.addr, me, "same address after rekey");
});

Deno.test("Pair replayed data packets are dropped by the replay window", () => {
  const p = connected();
  const me = p.client.config!.address.addr;
  p.clientSend(udpPacket(me, GAME, new Uint8Array([1, 2, 3])));
  p.run(2);
  const data = p.wire.filter((f) => f.toServer && f.data[1] === 3);
  assertEquals(data.length, 1);
  p.deliver(data[0]!);
  p.deliver(data[0]!);
  assertEquals(p.serverTun.length, 1);
  assertEquals(p.server.drops.replay, 2);
});

Deno.test("Pair replayed handshake initiation is rejected and creates nothing", () => {
  const p = connected();
  const init = p.wire.find((f) => f.toServer && f.data[1] === 1)!;
  const sessionsBefore = [...p.server.sessions()][0]!.current;
  p.deliver(init);
  p.flush();
  assertEquals(p.server.drops.replayed_handshake, 1);
  assertEquals(p.server.outbox.length, 0);
  assertEquals([...p.server.sessions()][0]!.current, sessionsBefore);
});

Deno.test("Pair server ignores a client with an unknown key and sends nothing", () => {
  const p = new Pair();
  const stranger = new ClientCore({
    privateKey: generatePrivateKey(),
    serverPublicKey: publicKeyOf(p.serverKey),
    aead: p.aead,
  });
  stranger.start(p.now, p.wall);
  for (const d of stranger.outbox.splice(0)) {
    p.deliver({ data: d, toServer: true, from: p.clientEndpoint });
  }
  assertEquals(p.server.drops.unknown_key, 1);
  assertEquals(p.server.outbox.length, 0);
  assertEquals(p.server.pool.size, 0);
});

Deno.test("Pair handshake survives 30% loss through retries", () => {
  const p = new Pair({ loss: 0.3, seed: 7 });
  p.client.start(p.now, p.wall);
  p.run(30_000);
  assert(p.client.ready);
});

Deno.test("Pair client reconnects by itself after a server restart and keeps its address", () => {
  const p = connected();
  const addr = p.client.config!.address.addr;
  p.server = p.newServer();
  p.run(31_000); // three keepalive intervals of silence, then a new handshake
  assert(p.client.events.some((e) => e.type === "path_dead"));
  assert(p.client.ready);
  assertEquals(p.client.config!.address.addr, addr);
  const me = addr;
  assert(p.clientSend(udpPacket(me, GAME, new Uint8Array([9]))));
  p.run(2);
  assertEquals(p.serverTun.length, 1);
});

Deno.test("Pair session follows the client to a new address (roaming)", () => {
  const p = connected();
  const me = p.client.config!.address.addr;
  p.clientEndpoint = { hostname: "203.0.113.5", port: 1234 };
  p.clientSend(udpPacket(me, GAME, new Uint8Array([1])));
  p.run(2);
  assertEquals([...p.server.sessions()][0]!.endpoint, p.clientEndpoint);
  assert(p.serverSend(udpPacket(GAME, me, new Uint8Array([2]))));
  p.run(2);
  assertEquals(p.clientTun.length, 1);
});

Deno.test("Pair client disconnect frees the address at once", () => {
  const p = connected();
  p.client.close();
  p.run(5);
  assertEquals(p.server.pool.size, 0);
  assert(p.server.events.some((e) => e.type === "session_closed"));
});

Deno.test("Pair client handshakes again by itself after the server says it shut down", () => {
  const p = connected();
  p.server.shutdown();
  p.flush(); // the goodbye leaves before the old server goes
  p.server = p.newServer();
  p.run(1_500);
  assert(p.client.events.some((e) => e.type === "disconnected" && !e.final));
  assert(p.client.ready, "reconnected without waiting for the dead-path timer");
  assertEquals(p.client.stats.handshakes, 2);
});

Deno.test("Pair client stops for good when the server's pool is exhausted", () => {
  const p = new Pair({}, { pool: parseCidr("10.7.0.0/30")! }); // one client address
  // Another key holds the only address.
  const other = generatePrivateKey();
  p.server = p.newServer({
    pool: parseCidr("10.7.0.0/30")!,
    clients: [
      { name: "alice", publicKey: publicKeyOf(p.clientKey) },
      { name: "bob", publicKey: publicKeyOf(other), address: parseIPv4("10.7.0.2")! },
    ],
  });
  p.client.start(p.now, p.wall);
  p.run(2_000);
  assert(p.client.closed, "the client gave up");
  assert(p.client.events.some((e) => e.type === "disconnected" && e.final));
  assertEquals(p.server.drops.pool_exhausted, 1);
  p.run(20_000);
  assertEquals(p.server.drops.pool_exhausted, 1, "no retry storm after a final refusal");
});

Deno.test("Pair clamps the MSS of SYNs in both directions to the pushed MTU", () => {
  const p = connected();
  const me = p.client.config!.address.addr;
  const syn = (src: number, dst: number) => {
    const s = new Uint8Array(44);
    s.set([0x45, 0, 0, 44, 0, 0, 0x40, 0, 64, 6, 0, 0]);
    s.set([src >>> 24, (src >>> 16) & 255, (src >>> 8) & 255, src & 255], 12);
    s.set([dst >>> 24, (dst >>> 16) & 255, (dst >>> 8) & 255, dst & 255], 16);
    s.set([0x9c, 0x40, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x60, 0x02, 0xff, 0xff, 0, 0, 0, 0], 20);
    s.set([2, 4, 0x05, 0xb4], 40); // MSS 1460
    return s;
  };
  const mss = (pkt: Uint8Array) => (pkt[42]! << 8) | pkt[43]!;
  assert(p.clientSend(syn(me, GAME)));
  p.run(2);
  assertEquals(mss(p.serverTun.at(-1)!), 1380, "client -> server SYN clamped to 1420 - 40");
  assert(p.serverSend(syn(GAME, me)));
  p.run(2);
  assertEquals(mss(p.clientTun.at(-1)!), 1380, "server -> client SYN-ACK clamped");
});

Deno.test("Pair diagnostic session answers MTU probes without touching the running tunnel", () => {
  const p = connected();
  const me = p.client.config!.address.addr;
  const diag = new ClientCore({
    privateKey: p.clientKey,
    serverPublicKey: publicKeyOf(p.serverKey),
    aead: p.aead,
    diag: true,
  });
  const diagFrom = { hostname: "192.0.2.10", port: 40001 };
  const out = new Uint8Array(4096);
  // Moves datagrams between the diag core and the server until both are quiet.
  const exchange = () => {
    for (let i = 0; i < 4; i++) {
      for (const d of diag.outbox.splice(0)) {
        p.server.receive(p.now, new PacketBuf(d), diagFrom, out);
      }
      for (const o of p.server.outbox.splice(0)) {
        assertEquals(o.to, diagFrom, "the server answers only the diagnostic session");
        diag.receive(p.now, new PacketBuf(o.data), out);
      }
    }
  };
  p.run(100); // a later timestamp than the tunnel's handshake
  diag.start(p.now, p.wall);
  exchange();
  assert(diag.ready, "diagnostic handshake done");
  assert(p.server.events.some((e) => e.type === "diag_session"));
  assertEquals(p.server.pool.size, 1, "a diagnostic session takes no address");
  for (const size of [100, 1400, 1472, 8000]) {
    diag.outbox.push(diag.probe(size, size)!);
    exchange();
    const ack = diag.events.findLast((e) => e.type === "probe_ack");
    assertEquals(ack, { type: "probe_ack", seq: size, received: size, serverMtu: 1420 });
  }
  // The tunnel still works both ways after the diagnostic handshake.
  assert(p.clientSend(udpPacket(me, GAME, new Uint8Array([1]))));
  assert(p.serverSend(udpPacket(GAME, me, new Uint8Array([2]))));
  p.run(5);
  assertEquals(p.serverTun.length, 1);
  assertEquals(p.clientTun.length, 1);
});

Deno.test("Pair client notices a dead path in under a second while sending, and recovers", () => {
  const p = connected();
  const me = p.client.config!.address.addr;
  p.run(3_000);
  p.linkUp = false;
  const cut = p.now;
  let deadAt = -1;
  for (let t = 0; t < 2_000 && deadAt < 0; t += 20) {
    p.clientSend(udpPacket(me, GAME, new Uint8Array([1])));
    p.run(20);
    if (p.client.events.some((e) => e.type === "path_dead")) deadAt = p.now;
  }
  const detect = deadAt - cut;
  console.log(`  dead path noticed ${detect} ms after the link went down`);
  assert(deadAt > 0 && detect < 1000, `noticed after ${detect} ms`);
  p.linkUp = true;
  p.run(1_500);
  assert(p.clientSend(udpPacket(me, GAME, new Uint8Array([2]))));
  p.run(5);
  assertEquals(p.serverTun.at(-1)?.at(-1), 2, "traffic flows again after the new handshake");
});

Deno.test("Pair no false dead path over 60 s of one-way traffic with 10% loss each way", () => {
  const p = new Pair({ loss: 0.1, seed: 3 });
  p.client.start(p.now, p.wall);
  p.run(5_000);
  assert(p.client.ready);
  const me = p.client.config!.address.addr;
  for (let t = 0; t < 60_000; t += 20) {
    p.clientSend(udpPacket(me, GAME, new Uint8Array([1]))); // upload only: nothing comes back
    p.run(20);
  }
  const dead = p.client.events.filter((e) => e.type === "path_dead").length;
  assertEquals(dead, 0, "no path declared dead");
});

Deno.test("Pair a link that reorders and duplicates delivers each inner packet once, in any order", () => {
  const p = new Pair({
    seed: 11,
    impair: { reorderPercent: 10, duplicatePercent: 5, holdPackets: 3, holdMs: 20, jitterMs: 2 },
  });
  p.client.start(p.now, p.wall);
  p.run(200);
  assert(p.client.ready, "connected over the impaired link");
  const me = p.client.config!.address.addr;
  for (let i = 0; i < 500; i++) {
    const pkt = udpPacket(me, GAME, new Uint8Array([i & 255, i >> 8]));
    assert(p.clientSend(pkt));
    p.run(1);
  }
  p.run(100);
  const got = p.serverTun.map((t) => t[28]! | (t[29]! << 8));
  assertEquals(got.length, 500, "each packet once: duplicates dropped by the replay window");
  assertEquals([...got].sort((a, b) => a - b), Array.from({ length: 500 }, (_, i) => i));
  assert(got.some((v, i) => i > 0 && v < got[i - 1]!), "reordered on the way");
  assert(p.server.drops.replay > 0, "duplicates were counted as replays");
});

Deno.test("Pair client drops inner packets from sources it does not route into the tunnel", () => {
  const p = connected();
  const me = p.client.config!.address.addr;
  // From inside the pushed 198.51.100.0/24: delivered. From the client's own LAN (what a host
  // beside a forwarding server could send): dropped and counted, never delivered.
  assert(p.serverSend(udpPacket(GAME, me, new Uint8Array([1]))));
  assert(p.serverSend(udpPacket(parseIPv4("192.168.77.10")!, me, new Uint8Array([2]))));
  assert(p.serverSend(udpPacket(parseIPv4("10.7.0.1")!, me, new Uint8Array([3]))));
  p.run(5);
  assertEquals(p.clientTun.length, 2, "the pushed route and the tunnel subnet only");
  assertEquals(p.client.drops.bad_inner_src, 1);
});

Deno.test("Pair client applies its policy to a hostile push and says what it refused", () => {
  const p = new Pair({
    client: {
      local: { subnets: [parseCidr("192.168.77.0/24")!], gateways: [], underlayMtu: 1500 },
    },
  }, {
    routes: [parseCidr("0.0.0.0/0")!, parseCidr("192.168.77.0/24")!],
    mtu: 9000,
    keepaliveMs: 100,
    sessionTimeoutMs: 60_000,
  });
  p.client.start(p.now, p.wall);
  p.run(20);
  const e = p.client.events.find((x) => x.type === "config");
  assert(e?.type === "config");
  assertEquals(e.config.routes.map(formatCidr), ["0.0.0.0/0"]);
  assertEquals(e.config.mtu, 1440);
  assertEquals(p.client.keepaliveMs, 1000);
  assertEquals(e.refused.length, 3, e.refused.join("; "));
  assertEquals(p.client.config, e.config, "what the core uses is what the runtime applies");
});

Deno.test("Pair status: both sides measure the round trip once a second, and see loss", () => {
  const p = new Pair({ delayMs: 7 });
  p.client.start(p.now, p.wall);
  p.run(50);
  p.client.status(p.now); // a status reader: figures once a second from now on
  p.run(10_000);
  const c = p.client.status(p.now);
  assertEquals(c.state, "connected");
  assertEquals(c.address, "10.7.0.2/24");
  assertEquals(c.mtu, 1420);
  assertEquals(c.paths.length, 1);
  const path = c.paths[0]!;
  assertEquals([path.p50Ms, path.p99Ms, path.jitterMs, path.lossPct], [14, 14, 0, 0]);
  assert(path.sent >= 9 && path.sent <= 11, `about one probe a second: ${path.sent}`);
  const s = p.server.status(p.now);
  assertEquals(s.clients.length, 1);
  assertEquals(s.clients[0]!.name, "alice");
  assertEquals(s.clients[0]!.rttMs, 14, "the server's own probes");
  assert(s.clients[0]!.rx.packets > 0 && s.clients[0]!.tx.packets > 0);
  // Every datagram towards the client lost for 3 s while it plays (an active session is probed
  // once a second): the server's probes see it.
  p.links[0]!.loss = 1;
  const me = p.client.config!.address.addr;
  for (let t = 0; t < 3_000; t += 100) {
    p.clientSend(udpPacket(me, parseIPv4("198.51.100.7")!, new Uint8Array(40)));
    p.run(100);
  }
  p.links[0]!.loss = 0;
  p.run(1_500);
  assert(p.server.status(p.now).clients[0]!.lossPct > 0, "the server saw its probes lost");
  assert(p.client.status(p.now).paths[0]!.lossPct > 0, "the client saw its probes lost");
});
