/**
 * The fast data path's event loop, run inside the data-plane Worker. It drives a protocol core
 * with a {@link BatchTun} and one {@link BatchUdp} per path, waiting in a {@link Poller}: on
 * Linux the real TUN fd, recvmmsg/sendmmsg sockets and one synchronous poll(), with the core's
 * next deadline as the timeout. No awaits, no thread hops: a packet that arrives is handled on
 * this thread as soon as the kernel wakes it. In tests the same loop runs over the in-memory
 * twins, one {@link DataPlaneLoop.step} at a time on a virtual clock.
 *
 * One turn of the loop:
 *   1. wait until the TUN, a socket or the wake eventfd is readable, or the next timer is due;
 *   2. network -> TUN: receive a batch into the receive slots; the core opens each datagram
 *      into one of the TUN's write buffers; one batch write hands them all to the TUN (which
 *      may join TCP segments of a flow into one write);
 *   3. TUN -> network: one batch read (the TUN cuts super-packets into segments); each packet
 *      is sealed straight into its own send slot; one batch send (GSO-merged where possible);
 *   4. the core's deadline is asked again (a send can arm a timer), and timers run when due,
 *      with control-path output (handshakes, pongs, config) after them.
 * Both directions get a bounded number of batches per turn, so neither starves the other and
 * no queue builds up inside xvpn: under overload the kernel's socket and TUN queues hold the
 * backlog (and drop), which keeps added latency at one batch.
 *
 * Multipath clients have one UDP socket per path, all in the same wait; a sealed packet is
 * sent on the socket its destination names (`via`), and copied into the send slots of every
 * further destination (redundant mode; the server's redundant sessions likewise copy it for each
 * recent client endpoint). With one socket and one destination, which is every single-path
 * tunnel, none of this runs: the per-packet cost is one comparison.
 *
 * @module
 */
import type { PacketBuf } from "../../core/packet.ts";
import { formatIPv4, parseIPv4 } from "../../lib/ip.ts";
import { Verdict } from "../../core/result.ts";
import type { Endpoint } from "../../lib/endpoint.ts";
import type { BatchTun } from "../../io/tun/batch.ts";
import type { BatchUdp } from "../../io/udp/batch.ts";
import { type Pollable, type Poller, POLLIN } from "../../io/poll.ts";
import type { CoreAdapter, CoreEvent, Outgoing } from "../engine.ts";
import { CTRL_COMMAND, CTRL_STOP } from "./messages.ts";

/** Batches per direction per loop turn before the other direction gets a go. */
const BATCHES_PER_TURN = 4;
/**
 * Longest wait with no timer due (ms). The core's deadline covers every timer and the wake
 * eventfd every command, so this is only a bound on poll()'s int timeout, not a tick.
 */
const MAX_SLEEP_MS = 3_600_000;
/** Endpoints cached for the server's receive path (a flood of sources just recycles it). */
const MAX_ENDPOINTS = 4096;
/** Poller entries: the TUN, the wake eventfd, then one per socket. */
const ENTRY_TUN = 0;
const ENTRY_WAKE = 1;
const ENTRY_SOCK = 2;

/** An endpoint with its IPv4 address as a number, as the send path needs it. */
interface NumEndpoint extends Endpoint {
  ip: number;
}

/** A UDP socket with its own receive and send slots. */
export interface UdpSlots {
  udp: BatchUdp;
  rx: PacketBuf[];
  tx: PacketBuf[];
}

/** The loop's clock: monotonic and wall milliseconds (virtual in tests). */
export interface LoopClock {
  now(): number;
  wall(): number;
}

/** The real clock. */
export const REAL_CLOCK: LoopClock = { now: () => performance.now(), wall: () => Date.now() };

