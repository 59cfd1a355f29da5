/**
 * The fast data path's event loop, run inside the data-plane Worker. It drives a protocol core
 * with a {@link BatchTun}, one {@link BatchUdp} per path and a flow scheduler, waiting in a
 * {@link Poller}: on Linux the real TUN fd, recvmmsg/sendmmsg sockets and one synchronous poll()
 * with the next deadline as the timeout. No awaits, no thread hops. In tests the same loop runs
 * over the in-memory twins, one {@link DataPlaneLoop.step} at a time on a virtual clock.
 *
 * Game packets first. A game's packet must neither wait behind a download nor be the one that is
 * dropped, so the loop does the cheap work eagerly and the expensive work in order of urgency:
 *   1. wait until the TUN, a socket (readable, or writable again after backpressure) or the
 *      wake eventfd is ready, or the next timer (core or shaper) is due;
 *   2. network -> TUN, interactive first: receive a batch; control messages and datagrams
 *      flagged interactive by their sender are opened and written to the TUN at once, bulk
 *      datagrams wait in their slots for step 5;
 *   3. TUN -> scheduler: read the TUN eagerly (it is cheap: TSO hands over 64 KiB at a time)
 *      into pool slots, each routed to its session's queue (the kernel's TUN queue stays short,
 *      so the kernel never drops at random there);
 *   4. scheduler -> network: dequeue in fq_codel order (sparse flows first, DRR between
 *      sessions, shaping where asked), seal with the interactive flag, DSCP and the inner ECN
 *      copied out (RFC 6040), send; on EAGAIN keep what is left and wait for POLLOUT
 *      (backpressure, not loss: the scheduler, not the kernel, decides what waits or drops);
 *   5. the bulk datagrams of step 2: opened and written; when the socket's receive queue is over
 *      half full (the CPU is the bottleneck), shed unread instead (counted), so that the kernel
 *      never has to drop, at random, a game packet;
 *   6. timers (the core's, the shapers') and control output.
 *
 * Multipath clients have one UDP socket per path; a sealed packet goes out on the socket its
 * destination names (`via`) and is copied to every further destination (redundant mode). Their
 * sends do not hold back on EAGAIN (a copy that does not fit is dropped and counted): one path's
 * full buffer must not stall the others.
 *
 * @module
 */
import type { PacketBuf } from "../../core/packet.ts";
import { formatIPv4, parseIPv4 } from "../../lib/ip.ts";
import { formatIPv6, parseIPv6 } from "../../lib/ip6.ts";
import { ecnOf, markCe } from "../../lib/ecn.ts";
import { type PacketResult, Verdict } from "../../core/result.ts";
import type { Endpoint } from "../../lib/endpoint.ts";
import { HEADER_FLAG_INTERACTIVE, MessageType } from "../../core/wire.ts";
import { flowHash, matchesPriority, type PriorityRule } from "../../core/sched/classify.ts";
import { LinkScheduler, type Shaping } from "../../core/sched/link.ts";
import { Meta } from "../../core/sched/pool.ts";
import type { SchedCounters } from "../../core/sched/flows.ts";
import type { BatchTun } from "../../io/tun/batch.ts";
import type { BatchUdp, SocketMemory } from "../../io/udp/batch.ts";
import { type Pollable, type Poller, POLLIN, POLLOUT } from "../../io/poll.ts";
import type { CoreAdapter, CoreEvent, Outgoing } from "../engine.ts";
import { CTRL_COMMAND, CTRL_STOP } from "./messages.ts";

/** Batches per direction per loop turn before the other direction gets a go. */
const BATCHES_PER_TURN = 4;
/** Packets per TUN read into the scheduler. */
const READ_BATCH = 64;
/**
 * Packets sealed and sent per pump at most (a turn pumps after each receive batch, so between
 * two looks at the sockets and the TUN). Reading the TUN is cheap and sealing is not, so a busy
 * loop reads more than it seals: the backlog then waits in the scheduler, where a game
 * packet goes first and CoDel drops bulk, instead of in the kernel's TUN queue, where it would
 * wait in line and be dropped at random when that queue is full.
 */
const PUMP_BUDGET = 128;
/** TUN reads per turn at most (the kernel's TUN queue must not fill while we are busy). */
const READS_PER_TURN = 8;
/**
 * Longest wait with no timer due (ms). The deadlines cover every timer and the wake eventfd
 * every command, so this is only a bound on poll()'s int timeout, not a tick.
 */
const MAX_SLEEP_MS = 3_600_000;
/** Endpoints cached for the server's receive path (a flood of sources just recycles it). */
const MAX_ENDPOINTS = 65536;
/** Control datagrams held while the socket pushes back (beyond: the oldest are dropped). */
const MAX_HELD_CONTROL = 256;
/**
 * Shed bulk datagrams unread while the socket's receive queue is over this share of its limit,
 * and until it falls under the second one (hysteresis).
 */
