/**
 * Two data-plane loops (the fast path's {@link DataPlaneLoop}, unchanged) over in-memory twins,
 * in one test process (wireguard-go's `TestTwoDevicePing`): a client loop and a server loop,
 * each with a {@link FakeBatchTun}, sockets on one {@link UdpChannel}, a {@link FakePoller}, and a
 * virtual clock shared by both. {@link LoopPair.run} steps both loops until nothing moves, then
 * jumps the clock to the earlier of their deadlines, like the core pair harness does.
 *
 * @module
 */
import { ClientCore, type ClientParams } from "../../src/core/client.ts";
import { ServerCore } from "../../src/core/server.ts";
import { generatePrivateKey, publicKeyOf } from "../../src/core/keys.ts";
import { parseCidr, parseIPv4 } from "../../src/lib/ip.ts";
import { PacketBuf } from "../../src/core/packet.ts";
import { loadAead } from "../../src/crypto/aead.ts";
import { FakeBatchTun } from "../../src/io/tun/fake.ts";
import { type ChannelUdp, UdpChannel } from "../../src/io/udp/fake.ts";
import { FakePoller } from "../../src/io/poll.ts";
import { ClientAdapter, type CoreEvent, ServerAdapter } from "../../src/runtime/engine.ts";
import {
  CLIENT_SCHED,
  DataPlaneLoop,
  type SchedParams,
  type UdpSlots,
} from "../../src/runtime/dataplane/loop.ts";
import { CTRL_WORDS } from "../../src/runtime/dataplane/messages.ts";
import { FaultInjector, type Impairment } from "../lab/fault.ts";
import { deriveSeed } from "../lab/prng.ts";

const aead = await loadAead("auto");
const SLOT_BYTES = 9216 + 64;
const BATCH = 64;

/** Options of a {@link LoopPair}. */
export interface LoopPairOptions {
  /** Impairment of the link, each way (loss, duplication, reordering; delays are ignored). */
  impair?: Impairment;
  /** Seed of the impairment. */
  seed?: number;
  /** Datagrams per receive/send batch (default 64). */
  batch?: number;
  /** More client core settings (e.g. the queue request for the server). */
  client?: Partial<ClientParams>;
  /** The client's and the server's scheduler settings. */
  clientSched?: Partial<SchedParams>;
  serverSched?: Partial<SchedParams>;
  /** A link rate on each side's sends, Mbit/s (a slow uplink; backpressure). */
  clientUplinkMbps?: number;
  serverUplinkMbps?: number;
}

/** A loop with its fakes. */
export interface LoopSide {
  loop: DataPlaneLoop;
  tun: FakeBatchTun;
  slots: UdpSlots;
  /** The loop's socket on the channel. */
  udp: ChannelUdp;
  events: CoreEvent[];
}

function slots(n: number) {
  return {
    rx: Array.from({ length: n }, () => PacketBuf.alloc(SLOT_BYTES)),
    // One more: the control slot.
    tx: Array.from({ length: n + 1 }, () => PacketBuf.alloc(SLOT_BYTES)),
  };
}

/** A client and a server loop over fakes, on one virtual clock. */
export class LoopPair {
  now = 1_000_000;
  wall = 1_800_000_000_000;
  readonly channel = new UdpChannel();
  readonly clientKey = generatePrivateKey();
  readonly serverKey = generatePrivateKey();
  readonly clientCore: ClientCore;
  readonly serverCore: ServerCore;
  readonly client: LoopSide;
  readonly server: LoopSide;
  /** Loop steps taken. */
  steps = 0;

