/**
 * The flow scheduler of one direction of the tunnel (the client's way up, the server's way down):
 * one {@link SessionQueue} per destination session, served by deficit round robin so that every
 * client gets an equal share of the link whatever its number of flows (cake's per-host fairness);
 * each session's queue has one or two tins of {@link FlowQueues} (an explicit priority tin, weighted
 * at most 3 to 1 so that a misconfigured class cannot starve the rest, and the best-effort tin),
 * an optional shaper to a link rate (cake's `bandwidth`: the queue then lives here instead of in
 * a router further on), and a packet limit with drops from its fattest flow.
 *
 * Memory bound: every queued packet is a slot of one {@link PacketPool}; when it runs out, the
 * fattest flow of the longest queue loses packets first ({@link makeRoom}). Sans-I/O: time comes
 * in as `now`; {@link deadline} is when a shaped queue may send next.
 *
 * @module
 */
import {
  type CodelParams,
  DEFAULT_CODEL,
  FlowMemory,
  FlowQueues,
  type SchedCounters,
} from "./flows.ts";
import { Meta, PacketPool } from "./pool.ts";

/** Bytes per packet on the wire around the inner packet: xvpn header 16 + tag 16, UDP 8,
 * IPv4 20. The shaper counts them, and the configured link overhead on top. */
export const OUTER_OVERHEAD_BYTES = 60;
/** The DRR quantum between sessions and between flows (bytes; fq_codel's default). */
export const QUANTUM_BYTES = 1514;
/** The priority tin's weight against the best-effort tin (priority gets at most 3/4). */
const PRIORITY_WEIGHT = 3;
/** A shaper may send this far ahead of its schedule (ms): a small burst after an idle spell. */
const SHAPER_BURST_MS = 1;

/** How one session's queue is built. */
export interface QueueOptions {
  /** Flow queues per tin (a power of two). */
  flows: number;
  /** Most packets this session may have queued; over it, its fattest flow loses packets. */
  limitPackets: number;
  /** Give it a priority tin (explicit priority rules exist). */
  priorityTin: boolean;
}

/** A shaper: the link rate and the per-packet link overhead it counts. */
export interface Shaping {
  /** Bits per second; 0 or absent: not shaped. */
  rateBps: number;
  /** Bytes added per packet by the link (Ethernet framing, PPPoE, ...). */
  overheadBytes: number;
}

/** One destination's queue: tins, shaper, limit. */
export class SessionQueue {
  /** Packets queued over all tins. */
  packets = 0;
  /** DRR deficit against the other sessions. */
  deficit = 0;
  /** Link in the scheduler's active ring. */
  prev: SessionQueue | undefined;
  next: SessionQueue | undefined;
  active = false;
  /** Shaper: bytes per ms (0: unshaped), per-packet bytes counted, when it may send next. */
  #rate = 0;
  #perPacket = OUTER_OVERHEAD_BYTES;
  #nextAt = 0;
  readonly tins: FlowQueues[];
  readonly #tinDeficit: Int32Array;
  #tin = 0;

  constructor(
    readonly key: number,
    pool: PacketPool,
    readonly opts: QueueOptions,
    codel: CodelParams,
    counters: SchedCounters,
    memory?: FlowMemory,
  ) {
    const tin = () => new FlowQueues(pool, opts.flows, QUANTUM_BYTES, codel, counters, memory);
    this.tins = opts.priorityTin ? [tin(), tin()] : [tin()];
    this.#tinDeficit = new Int32Array(this.tins.length);
  }

  /** Sets (or clears, with rate 0) the shaper. */
  shape(s: Shaping | undefined): void {
    this.#rate = s && s.rateBps > 0 ? s.rateBps / 8 / 1000 : 0;
    this.#perPacket = OUTER_OVERHEAD_BYTES + (s?.overheadBytes ?? 0);
  }

  /** The shaper's rate in bits per second (0: unshaped). */
  get rateBps(): number {
    return this.#rate * 8 * 1000;
  }

  /** True when the shaper lets a packet go at `now`. */
  eligible(now: number): boolean {
    return this.#rate === 0 || this.#nextAt <= now;
  }

  /** When the shaper lets the next packet go (0: now). */
  get nextAt(): number {
    return this.#rate === 0 ? 0 : this.#nextAt;
  }