const SHED_ABOVE = 0.5;
const SHED_BELOW = 0.25;
/**
 * The shares apply to at most this much of the limit (a client's 256 KiB buffer, doubled by the
 * kernel): a server's larger buffer sheds bulk at the same queue depth, and the room above is
 * only there to absorb a stall of the loop (1000 clients' game packets overflowed 512 KiB when
 * the server was held up for ~40 ms on a shared vCPU, in bench/clients.ts).
 */
const SHED_BASE_BYTES = 512 << 10;
/**
 * Behind a slow link (the socket pushed back lately), the send buffer follows the link's rate:
 * the kernel's queue below us is held to about this much time, so that the queue lives in the
 * scheduler, where a game packet goes first, instead of in a qdisc where it waits in line. (The
 * kernel doubles SO_SNDBUF and signals POLLOUT below half of that: the qdisc then holds between
 * one and two of these.)
 */
const KERNEL_QUEUE_MS = 1.5;
/** ...but never less than this (the link must not run dry while we wake up). */
const KERNEL_QUEUE_MIN_BYTES = 8 << 10;
/** The send buffer the Worker opens sockets with, restored when the link stops pushing back. */
export const DEFAULT_SNDBUF_BYTES = 64 << 10;
/** How often the link's rate is measured while it pushes back, and how long without
 * backpressure before the default buffer returns (ms). */
const RATE_WINDOW_MS = 100;
const RELAX_MS = 2000;
/** Datagram bytes assumed per GSO segment when sizing bursts. */
const SEGMENT_BYTES = 1500;

/** Poller entries: the TUN, the wake eventfd, then one per socket. */
const ENTRY_TUN = 0;
const ENTRY_WAKE = 1;
const ENTRY_SOCK = 2;

/** An endpoint with its IPv4 address as a number, as the send path needs it. */
interface NumEndpoint extends Endpoint {
  /** IPv4 address (0 for IPv6). */
  ip: number;
  /** IPv6 address bytes. */
  ip6?: Uint8Array;
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

/** The flow scheduler's settings. */
export interface SchedParams {
  /** Flow queues per session (a power of two): many on a client, fewer per client on a server. */
  flows: number;
  /** Most packets one session may have queued (over it: drops from its fattest flow). */
  limitPackets: number;
  /** Explicit priority rules for every packet read from this loop's TUN. */
  priority: PriorityRule[];
  /** The DSCP of interactive packets' outer headers (0: none). */
  dscp: number;
  /** Shaping of everything this loop sends (the client's `shaping.up`). */
  shaping?: Shaping;
  /** True on a client: its TUN packets go up, their remote address is the destination. */
  upstream: boolean;
}

/** Defaults: a client's single queue. */
export const CLIENT_SCHED: SchedParams = {
  flows: 1024,
  limitPackets: 1024,
  priority: [],
  dscp: 0,
  upstream: true,
};

/** What the scheduler and the receive path did (for logs, status and tests). */
export interface LoopStats extends SchedCounters {
  /** Datagrams sent flagged interactive, and the others. */
  interactive: number;
  bulk: number;
  /** Times a send hit a full socket buffer and the loop waited for POLLOUT. */
  backpressure: number;
  /** The send buffer in force (bytes asked of SO_SNDBUF; it follows a slow link's rate). */
  sendBuffer: number;
  /** The link rate measured while it pushed back (bytes per ms), 0 before. */
  linkRate: number;
  /** Bulk datagrams shed unread by an overloaded receiver (also in drops as `shed`). */
  shed: number;
}

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
  /** Default: {@link CLIENT_SCHED}. */
  sched?: SchedParams;
  /** Seed of the flow hash (default: random). */
  seed?: number;
}

