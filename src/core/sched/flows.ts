/**
 * Flow queueing with CoDel (RFC 8290, fq_codel; the Linux `sch_fq_codel.c` / `codel_impl.h`
 * algorithms, written afresh here): packets are hashed by their inner 5-tuple into flow queues;
 * flows are served by deficit round robin from two lists, so that a flow that had nothing queued
 * (a game, DNS, TCP ACKs, a handshake) goes ahead of the flows that keep a queue (downloads); and
 * each flow queue is managed by CoDel (RFC 8289): when a flow's packets have waited longer than
 * `target` for at least `interval`, its head packets are dropped, or marked CE when their
 * transport is ECN-capable (RFC 3168), at the rate of the CoDel control law, until the queue
 * drains below target.
 *
 * Sans-I/O: time comes in as `now` (monotonic ms). Packets are pool slots; the bytes live
 * elsewhere, and a CE mark is left in the slot's metadata for the runtime to write into the
 * packet before sealing it. Nothing is allocated per packet.
 *
 * @module
 */
import { Meta, type PacketPool } from "./pool.ts";

/** CoDel's settings (RFC 8289 section 4, RFC 8290 section 4.1). */
export interface CodelParams {
  /** Acceptable standing queue delay (ms); RFC 8289: 5 ms. */
  targetMs: number;
  /** The window a delay above target must last before CoDel acts (ms); RFC 8289: 100 ms. */
  intervalMs: number;
  /** Mark ECN-capable packets CE instead of dropping them. */
  ecn: boolean;
  /** A flow with no more than this many bytes queued is never dropped (one MTU). */
  maxPacketBytes: number;
}

/** The RFC defaults. */
export const DEFAULT_CODEL: CodelParams = {
  targetMs: 5,
  intervalMs: 100,
  ecn: true,
  maxPacketBytes: 1514,
};

/** Most packets dropped in one go from the fattest flow when the memory bound is hit. */
export const DROP_BATCH = 64;

/** Where the scheduler counts what it drops and marks. */
export interface SchedCounters {
  /** Packets CoDel dropped (not ECN-capable) from a standing queue. */
  codel: number;
  /** Packets dropped from the fattest flow because a memory bound was reached. */
  overflow: number;
  /** Packets CoDel marked CE instead of dropping them. */
  ce_marked: number;
}

/** Flow list membership. */
const IDLE = 0, NEW = 1, OLD = 2;

/**
 * A flow sending more than this on average is bulk; under it, interactive (bytes per ms; 250 =
 * 2 Mbit/s: a game at 128 Hz of 1000-byte packets is 1 Mbit/s, voice 64 kbit/s). Interactive
 * packets carry the header's interactive flag and the game DSCP, and the receiver serves them
 * first. Queue position alone cannot tell: with nothing queued, every flow looks new.
 */
export const INTERACTIVE_RATE_BYTES_PER_MS = 250;
/** The burst an interactive flow may send at once before it counts as bulk (bytes). */
export const INTERACTIVE_BURST_BYTES = 16 * 1024;
/** Ways of the set-associative flow table (as cake's): a flow looks for its own or a free
 * queue among 8 before it shares one with another flow. */
const WAYS = 8;

/** Bytes of state per flow: 4 Float64, 9 Int32/Uint32 and 2 Uint8 arrays. */
const FLOW_STATE_BYTES = 4 * 8 + 9 * 4 + 2;

/**
 * Flow-state memory for many {@link FlowQueues} of one size, carved out of buffers of
 * `perBuffer` regions: one allocation per `perBuffer` queues instead of one each. A region given
 * back is reused by the next queue (the buffers themselves stay, bounded by the most queues
 * that ever existed at once).
 */
export class FlowMemory {
  readonly #bytes: number;
  readonly #free: [ArrayBuffer, number][] = [];
  /** Buffers allocated so far. */
  buffers = 0;

  constructor(readonly flows: number, readonly perBuffer = 64) {
    // Regions start on 8-byte boundaries (their Float64Array views need it: 1 or 2 flows make
    // a region of 70 or 140 bytes).
    this.#bytes = Math.ceil((flows * FLOW_STATE_BYTES) / 8) * 8;
  }