/** Everything the loop drives. */
export interface LoopParts {
  core: CoreAdapter;
  tun: BatchTun;
  /** One socket per path (path order); a single-path tunnel has one. */
  socks: UdpSlots[];
  /** Waits on the TUN, the wake eventfd and the sockets. */
  poller: Poller;
  /** The eventfd the main thread writes to interrupt the wait (drained when it did). */
  wake: Pollable & { drain(): void };
  /** Shared control words (stop flag, command announced). */
  control: Int32Array;
  onEvents: (events: CoreEvent[]) => void;
  isClosed: () => boolean;
  /** Default: performance.now() and Date.now(). */
  clock?: LoopClock;
}

/** The data-plane loop. */
export class DataPlaneLoop {
  readonly #p: LoopParts;
  readonly #clock: LoopClock;
  readonly #socks: UdpSlots[];
  /** Send counts per socket during one multipath batch. */
  readonly #txCount: Int32Array;
  /** Lengths of the TUN batch read and write. */
  readonly #readSizes: Int32Array;
  readonly #writeSizes: Int32Array;
  readonly #endpoints = new Map<number, NumEndpoint>();
  #deadline = 0;

  constructor(p: LoopParts) {
    this.#p = p;
    this.#clock = p.clock ?? REAL_CLOCK;
    this.#socks = p.socks;
    if (p.socks.length === 0) throw new RangeError("the data-plane loop needs a socket");
    const rxMost = Math.max(...p.socks.map((s) => s.rx.length));
    if (p.tun.writeBuffers.length < rxMost) {
      throw new RangeError("the TUN needs a write buffer per receive slot");
    }
    this.#txCount = new Int32Array(p.socks.length);
    this.#readSizes = new Int32Array(p.tun.readBuffers.length);
    this.#writeSizes = new Int32Array(p.tun.writeBuffers.length);
    p.poller.set(ENTRY_TUN, p.tun, POLLIN);
    p.poller.set(ENTRY_WAKE, p.wake, POLLIN);
    p.socks.forEach((s, k) => p.poller.set(ENTRY_SOCK + k, s.udp, POLLIN));
  }

  /** The core's next deadline as the loop last saw it. */
  get deadline(): number {
    return this.#deadline;
  }

  /** The cached endpoint object for (ip, port): the same object every time, no allocation. */
  endpoint(ip: number, port: number): NumEndpoint {
    const key = ip * 65536 + port;
    let e = this.#endpoints.get(key);
    if (!e) {
      if (this.#endpoints.size >= MAX_ENDPOINTS) this.#endpoints.clear();
      e = { hostname: formatIPv4(ip), port, ip };
      this.#endpoints.set(key, e);
    }
    return e;
  }

  /** Replaces path `index`'s UDP socket (after a rebind); the next wait watches the new one.
   * The new socket must use the same slots as the old one. */
  setUdp(udp: BatchUdp, index = 0): void {
    this.#socks[index]!.udp = udp;
    this.#p.poller.set(ENTRY_SOCK + index, udp, POLLIN);
  }

  /** True while neither the stop flag nor a command is set and the core is open. */
  get #running(): boolean {
    const p = this.#p;
    return Atomics.load(p.control, CTRL_STOP) === 0 &&
      Atomics.load(p.control, CTRL_COMMAND) === 0 && !p.isClosed();
  }

  /** Runs the core's timers once now (call before the first {@link step}). */
  start(): void {
    this.#timers(this.#clock.now());
  }

  /** Runs until the stop flag is set, a command is announced, or the core closes for good. */
  run(): void {
    this.start();
    while (this.#running) {
      const wait = this.#p.tun.buffered ? 0 : this.#deadline - this.#clock.now();
      this.step(Math.max(0, Math.min(MAX_SLEEP_MS, Math.ceil(wait))));
    }
  }