/** The data-plane loop. */
export class DataPlaneLoop {
  /** The flow scheduler (its pool slots are the TUN's read buffers). */
  readonly sched: LinkScheduler;
  /** What happened on the way (the scheduler's counters are in here too). */
  readonly stats: LoopStats;
  readonly #p: LoopParts;
  readonly #clock: LoopClock;
  readonly #socks: UdpSlots[];
  readonly #params: SchedParams;
  readonly #seed: number;
  /** Priority rules per session key (the server's, from each client's request). */
  readonly #rules = new Map<number, PriorityRule[]>();
  /** Send counts per socket during one multipath batch. */
  readonly #txCount: Int32Array;
  /** The TUN read: the pool slots it reads into, their buffers, and lengths. */
  readonly #readSlots = new Int32Array(READ_BATCH);
  readonly #readBufs: Uint8Array[] = new Array(READ_BATCH);
  readonly #readSizes = new Int32Array(READ_BATCH);
  /** Lengths of a TUN batch write. */
  readonly #writeSizes: Int32Array;
  /** Receive slots held back for step 5 (bulk), by index. */
  readonly #deferred: Int32Array;
  #deferredCount = 0;
  /** The receiving socket's memory, read when a batch came full. */
  readonly #mem: SocketMemory = { rxQueued: 0, rxLimit: 0, txQueued: 0, txLimit: 0, rxDrops: 0 };
  #shedding = false;
  /** Backpressure on socket 0: tx slots [#pendFrom, #pendTo) are sealed and wait for POLLOUT. */
  #pendFrom = 0;
  #pendTo = 0;
  /** Control datagrams that wait for the socket (sent before any data when it opens up). */
  readonly #heldControl: Outgoing[] = [];
  /** The tx slot reserved for control datagrams (the last one). */
  readonly #ctlSlot: number;
  readonly #endpoints = new Map<number, NumEndpoint>();
  #deadline = 0;
  /** The link-rate window: when it started, bytes sent in it, whether it pushed back. */
  #winStart = 0;
  #winBytes = 0;
  #winLimited = false;
  #lastLimitedAt = -Infinity;
  /** The last pump stopped at its budget with packets left that may go now. */
  #more = false;
  /** Per socket: its `txDropped` as already added to `send_failed`. */
  readonly #seenTxDropped: Float64Array;
  /** Sockets' refused datagrams counted before they were replaced (see setUdp). */
  #retiredTxDropped = 0;

