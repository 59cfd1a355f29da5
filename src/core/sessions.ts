/**
 * The server's session tables (as wireguard-go's `indextable.go` and `peer.go`): who may
 * connect ({@link Peer}), each live session ({@link ServerSession}), and the indexes the data
 * path looks sessions up by: connection id (every sealed datagram), tunnel address (every packet
 * from the TUN) and client key (handshakes). Diagnostic sessions (`xvpn diag`) are kept apart:
 * a connection id of their own, no address, and a bounded table.
 *
 * @module
 */
import type { Endpoint } from "../lib/endpoint.ts";
import type { Keypair } from "./keypair.ts";
import type { IpPool, Lease } from "./pool.ts";
import type { RecentEndpoint } from "./endpoints.ts";
import type { QueueRequest } from "./control.ts";
import { readU32 } from "./wire.ts";

/** Diagnostic sessions kept at once (one per client key; the oldest goes first). */
export const MAX_DIAG_SESSIONS = 64;

/** A client allowed to connect, with what outlives its sessions. */
export interface Peer {
  name: string;
  publicKey: Uint8Array;
  keyText: string;
  /** Greatest accepted initiation timestamp (replay protection); survives sessions. */
  lastTimestamp?: Uint8Array;
  lastInitMs: number;
}

/** One client's live session. */
export interface ServerSession {
  /** Who. */
  readonly peer: Readonly<Peer>;
  /** Address and connection id. */
  readonly lease: Lease;
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
  /** Counters. */
  rxPackets: number;
  txPackets: number;
  rxBytes: number;
  txBytes: number;
}

/** Live sessions and their indexes. */
export class SessionTable {
  readonly #byConnId = new Map<number, ServerSession>();
  readonly #byAddress = new Map<number, ServerSession>();
  readonly #byKey = new Map<string, ServerSession>();
  readonly #diagByKey = new Map<string, ServerSession>();

  /** Every live session, diagnostic ones included. */
  values(): IterableIterator<ServerSession> {
    return this.#byConnId.values();
  }

  /** Live sessions, diagnostic ones included. */
  get size(): number {
    return this.#byConnId.size;
  }

  /** The session a sealed datagram's receiver id names. */
  byConnId(id: number): ServerSession | undefined {
    return this.#byConnId.get(id);
  }

  /** The tunnel session that owns tunnel address `addr`. */
  byAddress(addr: number): ServerSession | undefined {
    return this.#byAddress.get(addr);
  }

  /** The tunnel session of a client key. */
  byKey(keyText: string): ServerSession | undefined {
    return this.#byKey.get(keyText);
  }

  /** Adds a tunnel session (its lease came from the pool). */
  add(s: ServerSession): void {
    this.#byConnId.set(s.lease.connId, s);
    this.#byAddress.set(s.lease.address, s);
    this.#byKey.set(s.peer.keyText, s);
  }

  /**
   * A new diagnostic session for `peer`: a connection id used by no session and no lease, no
   * address, and not tied to the key's tunnel (which it never disturbs). It replaces the key's
   * previous diagnostic session; when the table is full, the oldest one makes room.
   */
  addDiag(
    peer: Peer,
    from: Endpoint,
    clientId: number,
    now: number,
    random: (buf: Uint8Array) => void,
    pool: IpPool,
  ): ServerSession {
    const old = this.#diagByKey.get(peer.keyText);
    if (old) this.#byConnId.delete(old.lease.connId);
    if (this.#diagByKey.size >= MAX_DIAG_SESSIONS && !old) {
      const [key, first] = this.#diagByKey.entries().next().value!;
      this.#byConnId.delete(first.lease.connId);
      this.#diagByKey.delete(key);
    }
    const rnd = new Uint8Array(5);
    let connId = 0;
    while (connId === 0 || this.#byConnId.has(connId) || pool.byConnId(connId)) {
      random(rnd);
      connId = readU32(rnd, 0);
    }
    const s: ServerSession = {
      peer,
      lease: { address: 0, connId, owner: peer.keyText },
      endpoint: from,
      clientId,
      epoch: rnd[4]!,
      lastRecvMs: now,
      rxPackets: 0,
      txPackets: 0,
      rxBytes: 0,
      txBytes: 0,
      diag: true,
    };
    this.#byConnId.set(connId, s);
    this.#diagByKey.set(peer.keyText, s);
    return s;
  }

  /** Removes a session from every index (the caller returns a tunnel session's lease). */
  remove(s: ServerSession): void {
    this.#byConnId.delete(s.lease.connId);
    if (s.diag) {
      if (this.#diagByKey.get(s.peer.keyText) === s) this.#diagByKey.delete(s.peer.keyText);
      return;
    }
    this.#byAddress.delete(s.lease.address);
    this.#byKey.delete(s.peer.keyText);
  }
}
