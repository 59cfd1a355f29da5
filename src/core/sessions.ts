/**
 * The server's session tables (as wireguard-go's `indextable.go` and `peer.go`): who may
 * connect ({@link Peer}), each live session ({@link ServerSession}), and the indexes the data
 * path looks sessions up by: receiver id (every sealed datagram), tunnel address (every packet
 * from the TUN), slot (the scheduler's key) and client key (handshakes). Diagnostic sessions
 * (`xvpn diag`) are kept apart: no address, and a bounded table.
 *
 * Receiver ids come from one allocator, {@link SessionTable.newId}, for every kind of session:
 * each handshake takes a fresh random id (as wireguard-go takes a fresh index), bound to the
 * keys it made, and the id goes when those keys go. So no id is ever held twice, and the id an
 * observer sees on the wire changes with every rekey and every network change: it cannot follow
 * a client from one network to the next.
 *
 * @module
 */
import type { Endpoint } from "../lib/endpoint.ts";
import type { Keypair } from "./keypair.ts";
import type { Lease } from "./pool.ts";
import type { RecentEndpoint } from "./endpoints.ts";
import type { QueueRequest } from "./control.ts";
import { readU32 } from "./wire.ts";
import type { RttStats } from "./rtt_stats.ts";

/**
 * Diagnostic sessions kept at once, at least (one per client key; the oldest goes first). A
 * server sizes its table to its allow-list when that is larger ({@link SessionTable}), so that
 * players running `xvpn ping` at the same moment never evict each other's probes: each key holds
 * at most one, and a new one only replaces that key's own.
 */
export const MAX_DIAG_SESSIONS = 64;

/** A client allowed to connect, with what outlives its sessions. */
export interface Peer {
  name: string;
  publicKey: Uint8Array;
  keyText: string;
  /** Greatest accepted initiation timestamp (replay protection); survives sessions. */
  lastTimestamp?: Uint8Array;
  lastInitMs: number;
  /** Diagnostic handshakes (`xvpn ping`, `xvpn diag`) it may still make now: a token bucket. */
  diagTokens?: number;
  /** Monotonic ms at which {@link diagTokens} was last counted. */
  diagRefillMs?: number;
}

/** One client's live session. */
export interface ServerSession {
  /** Who. */
  readonly peer: Readonly<Peer>;
  /** Tunnel address (0 for a diagnostic session). */
  readonly lease: Lease;
  /**
   * The session's key inside the server, never on the wire and never reused: the scheduler
   * files its queue under it, so a packet still queued when a session ends is never sealed for
   * the next holder of the address.
   */
  readonly slot: number;
  /** Where its last authenticated datagram came from. */
  endpoint: Endpoint;
  /** The client's sender id: receiver id of everything we send. */
  clientId: number;
  /** Confirmed keys used for sending. */
  current?: Keypair;
  /** Keys before the last rekey, still accepted for stragglers. */
  previous?: Keypair;
  /** Keys of the newest handshake, not yet confirmed by the client. */
  next?: Keypair;
  /** Last epoch handed out. */
  epoch: number;
  /** Monotonic ms of the last authenticated datagram. */
  lastRecvMs: number;
  /** A diagnostic session (`xvpn diag`): answers probes and pings, carries no traffic. */
  diag?: boolean;
  /** A redundant multipath client (INIT_FLAG_REDUNDANT): packets go to all recent endpoints. */
  redundant?: boolean;
  /** Redundant sessions: the endpoints heard from lately (see endpoints.ts). */
  recent?: RecentEndpoint[];
  /** Redundant sessions: the reused array behind PacketResult.extra. */
  extra?: Endpoint[];
  /** What the client asked of its queue down (shaping, priority rules), if anything. */
  queue?: QueueRequest;
  /** The server's own probes of this client's round trip (made at the first probe). */
  rtt?: RttStats;
  /** Monotonic ms when the session began (its first handshake). */
  startedMs?: number;
  /** Monotonic ms of its last data packet with a payload, and of the server's last probe. */
  lastDataMs?: number;
  lastProbeMs?: number;
  /** Counters. */
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
}