  constructor(p: LoopParts) {
    this.#p = p;
    this.#clock = p.clock ?? REAL_CLOCK;
    this.#socks = p.socks;
    this.#params = p.sched ?? CLIENT_SCHED;
    if (p.socks.length === 0) throw new RangeError("the data-plane loop needs a socket");
    const rxMost = Math.max(...p.socks.map((s) => s.rx.length));
    if (p.tun.writeBuffers.length < rxMost) {
      throw new RangeError("the TUN needs a write buffer per receive slot");
    }
    if (p.tun.readBuffers.length < READ_BATCH) {
      throw new RangeError(`the TUN needs at least ${READ_BATCH} read buffers (the pool)`);
    }
    if (p.socks.some((s) => s.tx.length < 2 + p.core.maxExtra)) {
      throw new RangeError("each socket needs send slots for a packet, its copies and control");
    }
    const rnd = new Uint32Array(1);
    if (p.seed === undefined) crypto.getRandomValues(rnd);
    this.#seed = p.seed ?? rnd[0]!;
    this.sched = new LinkScheduler({
      poolSize: p.tun.readBuffers.length,
      queue: {
        flows: this.#params.flows,
        limitPackets: this.#params.limitPackets,
        priorityTin: this.#params.priority.length > 0 || !this.#params.upstream,
      },
    });
    this.stats = Object.assign(this.sched.counters as LoopStats, {
      interactive: 0,
      bulk: 0,
      backpressure: 0,
      shed: 0,
      sendBuffer: DEFAULT_SNDBUF_BYTES,
      linkRate: 0,
    });
    if (this.#params.shaping) this.sched.shape(0, this.#params.shaping);
    this.#ctlSlot = p.socks[0]!.tx.length - 1;
    this.#txCount = new Int32Array(p.socks.length);
    this.#seenTxDropped = new Float64Array(p.socks.map((s) => s.udp.txDropped ?? 0));
    this.#writeSizes = new Int32Array(p.tun.writeBuffers.length);
    this.#deferred = new Int32Array(rxMost);
    p.poller.set(ENTRY_TUN, p.tun, POLLIN);
    p.poller.set(ENTRY_WAKE, p.wake, POLLIN);
    p.socks.forEach((s, k) => p.poller.set(ENTRY_SOCK + k, s.udp, POLLIN));
  }

  /** The next deadline (the core's or a shaper's) as the loop last saw it. */
  get deadline(): number {
    return this.#deadline;
  }

  /** True when the last turn left packets in the scheduler that may go now (its budget ran
   * out): the next wait must not sleep. */
  get more(): boolean {
    return this.#more;
  }

  /** True while sealed datagrams wait for the socket to take them (backpressure). */
  get blocked(): boolean {
    return this.#pendTo > this.#pendFrom || this.#heldControl.length > 0;
  }

  /** The cached endpoint object for (ip, port, local): the same object every time, no
   * allocation. `local` is the socket's local address index (0..31). */
  endpoint(ip: number, port: number, local = 0): NumEndpoint {
    const key = (ip * 65536 + port) * 32 + local; // < 2^53
    let e = this.#endpoints.get(key);
    if (!e) {
      if (this.#endpoints.size >= MAX_ENDPOINTS) this.#endpoints.clear();
      e = local
        ? { hostname: formatIPv4(ip), port, ip, local }
        : { hostname: formatIPv4(ip), port, ip };
      this.#endpoints.set(key, e);
    }
    return e;
  }

  /** The endpoint rx slot `i` of `udp` came from (IPv4 or IPv6, with its local address). */
  #from(udp: BatchUdp, i: number): NumEndpoint {
    const local = udp.rxLocal[i]!;
    if (udp.rxV6[i] === 0) return this.endpoint(udp.rxIp[i]!, udp.rxPort[i]!, local);
    // IPv6: keyed by a hash of the address, checked against the bytes (a collision replaces).
    const a = udp.rxIp6, at = 16 * i, port = udp.rxPort[i]!;
    let h = 0x811c9dc5;
    for (let b = 0; b < 16; b++) h = Math.imul(h ^ a[at + b]!, 0x01000193);
    const key = -(((h >>> 0) * 65536 + port) * 32 + local) - 1; // negative: apart from IPv4 keys
    let e = this.#endpoints.get(key);
    let same = e?.ip6 !== undefined;
    for (let b = 0; b < 16 && same; b++) same = e!.ip6![b] === a[at + b];
    if (!e || !same) {
      if (this.#endpoints.size >= MAX_ENDPOINTS) this.#endpoints.clear();
      const ip6 = a.slice(at, at + 16);
      e = { hostname: formatIPv6(ip6), port, ip: 0, ip6 };
      if (local) e.local = local;
      this.#endpoints.set(key, e);
    }
    return e;
  }

  /** Replaces path `index`'s UDP socket (after a rebind); the next wait watches the new one.
   * The new socket must use the same slots as the old one; what waited for the old one is
   * sent on the new one. */
  setUdp(udp: BatchUdp, index = 0): void {
    const old = this.#socks[index]!.udp;
    // The sealed datagrams that wait (backpressure) have their lengths and addresses in the old
    // socket's per-slot arrays: they go along, or they would leave as 0 bytes to 0.0.0.0:0.
    if (index === 0 && udp !== old) {
      for (let i = this.#pendFrom; i < this.#pendTo; i++) {
        udp.txLen[i] = old.txLen[i]!;
        udp.txIp[i] = old.txIp[i]!;
        udp.txPort[i] = old.txPort[i]!;
        udp.txV6[i] = old.txV6[i]!;
        udp.txIp6.set(old.txIp6.subarray(16 * i, 16 * i + 16), 16 * i);
        // A local address index names an entry of the old socket's table: let the route choose.
        udp.txLocal[i] = 0;
        udp.txTos[i] = old.txTos[i]!;
      }
    }
    this.#retiredTxDropped += (old.txDropped ?? 0) - this.#seenTxDropped[index]!;
    this.#seenTxDropped[index] = udp.txDropped ?? 0;
    this.#socks[index]!.udp = udp;
    this.#p.poller.set(
      ENTRY_SOCK + index,
      udp,
      this.blocked && index === 0 ? POLLIN | POLLOUT : POLLIN,
    );
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
      const wait = this.#p.tun.buffered || this.#more ? 0 : this.#deadline - this.#clock.now();
      this.step(Math.max(0, Math.min(MAX_SLEEP_MS, Math.ceil(wait))));
    }
  }

