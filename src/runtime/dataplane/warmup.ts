/**
 * A JIT warm-up for the data plane, run once when the Worker starts. At a game's packet rate
 * (64 a second) V8 takes minutes to optimize the packet path: until then every packet runs
 * interpreted, and a profile of an idle tunnel showed the seal alone at 25-50 µs and a dequeue
 * at 15 µs per packet (with FFI calls on their slow path, which only optimized code avoids),
 * against a fraction of that once optimized. So before the first real packet, a throwaway client
 * and server drive the same loop code over the in-memory twins (fake TUN, channel sockets, fake
 * poller, a virtual clock) with a mix of traffic both ways, until the hot functions are compiled.
 * The real loop then starts on optimized code. Nothing of it touches a real device or socket.
 *
 * @module
 */
import { ClientCore } from "../../core/client.ts";
import { ServerCore } from "../../core/server.ts";
import { generatePrivateKey, publicKeyOf } from "../../core/keys.ts";
import { PacketBuf } from "../../core/packet.ts";
import type { Aead } from "../../crypto/aead.ts";
import { FakeBatchTun } from "../../io/tun/fake.ts";
import { UdpChannel } from "../../io/udp/fake.ts";
import { FakePoller } from "../../io/poll.ts";
import { ClientAdapter, type CoreAdapter, ServerAdapter } from "../engine.ts";
import { CLIENT_SCHED, DataPlaneLoop, type SchedParams } from "./loop.ts";
import { CTRL_WORDS } from "./messages.ts";

const SLOT = 2048;

/** One IPv4/UDP (or TCP-looking) packet of `size` bytes from `src` to `dst`. */
function packet(src: number, dst: number, size: number, proto: number, port: number): Uint8Array {
  const p = new Uint8Array(size);
  p[0] = 0x45;
  p[2] = size >> 8;
  p[3] = size & 255;
  p[8] = 64;
  p[9] = proto;
  new DataView(p.buffer).setUint32(12, src);
  new DataView(p.buffer).setUint32(16, dst);
  p[20] = 0x30;
  p[21] = 0x39;
  p[22] = port >> 8;
  p[23] = port & 255;
  if (proto === 6) p[32] = 0x50; // a TCP data offset, so parsers see a header
  return p;
}

/**
 * Runs the warm-up: `rounds` of mixed traffic through a throwaway pair of loops. Returns how
 * many packets came out of the far TUNs (0 when the throwaway handshake did not complete).
 */
export function warmUp(aead: Aead, rounds = 3000): number {
  let now = 1000, wall = 1_800_000_000_000;
  const clock = { now: () => now, wall: () => wall };
  const channel = new UdpChannel();
  const ck = generatePrivateKey(), sk = generatePrivateKey();
  const server = new ServerCore({
    privateKey: sk,
    clients: [{ name: "warmup", publicKey: publicKeyOf(ck) }],
    pool: { addr: 0x0afe0000, prefix: 24 },
    mtu: 1420,
    routes: [{ addr: 0xc6336400, prefix: 24 }], // the remote's: the client accepts its packets
    dns: [],
    keepaliveMs: 10_000,
    sessionTimeoutMs: 60_000,
    aead,
  });
  const client = new ClientCore({ privateKey: ck, serverPublicKey: publicKeyOf(sk), aead });
  const side = (core: CoreAdapter, host: string, port: number, sched: SchedParams) => {
    const rx = Array.from({ length: 16 }, () => PacketBuf.alloc(SLOT));
    const tx = Array.from({ length: 17 }, () => PacketBuf.alloc(SLOT));
    const udp = channel.open(host, port, rx.map((b) => b.buf), tx.map((b) => b.buf));
    const tun = new FakeBatchTun(`warm-${port}`, 16, SLOT, core.drops, 64);
    const loop = new DataPlaneLoop({
      core,
      tun,
      socks: [{ udp, rx, tx }],
      poller: new FakePoller(3),
      wake: { fd: -1, readable: () => false, drain: () => {} },
      control: new Int32Array(CTRL_WORDS),
      onEvents: () => {},
      isClosed: () => false,
      clock,
      sched,
    });
    return { loop, tun, udp };
  };
  const s = side(new ServerAdapter(server), "192.0.2.1", 51820, {
    ...CLIENT_SCHED,
    flows: 64,
    upstream: false,
  });
  const c = side(
    new ClientAdapter(client, { hostname: "192.0.2.1", port: 51820, ip: 0xc0000201 } as never),
    "192.0.2.2",
    40000,
    { ...CLIENT_SCHED, flows: 64 },
  );
  client.start(now, wall);
  c.loop.start();
  s.loop.start();
  const settle = () => {
    for (let i = 0; i < 50; i++) {
      c.loop.step(0);
      s.loop.step(0);
      const busy = c.udp.readable() || s.udp.readable() || c.tun.readable() || s.tun.readable() ||
        c.loop.more || s.loop.more;
      if (!busy) {
        return;
      }
    }
  };
  for (let i = 0; i < 20 && !client.ready; i++) {
    now += 5;
    wall += 5;
    settle();
  }
  const me = client.config?.address.addr;
  if (me === undefined) return 0; // nothing to warm: the handshake did not complete
  const remote = 0xc6336407;
  let through = 0;
  for (let r = 0; r < rounds; r++) {
    const size = 60 + ((r * 97) % 1340);
    const proto = r % 3 === 0 ? 6 : 17;
    c.tun.inject(packet(me, remote, size, proto, 27015 + (r & 3)));
    s.tun.inject(packet(remote, me, 60 + ((r * 53) % 1340), proto, 443));
    if (r % 8 === 0) c.tun.inject(packet(me, remote, 1400, 6, 443));
    now += 0.5;
    wall += 0.5;
    settle();
    through += c.tun.takeWritten().length + s.tun.takeWritten().length;
  }
  return through;
}