  /**
   * One turn: waits up to `timeoutMs` (0: just looks), moves what is ready both ways, and runs
   * the timers that are due. Tests call this directly, on a virtual clock, with fakes.
   */
  step(timeoutMs = 0): void {
    const p = this.#p;
    const ready = p.poller.wait(timeoutMs);
    const t = this.#clock.now();
    if (ready > 0 || p.tun.buffered) {
      const poller = p.poller;
      // Only what the poller reported is touched: each skipped EAGAIN is a syscall saved on
      // the way of a lone game packet.
      let net = (poller.revents(ENTRY_SOCK) & POLLIN) !== 0;
      let tun = (poller.revents(ENTRY_TUN) & POLLIN) !== 0 || p.tun.buffered;
      if (poller.revents(ENTRY_WAKE) !== 0) p.wake.drain();
      // Alternate directions until both are drained (or the turn budget is used).
      for (let turn = 0; turn < BATCHES_PER_TURN && (net || tun); turn++) {
        if (net) net = this.#fromNet(t, this.#socks[0]!);
        if (tun) tun = this.#fromTun(t);
      }
      if (this.#socks.length > 1) this.#fromOtherPaths(t);
      // Packets can set timers (a send arms the client's liveness probe): ask the core.
      this.#deadline = p.core.deadline();
    }
    if (t >= this.#deadline || p.core.pending) this.#timers(t);
  }

  /** Says goodbye and flushes it (after run() returned because of the stop flag). */
  stop(): void {
    this.#p.core.stop();
    this.#flush();
  }

  /** Multipath: drains the other paths' sockets that the poller reported readable. */
  #fromOtherPaths(now: number): void {
    for (let k = 1; k < this.#socks.length; k++) {
      if ((this.#p.poller.revents(ENTRY_SOCK + k) & POLLIN) === 0) continue;
      const s = this.#socks[k]!;
      for (let turn = 0; turn < BATCHES_PER_TURN && this.#fromNet(now, s); turn++);
    }
  }

  /** One receive batch; returns true when it was full (more may be waiting). */
  #fromNet(now: number, s: UdpSlots): boolean {
    const { core, tun } = this.#p;
    const { udp, rx } = s;
    const n = udp.recv();
    if (n <= 0) return false;
    const packets = tun.writePackets;
    const sizes = this.#writeSizes;
    let w = 0;
    for (let i = 0; i < n; i++) {
      const len = udp.rxLen[i]!;
      if (len < 0) {
        core.drops.too_big++;
        continue;
      }
      const d = rx[i]!;
      d.len = len;
      const r = core.receive(now, d, this.endpoint(udp.rxIp[i]!, udp.rxPort[i]!), packets[w]!);
      if (r.verdict === Verdict.Tun) sizes[w++] = r.length;
    }
    if (w > 0) tun.write(tun.writeBuffers, sizes, w);
    if (core.pending) this.#flush();
    return n === rx.length;
  }

  /** One TUN batch read, sealed and sent; true when the read was full (more may be waiting). */
  #fromTun(now: number): boolean {
    if (this.#socks.length > 1) return this.#fromTunPaths(now);
    const { core, tun } = this.#p;
    const s = this.#socks[0]!;
    const bufs = tun.readBuffers;
    const sizes = this.#readSizes;
    const n = tun.read(bufs, sizes, bufs.length);
    if (n === 0) return false;
    // A packet and its extra copies (redundant sessions) always fit in what is left.
    const room = 1 + core.maxExtra;
    let count = 0;
    for (let i = 0; i < n; i++) {
      if (count + room > s.tx.length) count = this.#sendBatch(s, count);
      count = this.#sealOne(now, s, bufs[i]!, sizes[i]!, count);
    }
    this.#sendBatch(s, count);
    if (core.pending) this.#flush();
    return n === bufs.length || tun.buffered;
  }

  /** Seals one inner packet into send slot `count` of `s` (and its redundant copies after
   * it); returns the next free slot. */
  #sealOne(now: number, s: UdpSlots, pkt: Uint8Array, len: number, count: number): number {
    const sealed = s.tx[count]!;
    const r = this.#p.core.fromTun(now, pkt, len, sealed);
    if (r.verdict !== Verdict.Net) return count;
    address(s, count, r.length, r.to!);
    count++;
    for (let i = 0; i < r.extraCount; i++) queue(s, count++, sealed, r.length, r.extra![i]!);
    return count;
  }

  /** Sends send slots 0..count of `s` (counting what the kernel refused); returns 0. */
  #sendBatch(s: UdpSlots, count: number): number {
    if (count > 0) {
      const sent = s.udp.send(count);
      if (sent < count) this.#p.core.drops.send_failed += count - sent;
    }
    return 0;
  }

  /**
   * Multipath client: like #fromTun, but each sealed packet goes to the socket of each of its
   * destinations (`via`), sealed into the first socket's next slot and copied where needed.
   * Every socket gets at most one copy per packet, so a batch is sent when any socket is full.
   */
  #fromTunPaths(now: number): boolean {
    const { core, tun } = this.#p;
    const socks = this.#socks;
    const counts = this.#txCount;
    counts.fill(0);
    const bufs = tun.readBuffers;
    const sizes = this.#readSizes;
    const n = tun.read(bufs, sizes, bufs.length);
    for (let i = 0; i < n; i++) {
      let full = false;
      for (let k = 0; k < socks.length; k++) if (counts[k]! >= socks[k]!.tx.length) full = true;
      if (full) this.#sendPaths();
      const sealed = socks[0]!.tx[counts[0]!]!;
      const r = core.fromTun(now, bufs[i]!, sizes[i]!, sealed);
      if (r.verdict !== Verdict.Net) continue;
      for (let e = -1; e < r.extraCount; e++) {
        const to = e < 0 ? r.to! : r.extra![e]!;
        const k = to.via ?? 0;
        const s = socks[k];
        if (!s) continue;
        queue(s, counts[k]!++, sealed, r.length, to);
      }
    }
    this.#sendPaths();
    if (core.pending) this.#flush();
    return n === bufs.length || tun.buffered;
  }