  /**
   * One turn: waits up to `timeoutMs` (0: just looks), moves what is ready both ways in the
   * order above, and runs the timers that are due. Tests call this directly, with fakes.
   */
  step(timeoutMs = 0): void {
    const p = this.#p;
    const poller = p.poller;
    const ready = poller.wait(timeoutMs);
    const t = this.#clock.now();
    this.#more = false;
    if (ready > 0 || p.tun.buffered) {
      if (poller.revents(ENTRY_WAKE) !== 0) p.wake.drain();
      // Backpressure: the socket takes data again.
      if (this.blocked && (poller.revents(ENTRY_SOCK) & POLLOUT) !== 0) this.#resume();
      let net = (poller.revents(ENTRY_SOCK) & POLLIN) !== 0;
      let tun = (poller.revents(ENTRY_TUN) & POLLIN) !== 0 || p.tun.buffered;
      for (let turn = 0; turn < BATCHES_PER_TURN && (net || tun); turn++) {
        const s = this.#socks[0]!;
        const full = net && this.#receive(t, s);
        if (tun) tun = this.#readTun(t);
        this.#pump(t);
        if (net) this.#receiveBulk(t, s);
        net = full;
      }
      if (this.#socks.length > 1) this.#fromOtherPaths(t);
    }
    this.#pump(t); // shapers and backpressure may allow more now
    if (this.#socks.length === 1) this.#tuneSendBuffer(t);
    this.#countRefused();
    // Packets can set timers (a send arms the client's liveness probe): ask again.
    this.#deadline = Math.min(p.core.deadline(), this.sched.deadline());
    if (t >= this.#deadline || p.core.pending) this.#timers(t);
  }

  /** Datagrams the sockets refused for good (no route, a firewall) since the last look: into
   * `send_failed`, beside those a full multipath socket dropped. */
  #countRefused(): void {
    const drops = this.#p.core.drops;
    if (this.#retiredTxDropped > 0) {
      drops.send_failed += this.#retiredTxDropped;
      this.#retiredTxDropped = 0;
    }
    for (let k = 0; k < this.#socks.length; k++) {
      const n = this.#socks[k]!.udp.txDropped;
      if (n === undefined || n === this.#seenTxDropped[k]) continue;
      drops.send_failed += n - this.#seenTxDropped[k]!;
      this.#seenTxDropped[k] = n;
    }
  }

  /** Says goodbye and flushes it (after run() returned because of the stop flag). */
  stop(): void {
    this.#p.core.stop();
    this.#flush();
  }

  /** The drops to report: the core's, with the scheduler's added. */
  /** Writes one packet to the TUN now (a DNS answer held for domain following); between
   * steps only, when no batch is using the write buffers. */
  writeTun(pkt: Uint8Array): boolean {
    const tun = this.#p.tun;
    const dst = tun.writePackets[0]!;
    if (pkt.length > dst.length) return false;
    dst.set(pkt);
    this.#writeSizes[0] = pkt.length;
    return tun.write(tun.writeBuffers, this.#writeSizes, 1) === 1;
  }

  dropsWithScheduler(): Record<string, number> {
    const d: Record<string, number> = { ...this.#p.core.drops };
    d.codel = (d.codel ?? 0) + this.stats.codel;
    d.overflow = (d.overflow ?? 0) + this.stats.overflow;
    return d;
  }

  /** Multipath: drains the other paths' sockets that the poller reported readable. */
  #fromOtherPaths(now: number): void {
    for (let k = 1; k < this.#socks.length; k++) {
      if ((this.#p.poller.revents(ENTRY_SOCK + k) & POLLIN) === 0) continue;
      const s = this.#socks[k]!;
      for (let turn = 0; turn < BATCHES_PER_TURN; turn++) {
        const full = this.#receive(now, s);
        this.#receiveBulk(now, s);
        if (!full) break;
      }
    }
  }

  /**
   * Step 2: one receive batch; control and interactive datagrams are handled now, bulk ones are
   * kept for {@link #receiveBulk} (or shed, when the receive queue is backing up). Returns true
   * when the batch was full (more may be waiting).
   */
  #receive(now: number, s: UdpSlots): boolean {
    const { core, tun } = this.#p;
    const { udp, rx } = s;
    this.#deferredCount = 0;
    const n = udp.recv();
    if (n <= 0) return false;
    const full = n === rx.length;
    // A full batch: is the kernel's queue backing up? (One getsockopt, only then.)
    if (full && udp.memory(this.#mem)) {
      const share = this.#mem.rxQueued / Math.min(this.#mem.rxLimit, SHED_BASE_BYTES);
      if (share > SHED_ABOVE) this.#shedding = true;
      else if (share < SHED_BELOW) this.#shedding = false;
    } else if (!full) {
      this.#shedding = false;
    }
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
      if (
        len > 16 && d.buf[1] === MessageType.Data && (d.buf[3]! & HEADER_FLAG_INTERACTIVE) === 0
      ) {
        if (this.#shedding) {
          core.drops.shed++;
          this.stats.shed++;
        } else {
          this.#deferred[this.#deferredCount++] = i;
        }
        continue;
      }
      const from = this.#from(udp, i);
      const r = core.receive(now, d, from, packets[w]!, udp.rxTos[i]! & 3);
      if (r.verdict === Verdict.Tun) sizes[w++] = r.length;
    }
    if (w > 0) tun.write(tun.writeBuffers, sizes, w);
    if (core.pending) this.#flush();
    return full;
  }

  /** Step 5: the bulk datagrams {@link #receive} held back. */
  #receiveBulk(now: number, s: UdpSlots): void {
    const n = this.#deferredCount;
    if (n === 0) return;
    this.#deferredCount = 0;
    const { core, tun } = this.#p;
    const { udp, rx } = s;
    const packets = tun.writePackets;
    const sizes = this.#writeSizes;
    let w = 0;
    for (let k = 0; k < n; k++) {
      const i = this.#deferred[k]!;
      const from = this.#from(udp, i);
      const r = core.receive(now, rx[i]!, from, packets[w]!, udp.rxTos[i]! & 3);
      if (r.verdict === Verdict.Tun) sizes[w++] = r.length;
    }
    if (w > 0) tun.write(tun.writeBuffers, sizes, w);
    if (core.pending) this.#flush();
  }

  /**
   * Step 3: reads the TUN into pool slots, each queued for its session. Returns true when more
   * may be waiting (a read came full, or the device holds the rest of a super-packet).
   */
  #readTun(now: number): boolean {
    const { core, tun } = this.#p;
    const sched = this.sched;
    const pool = sched.pool;
    const bufs = tun.readBuffers;
    const rules = this.#params.priority;
    for (let r = 0; r < READS_PER_TURN; r++) {
      // The memory bound: room for a read, made by dropping from the fattest flows if needed.
      if (pool.available < READ_BATCH) sched.makeRoom(READ_BATCH);
      let n = 0;
      for (; n < READ_BATCH; n++) {
        const slot = pool.alloc();
        if (slot < 0) break;
        this.#readSlots[n] = slot;
        this.#readBufs[n] = bufs[slot]!;
      }
      const got = tun.read(this.#readBufs, this.#readSizes, n);
      for (let i = got; i < n; i++) pool.release(this.#readSlots[i]!);
      for (let i = 0; i < got; i++) {
        const slot = this.#readSlots[i]!;
        const buf = this.#readBufs[i]!;
        const len = this.#readSizes[i]!;
        const key = core.route(buf, len);
        if (key < 0) {
          pool.release(slot);
          continue;
        }
        pool.len[slot] = len;
        pool.meta[slot] = ecnOf(buf);
        const own = this.#rules.size > 0 ? this.#rules.get(key) ?? rules : rules;
        const prio = own.length > 0 && matchesPriority(buf, len, own, this.#params.upstream);
        sched.enqueue(key, slot, flowHash(buf, len, this.#seed), prio, now);
      }
      if (got < n || (got === 0 && !tun.buffered)) return tun.buffered;
    }
    return true;
  }

  /**
   * Step 4: dequeues, seals and sends until the scheduler has nothing that may go now, or the
   * socket pushes back (then the rest waits for POLLOUT).
   */
  #pump(now: number, budget = PUMP_BUDGET): void {
    if (this.blocked) return;
    if (this.#socks.length > 1) return this.#pumpPaths(now);
    const { core } = this.#p;
    const s = this.#socks[0]!;
    const room = 1 + core.maxExtra;
    // Slots [0, last) carry data. Behind a slow link, a batch is no bigger than the send buffer
    // takes: what the socket refuses waits sealed, in order, and a game packet would wait
    // behind all of it.
    const last = this.#linkLimited(now)
      ? Math.min(this.#ctlSlot, room + Math.ceil(this.stats.sendBuffer / SEGMENT_BYTES))
      : this.#ctlSlot;
    for (;;) {
      let count = 0;
      while (count + room <= last) {
        if (budget <= 0) {
          this.#more = true; // more may go now: the next wait does not sleep
          break;
        }
        const slot = this.sched.dequeue(now);
        if (slot < 0) break;
        budget--;
        count = this.#sealOne(now, s, slot, count);
      }
      if (count === 0) return;
      const sent = s.udp.send(count);
      for (let j = 0; j < sent; j++) this.#winBytes += s.udp.txLen[j]!;
      if (sent < count) {
        // Backpressure: keep the rest sealed in its slots, wait for POLLOUT.
        this.#pendFrom = sent;
        this.#pendTo = count;
        this.#hold();
        return;
      }
      if (count + room <= last) return; // the scheduler ran dry (or the budget is spent)
    }
  }

  /** The socket pushed back: wait for POLLOUT (counted once per episode). */
  #hold(): void {
    this.stats.backpressure++;
    this.#winLimited = true;
    this.#p.poller.setEvents(ENTRY_SOCK, POLLIN | POLLOUT);
  }

  /** True while the link pushes back (lately): sends are then sized to the send buffer. */
  #linkLimited(now: number): boolean {
    return this.#winLimited || now - this.#lastLimitedAt <= RELAX_MS;
  }

  /**
   * Once per window: while the link pushes back, its rate is what the socket took; the send
   * buffer (and GSO bursts) follow it, so the qdisc below holds about KERNEL_QUEUE_MS. When the
   * link has not pushed back for a while, the default buffer returns.
   */
  #tuneSendBuffer(now: number): void {
    const elapsed = now - this.#winStart;
    if (elapsed < RATE_WINDOW_MS) return;
    const st = this.stats;
    const udp = this.#socks[0]!.udp;
    let want = st.sendBuffer;
    if (this.#winLimited) {
      this.#lastLimitedAt = now;
      const rate = this.#winBytes / elapsed;
      st.linkRate = st.linkRate === 0 ? rate : st.linkRate + (rate - st.linkRate) / 4;
      want = Math.max(KERNEL_QUEUE_MIN_BYTES, Math.round(st.linkRate * KERNEL_QUEUE_MS));
      want = Math.min(want, DEFAULT_SNDBUF_BYTES);
    } else if (now - this.#lastLimitedAt > RELAX_MS) {
      want = DEFAULT_SNDBUF_BYTES;
    }
    if (Math.abs(want - st.sendBuffer) > st.sendBuffer / 4 || want === DEFAULT_SNDBUF_BYTES) {
      if (want !== st.sendBuffer && udp.setSendBuffer(want) > 0) {
        st.sendBuffer = want;
        udp.gsoSegments = Math.max(1, Math.min(64, Math.floor(want / SEGMENT_BYTES)));
      }
    }
    this.#winStart = now;
    this.#winBytes = 0;
    this.#winLimited = false;
  }

  /**
   * POLLOUT after backpressure: the control datagrams that waited go first (handshakes and
   * pongs are the most urgent), then the sealed data; when all of it went, data flows again.
   */
  #resume(): void {
    while (this.#heldControl.length > 0) {
      if (!this.#sendOne(this.#heldControl[0]!)) return;
      this.#heldControl.shift();
    }
    if (this.#pendTo > this.#pendFrom) {
      const s = this.#socks[0]!;
      const sent = s.udp.send(this.#pendTo - this.#pendFrom, this.#pendFrom);
      for (let j = this.#pendFrom; j < this.#pendFrom + sent; j++) {
        this.#winBytes += s.udp.txLen[j]!;
      }
      this.#pendFrom += sent;
      if (this.#pendFrom < this.#pendTo) return;
      this.#pendFrom = this.#pendTo = 0;
    }
    this.#p.poller.setEvents(ENTRY_SOCK, POLLIN);
  }

  /** Dequeued pool slot `slot`, sealed into send slot `count` of `s` (and its redundant copies
   * after it); returns the next free send slot. The pool slot is released. */
  #sealOne(now: number, s: UdpSlots, slot: number, count: number): number {
    const sealed = s.tx[count]!;
    const r = this.#sealSlot(now, slot, sealed);
    if (!r) return count;
    const tos = this.#tos;
    address(s, count, r.length, r.to!, tos);
    count++;
    for (let i = 0; i < r.extraCount; i++) {
      queue(s, count++, sealed, r.length, r.extra![i]!, tos);
    }
    return count;
  }

  /** The outer TOS of the packet {@link #sealSlot} sealed last. */
  #tos = 0;

  /**
   * Seals pool slot `slot` into `sealed` (CE mark and interactive flag from its meta), releases
   * the slot and counts the class; the result, or undefined when the core did not seal it. The
   * outer TOS goes to {@link #tos}: the game DSCP for interactive packets and the inner ECN
   * field copied (RFC 6040 normal mode), read before the slot is reused.
   */
  #sealSlot(now: number, slot: number, sealed: PacketBuf): PacketResult | undefined {
    const pool = this.sched.pool;
    const buf = this.#p.tun.readBuffers[slot]!;
    const meta = pool.meta[slot]!;
    if ((meta & Meta.MARK_CE) !== 0) markCe(buf);
    const interactive = (meta & Meta.INTERACTIVE) !== 0;
    const r = this.#p.core.seal(
      now,
      this.sched.lastKey,
      buf,
      pool.len[slot]!,
      sealed,
      interactive ? HEADER_FLAG_INTERACTIVE : 0,
    );
    this.#tos = (interactive ? this.#params.dscp << 2 : 0) | ecnOf(buf);
    pool.release(slot);
    if (r.verdict !== Verdict.Net) return undefined;
    if (interactive) this.stats.interactive++;
    else this.stats.bulk++;
    return r;
  }

  /**
   * Multipath client: like #pump, but each sealed packet goes to the socket of each of its
   * destinations (`via`), sealed into the first socket's next slot and copied where needed;
   * what a full socket refuses is dropped and counted.
   */
  #pumpPaths(now: number): void {
    const socks = this.#socks;
    const counts = this.#txCount;
    counts.fill(0);
    for (;;) {
      let full = false;
      for (let k = 0; k < socks.length; k++) {
        if (counts[k]! >= socks[k]!.tx.length - 1) full = true;
      }
      if (full) this.#sendPaths();
      const slot = this.sched.dequeue(now);
      if (slot < 0) break;
      const sealed = socks[0]!.tx[counts[0]!]!;
      const r = this.#sealSlot(now, slot, sealed);
      if (!r) continue;
      const tos = this.#tos;
      for (let e = -1; e < r.extraCount; e++) {
        const to = e < 0 ? r.to! : r.extra![e]!;
        const k = to.via ?? 0;
        const s = socks[k];
        if (!s) continue;
        queue(s, counts[k]!++, sealed, r.length, to, tos);
      }
    }
    this.#sendPaths();
  }

  /** Multipath: sends every socket's pending batch; a full socket's rest is dropped. */
  #sendPaths(): void {
    const counts = this.#txCount;
    for (let k = 0; k < this.#socks.length; k++) {
      const count = counts[k]!;
      counts[k] = 0;
      if (count === 0) continue;
      const sent = this.#socks[k]!.udp.send(count);
      if (sent < count) this.#p.core.drops.send_failed += count - sent;
    }
  }

  #timers(now: number): void {
    this.#p.core.tick(now, this.#clock.wall());
    this.#flush();
    this.#pump(now);
    this.#deadline = Math.min(this.#p.core.deadline(), this.sched.deadline());
  }

  /** Sends control-path datagrams (through the reserved slot of the socket named by `to.via`;
   * held while the socket pushes back) and handles and posts events. */
  #flush(): void {
    const { core } = this.#p;
    for (const o of core.takeOutbox()) {
      const main = (o.to.via ?? 0) === 0;
      if ((main && this.blocked) || !this.#sendOne(o)) {
        if (!main) {
          core.drops.send_failed++; // another path's socket: no holding back there
          continue;
        }
        if (this.#heldControl.length >= MAX_HELD_CONTROL) {
          this.#heldControl.shift();
          core.drops.send_failed++;
        }
        const wasBlocked = this.blocked;
        this.#heldControl.push(o);
        if (!wasBlocked) this.#hold();
      }
    }
    const events = core.takeEvents();
    if (events.length === 0) return;
    for (const e of events) this.#onEvent(e);
    this.#p.onEvents(events);
  }

  /** What the loop itself does about an event: configure or forget a session's queue. */
  #onEvent(e: CoreEvent): void {
    switch (e.type) {
      case "queue":
        this.sched.shape(e.key, {
          rateBps: e.queue.downBps,
          overheadBytes: e.queue.overheadBytes,
        });
        this.#rules.set(e.key, [...this.#params.priority, ...e.queue.priority]);
        break;
      case "session_expired":
      case "session_closed": {
        // The server's session of queue key `e.key` is gone: forget its queue (unless a new
        // session took the key meanwhile).
        if (!this.#p.core.hasKey(e.key)) {
          this.sched.remove(e.key);
          this.#rules.delete(e.key);
        }
        break;
      }
    }
  }