  /** Queues `slot` on flow hash `hash`, in the priority tin when `priority` is set. */
  enqueue(slot: number, hash: number, priority: boolean, now: number): void {
    const t = priority && this.tins.length > 1 ? this.tins[0]! : this.tins[this.tins.length - 1]!;
    t.enqueue(slot, t.flowFor(hash), now);
    this.packets++;
    if (this.packets > this.opts.limitPackets) this.packets -= this.dropFattest();
  }

  /** The next packet (weighted round robin over the tins), -1 when empty; charges the shaper. */
  dequeue(now: number, pool: PacketPool): number {
    const n = this.tins.length;
    let slot = -1;
    if (n === 1) {
      slot = this.tins[0]!.dequeue(now);
    } else {
      for (let tries = 0; tries < 2 * n + 2 && slot < 0; tries++) {
        const t = this.tins[this.#tin]!;
        if (t.packets === 0) {
          this.#tinDeficit[this.#tin] = 0;
          this.#tin = (this.#tin + 1) % n;
          continue;
        }
        if (this.#tinDeficit[this.#tin]! <= 0) {
          this.#tinDeficit[this.#tin]! += this.#tin === 0 && n > 1
            ? PRIORITY_WEIGHT * QUANTUM_BYTES
            : QUANTUM_BYTES;
          this.#tin = (this.#tin + 1) % n;
          continue;
        }
        slot = t.dequeue(now);
        if (slot >= 0) this.#tinDeficit[this.#tin]! -= pool.len[slot]!;
      }
      if (slot >= 0 && this.#tin === 0) pool.meta[slot]! |= Meta.PRIORITY;
    }
    this.packets = 0;
    for (const t of this.tins) this.packets += t.packets;
    if (slot >= 0 && this.#rate > 0) {
      const cost = (pool.len[slot]! + this.#perPacket) / this.#rate;
      this.#nextAt = Math.max(this.#nextAt, now - SHAPER_BURST_MS) + cost;
    }
    return slot;
  }

  /** Drops from the fattest flow of the fullest tin; returns how many packets went. */
  dropFattest(): number {
    let fat = this.tins[0]!;
    for (const t of this.tins) if (t.backlog > fat.backlog) fat = t;
    return fat.dropFattest();
  }

  /** Releases everything queued; returns how many packets. */
  flush(): number {
    let n = 0;
    for (const t of this.tins) n += t.flush();
    this.packets = 0;
    return n;
  }

  /** Releases everything queued and the flow state (the queue is unusable afterwards). */
  release(): number {
    let n = 0;
    for (const t of this.tins) n += t.release();
    this.packets = 0;
    return n;
  }

  /** Bytes queued over all tins. */
  get backlog(): number {
    let b = 0;
    for (const t of this.tins) b += t.backlog;
    return b;
  }
}

/** How the scheduler builds session queues. */
export interface LinkOptions {
  /** Pool slots (the memory bound, in packets, over every session). */
  poolSize: number;
  /** Each session's queue. */
  queue: QueueOptions;
  /** CoDel settings (default RFC 8289's). */
  codel?: CodelParams;
}

/** Per-session queues served fairly, over one pool. */
export class LinkScheduler {
  readonly pool: PacketPool;
  /** What was dropped and marked. */
  readonly counters: SchedCounters = { codel: 0, overflow: 0, ce_marked: 0 };
  /** The session key of the packet the last {@link dequeue} returned. */
  lastKey = -1;
  readonly #queues = new Map<number, SessionQueue>();
  readonly #codel: CodelParams;
  readonly #opts: LinkOptions;
  /** Session queues with a shaper (rate > 0). */
  #shaped = 0;
  /** Where the session queues' flow state lives (one allocation per 64 queues). */
  readonly #memory: FlowMemory;
  /** The active ring (sessions with packets queued) and the DRR cursor. */
  #cursor: SessionQueue | undefined;
  #activeCount = 0;

  constructor(opts: LinkOptions) {
    this.#opts = opts;
    this.#memory = new FlowMemory(opts.queue.flows);
    this.pool = new PacketPool(opts.poolSize);
    this.#codel = opts.codel ?? DEFAULT_CODEL;
  }

  /** Packets queued over every session. */
  get packets(): number {
    let n = 0;
    for (let q = this.#cursor, i = 0; q && i < this.#activeCount; q = q.next, i++) n += q.packets;
    return n;
  }

  /** The queue of session `key`, made on first use. */
  queue(key: number): SessionQueue {
    let q = this.#queues.get(key);
    if (!q) {
      q = new SessionQueue(
        key,
        this.pool,
        this.#opts.queue,
        this.#codel,
        this.counters,
        this.#memory,
      );
      this.#queues.set(key, q);
    }
    return q;
  }

  /** Session queues that exist (for status and tests). */
  queues(): IterableIterator<SessionQueue> {
    return this.#queues.values();
  }

  /** Shapes session `key`'s queue (rate 0: not shaped). */
  shape(key: number, s: Shaping | undefined): void {
    const q = this.queue(key);
    const was = q.rateBps > 0;
    q.shape(s);
    this.#shaped += (q.rateBps > 0 ? 1 : 0) - (was ? 1 : 0);
  }

  /** Forgets session `key`: its queued packets are released (and returned as a count). */
  remove(key: number): number {
    const q = this.#queues.get(key);
    if (!q) return 0;
    if (q.active) this.#deactivate(q);
    if (q.rateBps > 0) this.#shaped--;
    this.#queues.delete(key);
    return q.release();
  }

  /** Queues pool slot `slot` (length in the pool) for session `key`. */
  enqueue(key: number, slot: number, hash: number, priority: boolean, now: number): void {
    const q = this.queue(key);
    q.enqueue(slot, hash, priority, now);
    if (!q.active && q.packets > 0) this.#activate(q);
  }

  /**
   * The next packet to send: sessions in DRR order, a shaped session only when its shaper lets
   * it. -1 when nothing may go now (see {@link deadline}).
   */
  dequeue(now: number): number {
    let skipped = 0;
    while (this.#cursor && skipped <= this.#activeCount) {
      const q = this.#cursor;
      if (q.packets === 0) {
        this.#deactivate(q);
        continue;
      }
      if (!q.eligible(now)) {
        this.#cursor = q.next;
        skipped++;
        continue;
      }
      if (q.deficit <= 0) {
        q.deficit += QUANTUM_BYTES;
        this.#cursor = q.next;
        continue;
      }
      const slot = q.dequeue(now, this.pool);
      if (slot < 0) {
        this.#deactivate(q); // CoDel dropped what was left
        continue;
      }
      q.deficit -= this.pool.len[slot]!;
      if (q.packets === 0) this.#deactivate(q);
      this.lastKey = q.key;
      return slot;
    }
    return -1;
  }

  /** When a shaped session may send next, if one waits for its shaper (Infinity: none). */
  deadline(): number {
    // Only shaped queues have deadlines: with none (most servers), no walk over the sessions.
    if (this.#shaped === 0) return Infinity;
    let next = Infinity;
    for (let q = this.#cursor, i = 0; q && i < this.#activeCount; q = q.next, i++) {
      if (q.packets > 0 && q.nextAt > 0 && q.nextAt < next) next = q.nextAt;
    }
    return next;
  }

  /** Frees pool slots until at least `n` are available, dropping from the longest queues'
   * fattest flows; returns how many packets were dropped. */
  makeRoom(n: number): number {
    let dropped = 0;
    while (this.pool.available < n) {
      let fat: SessionQueue | undefined;
      for (let q = this.#cursor, i = 0; q && i < this.#activeCount; q = q.next, i++) {
        if (!fat || q.backlog > fat.backlog) fat = q;
      }
      if (!fat) break;
      const d = fat.dropFattest();
      fat.packets -= d;
      dropped += d;
      if (d === 0) break;
      if (fat.packets <= 0) this.#deactivate(fat);
    }
    return dropped;
  }

  #activate(q: SessionQueue): void {
    q.active = true;
    q.deficit = QUANTUM_BYTES;
    const c = this.#cursor;
    if (!c) {
      q.next = q.prev = q;
      this.#cursor = q;
    } else {
      // Behind the cursor: it waits one round, as a new DRR queue does.
      q.prev = c.prev;
      q.next = c;
      c.prev!.next = q;
      c.prev = q;
    }
    this.#activeCount++;
  }

  #deactivate(q: SessionQueue): void {
    if (!q.active) return;
    q.active = false;
    q.deficit = 0;
    this.#activeCount--;
    if (q.next === q) {
      this.#cursor = undefined;
    } else {
      q.prev!.next = q.next;
      q.next!.prev = q.prev;
      if (this.#cursor === q) this.#cursor = q.next;
    }
    q.next = q.prev = undefined;
  }
}