  constructor(o: LoopPairOptions = {}) {
    const clock = { now: () => this.now, wall: () => this.wall };
    const batch = o.batch ?? BATCH;
    if (o.impair) {
      const up = new FaultInjector(deriveSeed(o.seed ?? 1, 0), o.impair);
      const down = new FaultInjector(deriveSeed(o.seed ?? 1, 1), o.impair);
      this.channel.fault = (d, _from, to) => {
        const f = to.startsWith("192.0.2.1:") ? up : down;
        return f.push(d, this.now).map((x) => x.data);
      };
    }
    this.serverCore = new ServerCore({
      privateKey: this.serverKey,
      clients: [{ name: "alice", publicKey: publicKeyOf(this.clientKey) }],
      pool: parseCidr("10.7.0.0/24")!,
      mtu: 1420,
      routes: [parseCidr("198.51.100.0/24")!],
      dns: [],
      keepaliveMs: 10_000,
      sessionTimeoutMs: 60_000,
      aead,
    });
    this.clientCore = new ClientCore({
      privateKey: this.clientKey,
      serverPublicKey: publicKeyOf(this.serverKey),
      aead,
      ...o.client,
    });
    const serverIp = parseIPv4("192.0.2.1")!;
    const server = { hostname: "192.0.2.1", port: 51820, ip: serverIp };
    this.server = this.#side(new ServerAdapter(this.serverCore), "192.0.2.1", 51820, batch, clock, {
      ...CLIENT_SCHED,
      flows: 256,
      upstream: false,
      ...o.serverSched,
    });
    this.client = this.#side(
      new ClientAdapter(this.clientCore, server),
      "192.0.2.10",
      40000,
      batch,
      clock,
      { ...CLIENT_SCHED, ...o.clientSched },
    );
    const throttle = (mbps: number | undefined) =>
      mbps ? { bytesPerMs: (mbps * 1e6) / 8 / 1000, burstBytes: 3000, now: clock.now } : undefined;
    this.client.udp.throttle = throttle(o.clientUplinkMbps);
    this.server.udp.throttle = throttle(o.serverUplinkMbps);
  }

  #side(
    core: ClientAdapter | ServerAdapter,
    host: string,
    port: number,
    batch: number,
    clock: { now(): number; wall(): number },
    sched: SchedParams,
  ): LoopSide {
    const s = slots(batch);
    const udp = this.channel.open(host, port, s.rx.map((b) => b.buf), s.tx.map((b) => b.buf));
    const tun = new FakeBatchTun(`tun-${host}`, batch, SLOT_BYTES, core.drops, 1024);
    tun.clock = clock.now;
    const events: CoreEvent[] = [];
    const socks = [{ udp, ...s }];
    const loop = new DataPlaneLoop({
      core,
      tun,
      socks,
      poller: new FakePoller(3),
      wake: { fd: -1, readable: () => false, drain: () => {} },
      control: new Int32Array(CTRL_WORDS),
      onEvents: (e) => events.push(...e),
      isClosed: () => false,
      clock,
      sched,
      seed: 7,
    });
    return { loop, tun, slots: socks[0]!, udp, events };
  }

  /** Starts the handshake (the client's first timers). */
  start(): void {
    this.clientCore.start(this.now, this.wall);
    this.client.loop.start();
    this.server.loop.start();
  }

  /** Steps both loops until neither has anything to read (bounded). */
  settle(): void {
    for (let i = 0; i < 10_000; i++) {
      this.client.loop.step(0);
      this.server.loop.step(0);
      this.steps++;
      const busy = this.client.tun.readable() || this.server.tun.readable() ||
        this.client.udp.readable() || this.server.udp.readable() ||
        this.client.loop.more || this.server.loop.more ||
        (this.client.loop.blocked && this.client.udp.writable()) ||
        (this.server.loop.blocked && this.server.udp.writable());
      if (!busy) return;
    }
    throw new Error("the loops did not settle in 10000 steps");
  }

  /** Runs both loops for `ms` of virtual time, jumping from deadline to deadline. */
  run(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      this.settle();
      let next = Math.min(this.client.loop.deadline, this.server.loop.deadline);
      // A side held back by its link goes on when the link takes data again.
      for (const side of [this.client, this.server]) {
        if (side.loop.blocked) next = Math.min(next, side.udp.writableAt());
      }
      if (next > end) break;
      if (next > this.now) {
        this.wall += next - this.now;
        this.now = next;
      } else {
        // A deadline at or before now right after the loops ran: they would spin.
        throw new Error(
          `a loop left its deadline at ${next} <= now ${this.now} (client ${this.client.loop.deadline} blocked ${this.client.loop.blocked} more ${this.client.loop.more} writableAt ${this.client.udp.writableAt()}, server ${this.server.loop.deadline})`,
        );
      }
    }
    this.wall += end - this.now;
    this.now = end;
    this.settle();
  }
}