  /** One control datagram through the reserved send slot; false when the socket is full. */
  #sendOne(o: Outgoing): boolean {
    const s = this.#socks[o.to.via ?? 0] ?? this.#socks[0]!;
    const j = s.tx.length - 1;
    const slot = s.tx[j]!;
    if (o.data.length > slot.buf.length) return true;
    slot.buf.set(o.data);
    address(s, j, o.data.length, o.to, 0);
    return s.udp.send(1, j) === 1;
  }
}

/**
 * The IPv4 address of an endpoint given as text (the client's server, set by the runtime);
 * an IPv6 one is written into slot `j`'s `txIp6` (and flagged) instead, 0 returned.
 */
function endpointIp(to: Endpoint, udp: BatchUdp, j: number): number {
  const v4 = parseIPv4(to.hostname);
  if (v4 !== undefined) return v4;
  const v6 = parseIPv6(to.hostname);
  if (v6) {
    udp.txV6[j] = 1;
    udp.txIp6.set(v6, 16 * j);
  }
  return 0;
}

/** Sets the length, destination and TOS byte of send slot `j` of `s`. */
function address(s: UdpSlots, j: number, len: number, to: Endpoint, tos: number): void {
  const udp = s.udp;
  udp.txLen[j] = len;
  const n = to as NumEndpoint;
  if (n.ip6 !== undefined) {
    udp.txV6[j] = 1;
    udp.txIp6.set(n.ip6, 16 * j);
  } else {
    udp.txV6[j] = 0;
    udp.txIp[j] = n.ip ?? endpointIp(to, udp, j);
  }
  udp.txPort[j] = to.port;
  udp.txTos[j] = tos;
  udp.txLocal[j] = to.local ?? 0;
}

/**
 * Puts a copy of the sealed datagram `sealed[0..len)` into send slot `j` of `s`, addressed to
 * `to` (nothing to copy when the datagram was sealed into that very slot).
 */
function queue(
  s: UdpSlots,
  j: number,
  sealed: PacketBuf,
  len: number,
  to: Endpoint,
  tos: number,
): void {
  const slot = s.tx[j]!;
  if (slot !== sealed) slot.buf.set(sealed.buf.subarray(0, len));
  address(s, j, len, to, tos);
}