  /** A zeroed region: its buffer and byte offset. */
  take(): [ArrayBuffer, number] {
    if (this.#free.length === 0) {
      const buf = new ArrayBuffer(this.#bytes * this.perBuffer);
      this.buffers++;
      for (let i = this.perBuffer - 1; i >= 0; i--) this.#free.push([buf, i * this.#bytes]);
    }
    return this.#free.pop()!;
  }

  /** Takes a region back (zeroed here, so {@link take} always hands out zeroes). */
  give(buf: ArrayBuffer, offset: number): void {
    new Uint8Array(buf, offset, this.#bytes).fill(0);
    this.#free.push([buf, offset]);
  }
}

/**
 * One set of flow queues served by DRR with a new-flows list (one fq_codel instance; a "tin").
 * `flows` must be a power of two; callers pick the flow index (hash & (flows - 1)).
 */
export class FlowQueues {
  /** Packets queued. */
  packets = 0;
  /** Bytes queued. */
  backlog = 0;

  readonly #pool: PacketPool;
  readonly #p: CodelParams;
  readonly #counters: SchedCounters;
  readonly #quantum: number;
  // Per flow.
  readonly #head: Int32Array;
  readonly #tail: Int32Array;
  readonly #count: Int32Array;
  readonly #bytes: Int32Array;
  readonly #deficit: Int32Array;
  readonly #lnext: Int32Array;
  readonly #where: Uint8Array;
  // CoDel state per flow.
  readonly #cCount: Int32Array;
  readonly #cLast: Int32Array;
  readonly #cDropping: Uint8Array;
  readonly #cFirstAbove: Float64Array;
  readonly #cDropNext: Float64Array;
  // Flow identity and rate.
  readonly #tag: Uint32Array;
  readonly #credit: Float64Array;
  readonly #creditAt: Float64Array;
  readonly #memory: FlowMemory | undefined;
  readonly #mem: ArrayBuffer;
  readonly #base: number;
  #newH = -1;
  #newT = -1;
  #oldH = -1;
  #oldT = -1;
  /** Set by #shouldDrop. */
  #ok = false;

  constructor(
    pool: PacketPool,
    readonly flows: number,
    quantum: number,
    params: CodelParams,
    counters: SchedCounters,
    memory?: FlowMemory,
  ) {
    if (!(flows > 0 && (flows & (flows - 1)) === 0)) {
      throw new RangeError(`flow count must be a power of two, not ${flows}`);
    }
    this.#pool = pool;
    this.#p = params;
    this.#counters = counters;
    this.#quantum = quantum;
    // Every per-flow array is a view of one region, carved out of a large buffer shared with
    // other queues: a session's queue is made on its first packet, on the data thread, and 15
    // allocations of its own cost ~90 us (1000 clients starting to play at once stalled the
    // server for ~90 ms in bench/clients.ts). Widest elements first, so every view is aligned.
    if (memory && memory.flows !== flows) throw new RangeError("flow memory of another size");
    const [mem, base] = memory ? memory.take() : [new ArrayBuffer(flows * FLOW_STATE_BYTES), 0];
    this.#memory = memory;
    this.#mem = mem;
    this.#base = base;
    let at = base;
    const f64 = () => {
      const a = new Float64Array(mem, at, flows);
      at += 8 * flows;
      return a;
    };
    const i32 = () => {
      const a = new Int32Array(mem, at, flows);
      at += 4 * flows;
      return a;
    };
    const u32 = () => {
      const a = new Uint32Array(mem, at, flows);
      at += 4 * flows;
      return a;
    };
    const u8 = () => {
      const a = new Uint8Array(mem, at, flows);
      at += flows;
      return a;
    };
    this.#cFirstAbove = f64();
    this.#cDropNext = f64();
    this.#credit = f64().fill(INTERACTIVE_BURST_BYTES);
    this.#creditAt = f64();
    this.#head = i32().fill(-1);
    this.#tail = i32().fill(-1);
    this.#count = i32();
    this.#bytes = i32();
    this.#deficit = i32();
    this.#lnext = i32().fill(-1);
    this.#cCount = i32();
    this.#cLast = i32();
    this.#tag = u32();
    this.#where = u8();
    this.#cDropping = u8();
  }

  /**
   * The queue of the flow with hash `hash`: its own if it has one (same tag), else a free one in
   * its set of {@link WAYS} (reset for the new flow), else the one the hash points at (shared).
   */
  flowFor(hash: number): number {
    const mask = this.flows - 1;
    const idx = hash & mask;
    if (this.flows < WAYS) return idx;
    const base = idx & ~(WAYS - 1);
    const inner = idx & (WAYS - 1);
    const h = hash >>> 0;
    for (let k = 0; k < WAYS; k++) {
      const j = base + ((inner + k) & (WAYS - 1));
      if (this.#tag[j] === h) return j;
    }
    for (let k = 0; k < WAYS; k++) {
      const j = base + ((inner + k) & (WAYS - 1));
      if (this.#where[j] === IDLE && this.#count[j] === 0) {
        this.#tag[j] = h;
        this.#credit[j] = INTERACTIVE_BURST_BYTES;
        this.#creditAt[j] = 0;
        this.#cCount[j] = this.#cLast[j] = 0;
        this.#cDropping[j] = 0;
        this.#cFirstAbove[j] = 0;
        return j;
      }
    }
    return idx;
  }

  /** Packets queued in flow `f` (for tests and reports). */
  flowPackets(f: number): number {
    return this.#count[f]!;
  }

  /**
   * Queues pool slot `slot` (its length already in the pool) on flow `f` at `now`, and marks it
   * interactive in the pool's metadata while its flow stays under the interactive rate.
   */
  enqueue(slot: number, f: number, now: number): void {
    const pool = this.#pool;
    const len = pool.len[slot]!;
    const credit = Math.min(
      INTERACTIVE_BURST_BYTES,
      this.#credit[f]! + (now - this.#creditAt[f]!) * INTERACTIVE_RATE_BYTES_PER_MS,
    ) - len;
    // Floored, so a flow that stops being bulk is interactive again within ~130 ms.
    this.#credit[f] = Math.max(-INTERACTIVE_BURST_BYTES, credit);
    this.#creditAt[f] = now;
    if (credit >= 0) pool.meta[slot]! |= Meta.INTERACTIVE;
    pool.at[slot] = now;
    pool.next[slot] = -1;
    if (this.#count[f] === 0) this.#head[f] = slot;
    else pool.next[this.#tail[f]!] = slot;
    this.#tail[f] = slot;
    this.#count[f]!++;
    this.#bytes[f]! += len;
    this.packets++;
    this.backlog += len;
    if (this.#where[f] === IDLE) {
      // A flow with nothing queued is new: it goes to the new-flows list, served first.
      this.#where[f] = NEW;
      this.#deficit[f] = this.#quantum;
      this.#lnext[f] = -1;
      if (this.#newT < 0) this.#newH = f;
      else this.#lnext[this.#newT] = f;
      this.#newT = f;
    }
  }

  /** The next packet to send (a pool slot), after CoDel's drops; -1 when nothing is queued. */
  dequeue(now: number): number {
    for (;;) {
      let f = this.#newH;
      const fromNew = f >= 0;
      if (!fromNew) {
        f = this.#oldH;
        if (f < 0) return -1;
      }
      if (this.#deficit[f]! <= 0) {
        this.#deficit[f]! += this.#quantum;
        this.#toOldTail(f, fromNew);
        continue;
      }
      const slot = this.#codel(f, now);
      if (slot < 0) {
        // Empty: a new flow makes one pass through the old list first (so that a flow cannot
        // stay "new" by emptying its queue every round); an old flow leaves the lists.
        if (fromNew && this.#oldH >= 0) this.#toOldTail(f, true);
        else this.#unlink(f, fromNew);
        continue;
      }
      this.#deficit[f]! -= this.#pool.len[slot]!;
      return slot;
    }
  }

  /**
   * Drops packets from the head of the flow with the most bytes queued, until half its bytes
   * are gone or {@link DROP_BATCH} packets (fq_codel's answer to a full queue); returns how many.
   */
  dropFattest(): number {
    let fat = -1, most = 0;
    for (let f = 0; f < this.flows; f++) {
      if (this.#bytes[f]! > most) {
        most = this.#bytes[f]!;
        fat = f;
      }
    }
    if (fat < 0) return 0;
    const goal = most >> 1;
    let dropped = 0, bytes = 0;
    do {
      const slot = this.#popHead(fat);
      if (slot < 0) break;
      bytes += this.#pool.len[slot]!;
      this.#pool.release(slot);
      this.#counters.overflow++;
      dropped++;
    } while (dropped < DROP_BATCH && bytes < goal);
    return dropped;
  }

  /** Releases every queued packet (the queue's owner went away); returns how many. */
  /** Flushes and gives the flow state back to its {@link FlowMemory}: unusable afterwards. */
  release(): number {
    const n = this.flush();
    this.#memory?.give(this.#mem, this.#base);
    return n;
  }

  flush(): number {
    let n = 0;
    for (let f = 0; f < this.flows; f++) {
      for (let s = this.#popHead(f); s >= 0; s = this.#popHead(f)) {
        this.#pool.release(s);
        n++;
      }
      this.#where[f] = IDLE;
      this.#cDropping[f] = 0;
    }
    this.#newH =
      this.#newT =
      this.#oldH =
      this.#oldT =
        -1;
    return n;
  }

  /** Takes the head packet of flow `f` off its queue; -1 when empty. */
  #popHead(f: number): number {
    const slot = this.#head[f]!;
    if (slot < 0 || this.#count[f] === 0) return -1;
    const pool = this.#pool;
    const len = pool.len[slot]!;
    this.#head[f] = pool.next[slot]!;
    if (--this.#count[f]! === 0) this.#tail[f] = this.#head[f] = -1;
    this.#bytes[f]! -= len;
    this.packets--;
    this.backlog -= len;
    pool.next[slot] = -1;
    return slot;
  }

  /** Head packet of flow `f`, and whether CoDel may drop it (in #ok). */
  #doDequeue(f: number, now: number): number {
    const slot = this.#popHead(f);
    const p = this.#p;
    if (slot < 0) {
      this.#cFirstAbove[f] = 0;
      this.#ok = false;
      return -1;
    }
    const sojourn = now - this.#pool.at[slot]!;
    if (sojourn < p.targetMs || this.#bytes[f]! <= p.maxPacketBytes) {
      // Below target (or too little queued to matter): stay below for at least an interval.
      this.#cFirstAbove[f] = 0;
      this.#ok = false;
    } else if (this.#cFirstAbove[f] === 0) {
      this.#cFirstAbove[f] = now + p.intervalMs;
      this.#ok = false;
    } else {
      this.#ok = now > this.#cFirstAbove[f]!;
    }
    return slot;
  }

  /** CoDel's dequeue for flow `f` (RFC 8289 section 5.5, in Linux's form with ECN). */
  #codel(f: number, now: number): number {
    const p = this.#p;
    let slot = this.#doDequeue(f, now);
    if (this.#cDropping[f]) {
      if (!this.#ok) {
        this.#cDropping[f] = 0;
      } else {
        while (this.#cDropping[f] && now >= this.#cDropNext[f]!) {
          this.#cCount[f]!++;
          if (this.#mark(slot)) {
            this.#cDropNext[f] = this.#law(this.#cDropNext[f]!, this.#cCount[f]!);
            return slot;
          }
          this.#drop(slot);
          slot = this.#doDequeue(f, now);
          if (!this.#ok) this.#cDropping[f] = 0;
          else this.#cDropNext[f] = this.#law(this.#cDropNext[f]!, this.#cCount[f]!);
        }
      }
    } else if (this.#ok) {
      if (!this.#mark(slot)) {
        this.#drop(slot);
        slot = this.#doDequeue(f, now);
      }
      this.#cDropping[f] = 1;
      // Coming back to dropping soon after leaving it: resume near the old rate.
      const delta = this.#cCount[f]! - this.#cLast[f]!;
      this.#cCount[f] = delta > 1 && now - this.#cDropNext[f]! < 16 * p.intervalMs ? delta : 1;
      this.#cLast[f] = this.#cCount[f]!;
      this.#cDropNext[f] = this.#law(now, this.#cCount[f]!);
    }
    return slot;
  }

  /** The control law: the next drop after `t`, sooner as drops accumulate. */
  #law(t: number, count: number): number {
    return t + this.#p.intervalMs / Math.sqrt(count);
  }

  /** Marks `slot` CE instead of dropping it, when allowed and its transport is ECN-capable. */
  #mark(slot: number): boolean {
    if (slot < 0 || !this.#p.ecn) return false;
    const pool = this.#pool;
    if ((pool.meta[slot]! & Meta.ECN_MASK) === 0) return false;
    pool.meta[slot]! |= Meta.MARK_CE;
    this.#counters.ce_marked++;
    return true;
  }

  #drop(slot: number): void {
    if (slot < 0) return;
    this.#pool.release(slot);
    this.#counters.codel++;
  }

  /** Moves flow `f` (head of the new or old list) to the tail of the old list. */
  #toOldTail(f: number, fromNew: boolean): void {
    this.#unlink(f, fromNew);
    this.#where[f] = OLD;
    this.#lnext[f] = -1;
    if (this.#oldT < 0) this.#oldH = f;
    else this.#lnext[this.#oldT] = f;
    this.#oldT = f;
  }

  /** Takes flow `f` (the head of its list) off that list. */
  #unlink(f: number, fromNew: boolean): void {
    if (fromNew) {
      this.#newH = this.#lnext[f]!;
      if (this.#newH < 0) this.#newT = -1;
    } else {
      this.#oldH = this.#lnext[f]!;
      if (this.#oldH < 0) this.#oldT = -1;
    }
    this.#lnext[f] = -1;
    this.#where[f] = IDLE;
  }
}