  /** Multipath: sends every socket's pending batch. */
  #sendPaths(): void {
    const counts = this.#txCount;
    for (let k = 0; k < this.#socks.length; k++) {
      this.#sendBatch(this.#socks[k]!, counts[k]!);
      counts[k] = 0;
    }
  }

  #timers(now: number): void {
    this.#deadline = this.#p.core.tick(now, this.#clock.wall());
    this.#flush();
  }

  /** Sends control-path datagrams (one at a time, through send slot 0 of the socket named by
   * `to.via`) and posts events. */
  #flush(): void {
    const { core } = this.#p;
    for (const o of core.takeOutbox()) {
      const s = this.#socks[o.to.via ?? 0] ?? this.#socks[0]!;
      this.#sendOne(o, s);
    }
    const events = core.takeEvents();
    if (events.length) this.#p.onEvents(events);
  }

  #sendOne(o: Outgoing, s: UdpSlots): void {
    const slot = s.tx[0]!;
    if (o.data.length > slot.buf.length) return;
    slot.buf.set(o.data);
    address(s, 0, o.data.length, o.to);
    if (s.udp.send(1) < 1) this.#p.core.drops.send_failed++;
  }
}

/** Sets the length and destination of send slot `j` of `s`. */
function address(s: UdpSlots, j: number, len: number, to: Endpoint): void {
  const udp = s.udp;
  udp.txLen[j] = len;
  udp.txIp[j] = (to as NumEndpoint).ip ?? parseIPv4(to.hostname) ?? 0;
  udp.txPort[j] = to.port;
}

/**
 * Puts a copy of the sealed datagram `sealed[0..len)` into send slot `j` of `s`, addressed to
 * `to` (nothing to copy when the datagram was sealed into that very slot).
 */
function queue(s: UdpSlots, j: number, sealed: PacketBuf, len: number, to: Endpoint): void {
  const slot = s.tx[j]!;
  if (slot !== sealed) slot.buf.set(sealed.buf.subarray(0, len));
  address(s, j, len, to);
}