/** Live sessions and their indexes. */
export class SessionTable {
  /** @param maxDiag diagnostic sessions kept at once (see {@link MAX_DIAG_SESSIONS}) */
  constructor(readonly maxDiag = MAX_DIAG_SESSIONS) {}
  readonly #byId = new Map<number, ServerSession>();
  readonly #bySlot = new Map<number, ServerSession>();
  readonly #byAddress = new Map<number, ServerSession>();
  readonly #byKey = new Map<string, ServerSession>();
  readonly #diagByKey = new Map<string, ServerSession>();
  #nextSlot = 1;
  readonly #rnd = new Uint8Array(4);

  /** Every live session, diagnostic ones included. */
  values(): IterableIterator<ServerSession> {
    return this.#bySlot.values();
  }

  /** Live sessions, diagnostic ones included. */
  get size(): number {
    return this.#bySlot.size;
  }

  /** Receiver ids in use (one to three per session: current, previous and next keys). */
  get ids(): number {
    return this.#byId.size;
  }

  /** The session a sealed datagram's receiver id names. */
  byId(id: number): ServerSession | undefined {
    return this.#byId.get(id);
  }

  /** The session of a slot (see {@link ServerSession.slot}). */
  bySlot(slot: number): ServerSession | undefined {
    return this.#bySlot.get(slot);
  }

  /** The tunnel session that owns tunnel address `addr`. */
  byAddress(addr: number): ServerSession | undefined {
    return this.#byAddress.get(addr);
  }

  /** The tunnel session of a client key. */
  byKey(keyText: string): ServerSession | undefined {
    return this.#byKey.get(keyText);
  }

  /** A slot for a new session. */
  newSlot(): number {
    return this.#nextSlot++;
  }

  /**
   * A fresh receiver id for `s`: random, non-zero, not 0xffffffff (a refusal's), and held by no
   * other session or keys. The caller binds it to the keys of the handshake it answers.
   */
  newId(s: ServerSession, random: (buf: Uint8Array) => void): number {
    let id = 0;
    while (id === 0 || id === 0xffffffff || this.#byId.has(id)) {
      random(this.#rnd);
      id = readU32(this.#rnd, 0);
    }
    this.#byId.set(id, s);
    return id;
  }

  /** Gives back a receiver id (its keys were replaced or expired). */
  dropId(id: number): void {
    this.#byId.delete(id);
  }

  /** Adds a tunnel session (its lease came from the pool). */
  add(s: ServerSession): void {
    this.#bySlot.set(s.slot, s);
    this.#byAddress.set(s.lease.address, s);
    this.#byKey.set(s.peer.keyText, s);
  }

  /**
   * A new diagnostic session for `peer`: no address, and not tied to the key's tunnel (which
   * it never disturbs). It replaces the key's previous diagnostic session; when the table is
   * full, the oldest one makes room.
   */
  addDiag(peer: Peer, from: Endpoint, clientId: number, now: number, epoch: number): ServerSession {
    const old = this.#diagByKey.get(peer.keyText);
    if (old) this.remove(old);
    else if (this.#diagByKey.size >= this.maxDiag) {
      this.remove(this.#diagByKey.values().next().value!);
    }
    const s: ServerSession = {
      peer,
      lease: { address: 0, owner: peer.keyText },
      slot: this.newSlot(),
      endpoint: from,
      clientId,
      epoch,
      lastRecvMs: now,
      rxPackets: 0,
      txPackets: 0,
      rxBytes: 0,
      txBytes: 0,
      diag: true,
    };
    this.#bySlot.set(s.slot, s);
    this.#diagByKey.set(peer.keyText, s);
    return s;
  }

  /** Removes a session from every index, with all its receiver ids (the caller returns a
   * tunnel session's lease). */
  remove(s: ServerSession): void {
    for (const kp of [s.current, s.previous, s.next]) {
      if (kp && this.#byId.get(kp.localId) === s) this.#byId.delete(kp.localId);
    }
    this.#bySlot.delete(s.slot);
    if (s.diag) {
      if (this.#diagByKey.get(s.peer.keyText) === s) this.#diagByKey.delete(s.peer.keyText);
      return;
    }
    this.#byAddress.delete(s.lease.address);
    this.#byKey.delete(s.peer.keyText);
  }
}
