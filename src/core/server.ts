/**
 * The server's protocol core: sans-I/O and synchronous. The runtime feeds it datagrams, TUN
 * packets and the time; it answers through a reused {@link PacketResult} for the data path and
 * through `outbox` / `events` for the control path (handshakes, config pushes, pongs, logs).
 *
 * Inbound flow (network to TUN), {@link ServerCore.receive}:
 *   1. classify the header (version, type, length) — drop and count anything else;
 *   2. handshake initiation: mac1, Noise IK, client key in the allow-list, timestamp newer than
 *      the last one from that key, then lease (address + connection id, sticky per key), reply;
 *   3. data/control: find the session by connection id and the keys by epoch, check the replay
 *      window, open; a session whose data (or active-path ping) shows up from a new address
 *      moves there (roaming); a redundant multipath session also remembers its other paths;
 *   4. data: the inner packet must come from the client's own tunnel address, or from its LAN
 *      (`lan.ts`); to the TUN.
 * Outbound flow (TUN to network): {@link ServerCore.route} finds the session by destination
 * address, a tunnel address or else a client's LAN (its slot keys the flow scheduler's queue);
 * the packet waits there; at dequeue {@link ServerCore.seal} takes the current confirmed keys
 * and seals it for the session's last authenticated endpoint (and, for a redundant multipath
 * session, every other endpoint it was heard from in the last second).
 * {@link ServerCore.fromTun} does both at once.
 *
 * Beside it: `sessions.ts` (the session tables and diagnostic sessions), `endpoints.ts`
 * (redundant endpoints), `cookie.ts` (the handshake flood defence). Timers: one
 * {@link TimerTable}; the only one is the expiry sweep, set to the earliest moment a session
 * can expire.
 *
 * @module
 */
import type { Aead } from "../crypto/aead.ts";
import {
  ControlKind,
  decodeConfigRequest,
  decodePingBody,
  DisconnectReason,
  encodeConfigPush,
  encodeMtuProbeAck,
  encodePing,
  PING_FLAG_ACTIVE,
  type QueueRequest,
  type SessionConfig,
} from "./control.ts";
import {
  checkMac1,
  createResponse,
  INIT_FLAG_DIAG,
  INIT_FLAG_REDUNDANT,
  mac1Key,
  newerTimestamp,
  readInitiation,
  type ReceivedInitiation,
  RESPONSE_FLAG_RESUMED,
} from "./handshake.ts";
import { DEFAULT_HANDSHAKE_LOAD_THRESHOLD, HandshakeGate } from "./cookie.ts";
import type { DhImpl } from "./noise.ts";
import { type Cidr, formatIPv4, ipv4Dst, ipv4Src, networkOf } from "../lib/ip.ts";
import { type Cidr6, cidr6Contains, formatIPv6, hostIn6, network6 } from "../lib/ip6.ts";
import { RttStats } from "./rtt_stats.ts";
import { MAX_DIAG_SESSIONS, type Peer, type ServerSession, SessionTable } from "./sessions.ts";
import { LanTable } from "./lan.ts";
import { fillExtra, noteEndpoint, setRedundant } from "./endpoints.ts";

export type { ServerSession };
import { encodeKey, publicKeyOf } from "./keys.ts";
import { Keypair, SEAL_OVERHEAD_BYTES } from "./keypair.ts";
import { IpPool, type Lease, PoolExhaustedError } from "./pool.ts";
import { PacketBuf } from "./packet.ts";
import { type Outgoing, PacketResult, Verdict } from "./result.ts";
import { type Endpoint, formatEndpoint, sameEndpoint } from "../lib/endpoint.ts";
import { MIN_INITIATION_INTERVAL_MS, REJECT_AFTER_TIME_MS } from "./timers.ts";
import { TimerTable } from "./timer_table.ts";

/** The server's timers (ids into its {@link TimerTable}). */
export const ServerTimer = {
  /** The earliest moment a session (or its previous keys) can expire: sweep then. */
  Expiry: 0,
  /** Ping every tunnel session (each client's round trip, for `xvpn status`). */
  Probe: 1,
} as const;

/**
 * Diagnostic handshakes accepted per client key: a bucket of {@link DIAG_BURST}, refilled by one
 * per this interval. A burst, not a strict one a second: back-to-back `xvpn diag` runs and a
 * client's retransmission after a lost response (1 s later, give or take the path's jitter) must
 * not be refused, while a loop still costs at most one Diffie-Hellman pair a second.
 */
export const DIAG_MIN_INTERVAL_MS = 1_000;
/** See {@link DIAG_MIN_INTERVAL_MS}. */
export const DIAG_BURST = 5;

/** How often the server measures each client's round trip by default. */
export const DEFAULT_SERVER_PROBE_MS = 1_000;

/** A session that sent data this recently is measured once a second; others less often. */
const ACTIVE_MS = 10_000;
/** How often an idle session is measured. */
const IDLE_PROBE_MS = 10_000;

/** Most slices the server's probe second is cut into (see ServerCore's #probeAll). */
const PROBE_SLICES = 20;

/** Probes per client the server's figures cover (a smaller window than a client's own: one
 * meter per session, thousands of sessions). */
const SERVER_RTT_WINDOW = 16;

/** One client's line in a {@link ServerStatus}. */
export interface ServerClientStatus {
  name: string;
  /** Its public key (base64). */
  key: string;
  /** Where its last authenticated datagram came from (`host:port`). */
  endpoint: string;
  address: string;
  address6?: string;
  /** Since the session began, since its newest handshake, since it was last heard (ms). */
  connectedMs: number;
  handshakeAgeMs: number;
  idleMs: number;
  rx: { packets: number; bytes: number };
  tx: { packets: number; bytes: number };
  /** Round trip from the server's probes (-1 before the first answer), jitter, loss. */
  rttMs: number;
  jitterMs: number;
  lossPct: number;
  /** Multipath: its redundant copies go to every recent endpoint. */
  redundant: boolean;
}

/** What `xvpn status` shows of a server core (plain data). */
export interface ServerStatus {
  clients: ServerClientStatus[];
  /** Diagnostic sessions (`xvpn diag`, `xvpn ping`) open now. */
  diagSessions: number;
  /** Non-zero drop counters by reason. */
  drops: Record<string, number>;
  /** Addresses leased, and the pool's room. */
  leased: number;
  poolSize: number;
}

import {
  classify,
  type DropCounters,
  type DropReason,
  MessageType,
  newDropCounters,
  readCounter,
  readU32,
} from "./wire.ts";
import { decapsulate, innerLength, validInnerPacket } from "./inner.ts";
import { clampMss, mssForMtu } from "./mss.ts";

/** A client allowed to connect. */
export interface AllowedClient {
  /** Name used in logs. */
  name: string;
  /** X25519 public key. */
  publicKey: Uint8Array;
  /** Static tunnel address, if configured. */
  address?: number;
  /** LANs behind this client (`lan:`): sources it may send from, destinations routed to it. */
  lan?: Cidr[];
  /** IPv6 LANs behind this client. */
  lan6?: Cidr6[];
}

/**
 * The server core's settings: plain data (structured-cloneable), so the runtime builds them
 * once from the config and hands the same object to either data path, the fast path's Worker
 * included. {@link ServerOptions} adds what is injected.
 */
export interface ServerParams {
  /** Server static private key. */
  privateKey: Uint8Array;
  /** Allow-list. */
  clients: AllowedClient[];
  /** Address pool; the server owns its first host address. */
  pool: Cidr;
  /** The server's TUN MTU, pushed to every client. */
  mtu: number;
  /** Routes pushed to clients. */
  routes: Cidr[];
  /** DNS servers pushed to clients. */
  dns: number[];
  /** IPv6 routes pushed to clients (`::/0`: all of IPv6 through the tunnel). */
  routes6?: Cidr6[];
  /** IPv6 DNS servers pushed to clients. */
  dns6?: Uint8Array[];
  /**
   * The IPv6 pool (/64 to /96): the server owns `::1`, each client the address whose low 32
   * bits are its IPv4 address's host number, so one lease gives both and routing an IPv6
   * packet is one prefix check and a lookup by IPv4 address.
   */
  pool6?: Cidr6;
  /** Keepalive interval pushed to clients. */
  keepaliveMs: number;
  /** Sessions silent for this long are expired. */
  sessionTimeoutMs: number;
  /** Clamp the MSS of TCP SYNs crossing the tunnel to fit `mtu` (default true). */
  mssClamp?: boolean;
  /** Ping each client this often (ms) to measure its round trip (default
   * {@link DEFAULT_SERVER_PROBE_MS}; 0: never). */
  probeMs?: number;
  /** Initiations (valid mac1) per second above which the server is under load and demands a
   * cookie in mac2 before any Diffie-Hellman (cookie.ts). Default
   * {@link DEFAULT_HANDSHAKE_LOAD_THRESHOLD}. */
  handshakeLoadThreshold?: number;
}

/** Everything the server core needs: its settings and what is injected; no I/O handles. */
export interface ServerOptions extends ServerParams {
  /** Data-path AEAD. */
  aead: Aead;
  /** Fills a buffer with random bytes (injected for deterministic tests). */
  random?: (buf: Uint8Array) => void;
  /** X25519 for handshakes (default @noble's; the runtime injects libsodium's, ~10x faster). */
  dh?: DhImpl;
}

/** Something worth a log line. */
export type ServerEvent =
  | {
    type: "session_up" | "diag_session";
    name: string;
    address: number;
    connId: number;
    endpoint: Endpoint;
    rekey: boolean;
  }
  | { type: "roamed"; name: string; from: Endpoint; to: Endpoint }
  | { type: "session_expired"; name: string; address: number; idleMs: number; key: number }
  | { type: "session_closed"; name: string; address: number; reason: string; key: number }
  | { type: "pool_exhausted"; name: string; message: string }
  | {
    /** A client asked for shaping or priority rules on its traffic down (its queue key). */
    type: "queue";
    key: number;
    name: string;
    queue: QueueRequest;
  };

/** Server protocol state machine. */
export class ServerCore {
  /** Control-path datagrams waiting to be sent; the runtime drains this after each call. */
  readonly outbox: Outgoing[] = [];
  /** Events waiting to be logged; the runtime drains this. */
  readonly events: ServerEvent[] = [];
  /** Drops by reason. */
  readonly drops: DropCounters = newDropCounters();
  /** The pool (exposed for status and tests). */
  readonly pool: IpPool;
  /** Handshake flood defence: load meter, cookies, per-source limit (exposed for stats). */
  readonly handshakes: HandshakeGate;
  /** Named deadlines (see {@link ServerTimer}). */
  readonly timers = new TimerTable(Object.keys(ServerTimer).length);

  readonly #o: ServerOptions;
  readonly #mac1Key: Uint8Array;
  /** Our static public key, computed once (not per initiation). */
  readonly #publicKey: Uint8Array;
  readonly #peers = new Map<string, Peer>();
  /** Live sessions by receiver id, slot, address and key; diagnostic ones apart. */
  readonly #sessions: SessionTable;
  readonly #result = new PacketResult();
  readonly #random: (buf: Uint8Array) => void;
  // Control plaintexts (MTU probes are as large as a datagram can be).
  readonly #plain = new Uint8Array(65536);
  /** MSS limit for SYNs, or 0 when clamping is off. */
  readonly #maxMss: number;
  /** The IPv6 pool, and the IPv4 pool's network (host numbers are counted from it). */
  readonly #pool6: Cidr6 | undefined;
  /**
   * The /96 of pool6 that holds the clients' addresses (host numbers in its low 32 bits): a
   * shorter pool6 must not let a client use, or be sent, the 2^(96 - prefix) aliases that share
   * its host number.
   */
  readonly #hosts6: Cidr6 | undefined;
  readonly #net4: number;
  /** The clients' LANs (lan.ts): asked only when a tunnel address does not match. */
  readonly #lan = new LanTable();
  readonly #probeMs: number;
  #probeSeq = 0;
  #probeSlice = 0;

  constructor(opts: ServerOptions) {
    this.#o = opts;
    this.#maxMss = opts.mssClamp === false ? 0 : mssForMtu(opts.mtu);
    this.#pool6 = opts.pool6;
    this.#hosts6 = opts.pool6 && { addr: network6(opts.pool6), prefix: 96 };
    this.#net4 = networkOf(opts.pool);
    this.#probeMs = opts.probeMs ?? DEFAULT_SERVER_PROBE_MS;
    this.#sessions = new SessionTable(Math.max(MAX_DIAG_SESSIONS, opts.clients.length));
    this.#random = opts.random ?? ((b) => crypto.getRandomValues(b));
    this.pool = new IpPool(opts.pool);
    this.#publicKey = publicKeyOf(opts.privateKey);
    this.#mac1Key = mac1Key(this.#publicKey);
    this.handshakes = new HandshakeGate(
      this.#publicKey,
      opts.handshakeLoadThreshold ?? DEFAULT_HANDSHAKE_LOAD_THRESHOLD,
      this.#random,
    );
    for (const c of opts.clients) {
      const keyText = encodeKey(c.publicKey);
      this.#peers.set(keyText, {
        name: c.name,
        publicKey: c.publicKey,
        keyText,
        lastInitMs: -Infinity,
      });
      if (c.address !== undefined) this.pool.reserve(keyText, c.address);
      if (c.lan?.length || c.lan6?.length) this.#lan.add(keyText, c.lan, c.lan6);
    }
  }

  /** Live sessions. */
  sessions(): IterableIterator<ServerSession> {
    return this.#sessions.values();
  }

  /** The server's tunnel address. */
  get serverAddress(): number {
    return this.pool.serverAddress;
  }

  #drop(reason: DropReason): PacketResult {
    this.drops[reason]++;
    const r = this.#result;
    r.verdict = Verdict.Drop;
    r.reason = reason;
    r.length = 0;
    return r;
  }

  #none(): PacketResult {
    const r = this.#result;
    r.verdict = Verdict.None;
    r.length = 0;
    return r;
  }

  /**
   * Handles one datagram from the network (`d.buf[0..d.len)`). `out` receives a packet for the TUN (it needs room
   * for the datagram's length). Never throws on datagram content.
   */
  receive(
    now: number,
    d: PacketBuf,
    from: Endpoint,
    out: Uint8Array,
    outerEcn = 0,
  ): PacketResult {
    const type = classify(d.buf, d.len);
    if (typeof type === "string") return this.#drop(type);
    switch (type) {
      case MessageType.HandshakeInit:
        return this.#onInitiation(now, d.bytes(), from);
      case MessageType.Data:
      case MessageType.Control:
        return this.#onSealed(now, d, from, out, type, outerEcn);
      default:
        return this.#drop("bad_type"); // a server never receives responses
    }
  }

  #onInitiation(now: number, d: Uint8Array, from: Endpoint): PacketResult {
    if (!checkMac1(this.#mac1Key, d)) return this.#drop("bad_mac1");
    // Under load, no Diffie-Hellman without a valid mac2: a cookie reply instead (WireGuard
    // whitepaper 5.4.7; cookie.ts).
    const gate = this.handshakes.admit(now, d, from);
    if (gate.reply) this.outbox.push({ data: gate.reply, to: from });
    if (gate.drop) return this.#drop(gate.drop);
    // The allow-list is checked as soon as the client's key is decrypted, before the second
    // Diffie-Hellman: a stranger with a valid mac1 costs one.
    let peer: Peer | undefined;
    const init = readInitiation(d, this.#o.privateKey, {
      staticPublic: this.#publicKey,
      dh: this.#o.dh,
      known: (k) => (peer = this.#peers.get(encodeKey(k))) !== undefined,
    });
    if (init === "unknown_key") return this.#drop("unknown_key");
    if (!init || !peer) return this.#drop("bad_handshake");
    if (!newerTimestamp(init.timestamp, peer.lastTimestamp)) {
      return this.#drop("replayed_handshake");
    }
    if (now - peer.lastInitMs < MIN_INITIATION_INTERVAL_MS) return this.#drop("handshake_rate");
    peer.lastTimestamp = init.timestamp;
    peer.lastInitMs = now;

    const diag = (init.flags & INIT_FLAG_DIAG) !== 0;
    if (diag) {
      // A bucket per key (DIAG_BURST, one a second): `xvpn ping` makes one per run; a loop of
      // them must not cost the responder's Diffie-Hellman pair each time.
      const since = now - (peer.diagRefillMs ?? -Infinity);
      const tokens = Math.min(DIAG_BURST, (peer.diagTokens ?? 0) + since / DIAG_MIN_INTERVAL_MS);
      if (tokens < 1) return this.#drop("diag_rate");
      peer.diagTokens = tokens - 1;
      peer.diagRefillMs = now;
    }
    let session = diag ? undefined : this.#sessions.byKey(peer.keyText);
    const rekey = session !== undefined;
    if (diag) {
      const epochByte = new Uint8Array(1);
      this.#random(epochByte);
      session = this.#sessions.addDiag(peer, from, init.clientId, now, epochByte[0]!);
    } else if (!session) {
      let lease: Lease;
      try {
        lease = this.pool.allocate(peer.keyText);
      } catch (err) {
        if (!(err instanceof PoolExhaustedError)) throw err;
        // Complete the handshake so that we can tell the client why, authenticated.
        this.#refuse(now, init, peer, from, err.message);
        return this.#drop("pool_exhausted");
      }
      const epochByte = new Uint8Array(1);
      this.#random(epochByte);
      session = {
        peer,
        lease,
        slot: this.#sessions.newSlot(),
        endpoint: from,
        clientId: init.clientId,
        epoch: epochByte[0]!,
        lastRecvMs: now,
        startedMs: now,
        rxPackets: 0,
        txPackets: 0,
        rxBytes: 0,
        txBytes: 0,
      };
      this.#sessions.add(session);
    }
    this.#expireNoLaterThan(now + this.#o.sessionTimeoutMs);
    session.epoch = (session.epoch + 1) & 255;
    session.clientId = init.clientId;
    session.endpoint = from;
    session.lastRecvMs = now;
    if (!diag) setRedundant(session, (init.flags & INIT_FLAG_REDUNDANT) !== 0, from, now);
    // A fresh receiver id for these keys; an unconfirmed newer handshake's keys (and id) go.
    if (session.next) this.#sessions.dropId(session.next.localId);
    const id = this.#sessions.newId(session, this.#random);
    const response = createResponse({
      state: init.state,
      clientId: init.clientId,
      clientPublic: init.clientPublic,
      connId: id,
      epoch: session.epoch,
      flags: rekey ? RESPONSE_FLAG_RESUMED : 0,
    });
    const keys = init.state.split();
    session.next = new Keypair(
      keys.responderToInitiator,
      keys.initiatorToResponder,
      session.epoch,
      init.clientId,
      now,
      id,
    );
    this.outbox.push({ data: response, to: from });
    this.events.push({
      type: diag ? "diag_session" : "session_up",
      name: peer.name,
      address: session.lease.address,
      connId: id,
      endpoint: from,
      rekey,
    });
    return this.#none();
  }

  #refuse(
    now: number,
    init: ReceivedInitiation,
    peer: Peer,
    from: Endpoint,
    message: string,
  ) {
    const response = createResponse({
      state: init.state,
      clientId: init.clientId,
      clientPublic: init.clientPublic,
      connId: 0xffffffff,
      epoch: 0,
    });
    const keys = init.state.split();
    const kp = new Keypair(
      keys.responderToInitiator,
      keys.initiatorToResponder,
      0,
      init.clientId,
      now,
    );
    const msg = new Uint8Array([ControlKind.Disconnect, DisconnectReason.PoolExhausted]);
    const sealed = PacketBuf.alloc(msg.length + SEAL_OVERHEAD_BYTES);
    kp.seal(this.#o.aead, MessageType.Control, msg, msg.length, sealed);
    this.outbox.push({ data: response, to: from }, { data: sealed.bytes(), to: from });
    this.events.push({
      type: "pool_exhausted",
      name: peer.name,
      message,
    });
  }

  #onSealed(
    now: number,
    d: PacketBuf,
    from: Endpoint,
    out: Uint8Array,
    type: number,
    outerEcn: number,
  ): PacketResult {
    const id = readU32(d.buf, 4);
    const session = this.#sessions.byId(id);
    if (!session) return this.#drop("unknown_receiver");
    // The id names the keys (each handshake has its own); the epoch must agree.
    let kp: Keypair | undefined;
    let isNext = false;
    if (session.current?.localId === id) kp = session.current;
    else if (session.next?.localId === id) (kp = session.next), (isNext = true);
    else if (session.previous?.localId === id) kp = session.previous;
    if (!kp || kp.epoch !== d.buf[2]) return this.#drop("expired_key");
    if (kp.expired(now)) return this.#drop("expired_key");
    const plain = type === MessageType.Data ? out : this.#plain;
    if (d.len - SEAL_OVERHEAD_BYTES > plain.length) return this.#drop("too_big");
    const n = kp.open(this.#o.aead, d, plain);
    if (typeof n === "string") return this.#drop(n);
    // Authenticated from here on.
    if (isNext) {
      // First packet under the new keys confirms them (the client has them). The keys before
      // the previous ones go, with their id.
      if (session.previous) this.#sessions.dropId(session.previous.localId);
      session.previous = session.current;
      session.current = kp;
      session.next = undefined;
      if (!session.diag) this.#armProbe(now);
      if (session.previous) {
        this.#expireNoLaterThan(session.previous.createdMs + REJECT_AFTER_TIME_MS);
      }
    }
    session.lastRecvMs = now;
    session.rxPackets++;
    session.rxBytes += d.len;
    if (session.recent) noteEndpoint(session.recent, from, now);
    // Roaming: follow the client only where it sends its traffic from. A multipath client
    // probes its backup paths too, and those probes must not pull the traffic there; a redundant
    // client's data arrives on every path (first copy first), so only its active-path pings
    // move it (its packets go to all its recent endpoints anyway).
    const moves = type === MessageType.Data
      ? !session.redundant
      : plain[0] === ControlKind.Ping && activePing(plain, n);
    // Only the newest datagram under the current keys: a late one (queued while its path was
    // down, or overtaken on a faster path) must not pull the session back to where it was.
    const newest = kp === session.current && kp.replay.top === readCounter(d.buf);
    if (
      moves && newest && session.endpoint !== from && !sameEndpoint(session.endpoint, from)
    ) {
      this.events.push({
        type: "roamed",
        name: session.peer.name,
        from: session.endpoint,
        to: from,
      });
      session.endpoint = from;
    }
    if (type === MessageType.Control) {
      return this.#onControl(now, session, plain.subarray(0, n), d.len, from);
    }
    if (n === 0) return this.#none(); // an empty data message is a bare keepalive
    if (session.diag) return this.#drop("no_route"); // diagnostic sessions carry no traffic
    // A session that starts playing is measured once a second from the next sweep on.
    if (now - (session.lastDataMs ?? -Infinity) > ACTIVE_MS) this.#probeSoon(now);
    session.lastDataMs = now;
    if (!validInnerPacket(out, n)) return this.#drop("bad_inner_packet");
    if (
      out[0]! >> 4 === 6 ? !this.#own6(out, 8, session) : ipv4Src(out) !== session.lease.address
    ) {
      // Not its tunnel address: a device in its own LAN passes (lan.ts).
      const why = this.#lan.refuseSource(out, session.peer.keyText);
      if (why) return this.#drop(why);
    }
    if (outerEcn !== 0 && !decapsulate(out, outerEcn)) return this.#drop("ce_not_ect");
    if (this.#maxMss) clampMss(out, n, this.#maxMss);
    const r = this.#result;
    r.verdict = Verdict.Tun;
    r.length = innerLength(out); // from the IP header: trims any padding
    return r;
  }

  /** True when the IPv6 address at `pkt[off..off+16)` is session `s`'s (pool6 + host number). */
  #own6(pkt: Uint8Array, off: number, s: ServerSession): boolean {
    const p = this.#hosts6;
    if (!p || !cidr6Contains(p, pkt, off)) return false;
    return readU32(pkt, off + 12) === ((s.lease.address - this.#net4) >>> 0);
  }

  /** The IPv6 address of the client holding IPv4 address `addr` (pool6 + its host number). */
  #addr6Of(addr: number): Uint8Array {
    return hostIn6(this.#pool6!, (addr - this.#net4) >>> 0);
  }

  #onControl(
    now: number,
    s: ServerSession,
    msg: Uint8Array,
    wireLen: number,
    from: Endpoint,
  ): PacketResult {
    switch (msg[0]) {
      case ControlKind.ConfigRequest: {
        if (s.diag) return this.#none();
        const q = decodeConfigRequest(msg.subarray(1));
        if (q === null) return this.#drop("bad_control");
        if (q && JSON.stringify(q) !== JSON.stringify(s.queue)) {
          s.queue = q;
          this.events.push({ type: "queue", key: s.slot, name: s.peer.name, queue: q });
        }
        this.#sendControl(s, encodeConfigPush(this.configFor(s)));
        return this.#none();
      }
      case ControlKind.MtuProbe: {
        if (msg.length < 5) return this.#drop("bad_control");
        // Answer small: the probe measured the way to us; the answer must not need a big MTU.
        this.#sendControl(s, encodeMtuProbeAck(readU32(msg, 1), wireLen, this.#o.mtu));
        return this.#none();
      }
      case ControlKind.Ping: {
        if (!decodePingBody(msg.subarray(1))) return this.#drop("bad_control");
        const pong = msg.slice();
        pong[0] = ControlKind.Pong;
        // Back the way it came: a probe measures its own path, whichever one the session uses.
        this.#sendControl(s, pong, from);
        return this.#none();
      }
      case ControlKind.Pong: {
        // The answer to one of our probes (the client's own round trip).
        const p = decodePingBody(msg.subarray(1));
        if (!p) return this.#drop("bad_control");
        s.rtt?.answer(p.seq, now);
        return this.#none();
      }
      case ControlKind.Disconnect:
        this.#remove(s);
        this.events.push({
          type: "session_closed",
          name: s.peer.name,
          address: s.lease.address,
          reason: "client disconnected",
          key: s.slot,
        });
        void now;
        return this.#none();
      default:
        return this.#drop("bad_control");
    }
  }

  /** The config pushed to a session. */
  configFor(s: ServerSession): SessionConfig {
    return {
      address: { addr: s.lease.address, prefix: this.#o.pool.prefix },
      serverAddress: this.pool.serverAddress,
      mtu: this.#o.mtu,
      routes: this.#o.routes,
      dns: this.#o.dns,
      keepaliveMs: this.#o.keepaliveMs,
      routes6: this.#o.routes6 ?? [],
      dns6: this.#o.dns6 ?? [],
      ...(this.#pool6
        ? {
          address6: { addr: this.#addr6Of(s.lease.address), prefix: this.#pool6.prefix },
          serverAddress6: this.#addr6Of(this.pool.serverAddress),
        }
        : {}),
    };
  }

  #sendControl(s: ServerSession, msg: Uint8Array, to: Endpoint = s.endpoint): void {
    const kp = s.current;
    if (!kp) return;
    const data = PacketBuf.alloc(msg.length + SEAL_OVERHEAD_BYTES);
    kp.seal(this.#o.aead, MessageType.Control, msg, msg.length, data);
    s.txPackets++;
    s.txBytes += data.len;
    this.outbox.push({ data: data.bytes(), to });
  }

  /**
   * The session an IP packet read from the TUN (`pkt[0..len)`) goes to, as the key its queue is
   * known by (the session's slot), or -1 when it goes nowhere (counted: malformed, no
   * client has that address, or its session has no keys yet).
   */
  route(pkt: Uint8Array, len: number): number {
    let s: ServerSession | undefined;
    if (len >= 40 && pkt[0]! >> 4 === 6) {
      // IPv6: inside pool6, the low 32 bits are the host number of the client's IPv4 address.
      const p = this.#hosts6;
      s = p && cidr6Contains(p, pkt, 24)
        ? this.#sessions.byAddress((this.#net4 + readU32(pkt, 36)) >>> 0)
        : this.#lanSession(this.#lan.owner6(pkt, 24));
    } else {
      if (len < 20 || pkt[0]! >> 4 !== 4) return this.#dropKey("bad_inner_packet");
      const dst = ipv4Dst(pkt);
      // The exact lookup by tunnel address first; the LAN table only when it misses.
      s = this.#sessions.byAddress(dst) ?? this.#lanSession(this.#lan.owner4(dst));
    }
    if (!s) return this.#dropKey("no_route");
    if (!s.current) return this.#dropKey("no_session");
    return s.slot;
  }

  /** The tunnel session of the client whose key owns a LAN (none: undefined). */
  #lanSession(owner: string | undefined): ServerSession | undefined {
    return owner === undefined ? undefined : this.#sessions.byKey(owner);
  }

  /** True while the session of queue key `key` (see {@link route}) lives. */
  hasSession(key: number): boolean {
    return this.#sessions.bySlot(key) !== undefined;
  }

  /**
   * Seals a packet {@link route} gave `key` for, into `out` (which needs `len + 32` bytes;
   * `out.len` is set), with header `flags` (HEADER_FLAG_INTERACTIVE). The session may have gone
   * while the packet waited in the scheduler: then it is dropped (no_session).
   */
  seal(
    now: number,
    key: number,
    pkt: Uint8Array,
    len: number,
    out: PacketBuf,
    flags = 0,
  ): PacketResult {
    const s = this.#sessions.bySlot(key);
    if (!s || s.diag) return this.#drop("no_session");
    const kp = s.current;
    if (!kp) return this.#drop("no_session");
    if (kp.expired(now)) return this.#drop("expired_key");
    if (len + SEAL_OVERHEAD_BYTES > out.buf.length) return this.#drop("too_big");
    if (this.#maxMss) clampMss(pkt, len, this.#maxMss);
    const r = this.#result;
    kp.seal(this.#o.aead, MessageType.Data, pkt, len, out, flags);
    r.length = out.len;
    r.verdict = Verdict.Net;
    r.to = s.endpoint;
    r.extraCount = s.recent ? fillExtra(s, now, r) : 0;
    s.txPackets++;
    s.txBytes += r.length;
    return r;
  }

  /**
   * Routes and seals one IP packet read from the TUN in one go (the portable path, tests): see
   * {@link route} and {@link seal}.
   */
  fromTun(now: number, pkt: Uint8Array, len: number, out: PacketBuf): PacketResult {
    const key = this.route(pkt, len);
    if (key < 0) return this.#result; // the drop is counted and the result says so
    return this.seal(now, key, pkt, len, out);
  }

  /** Counts a drop of {@link route} and returns -1 (the result also carries the reason). */
  #dropKey(reason: DropReason): number {
    this.#drop(reason);
    return -1;
  }

  /** The next time {@link tick} has work (monotonic ms; Infinity when nothing is scheduled). */
  deadline(): number {
    return this.timers.next();
  }

  /** Brings the expiry sweep forward to `when` if it is later (or not set). */
  #expireNoLaterThan(when: number): void {
    if (when < this.timers.get(ServerTimer.Expiry)) this.timers.set(ServerTimer.Expiry, when);
  }

  /**
   * Runs the expired timers: when the expiry sweep is due, removes sessions silent for the
   * session timeout and forgets previous keys past their age, then sets the sweep to the
   * earliest moment anything can expire next (sessions only get younger meanwhile, so a sweep
   * never comes late; it may come early and find nothing). Returns {@link deadline}.
   */
  tick(now: number): number {
    if (this.timers.expired(ServerTimer.Probe, now)) this.#probeAll(now);
    if (!this.timers.expired(ServerTimer.Expiry, now)) return this.deadline();
    let next = Infinity;
    for (const s of [...this.#sessions.values()]) {
      const idle = now - s.lastRecvMs;
      if (idle >= this.#o.sessionTimeoutMs) {
        this.#remove(s);
        this.events.push({
          type: "session_expired",
          name: s.peer.name,
          address: s.lease.address,
          idleMs: idle,
          key: s.slot,
        });
        continue;
      }
      next = Math.min(next, s.lastRecvMs + this.#o.sessionTimeoutMs);
      if (s.previous?.expired(now)) {
        this.#sessions.dropId(s.previous.localId);
        s.previous = undefined;
      }
      if (s.previous) next = Math.min(next, s.previous.createdMs + REJECT_AFTER_TIME_MS);
    }
    this.timers.set(ServerTimer.Expiry, next);
    return this.deadline();
  }

  /**
   * Pings tunnel sessions with keys (each one's round trip, from the client's answer), and sets
   * the next sweep while any session is left. With many sessions the second is cut into slices
   * (one per 64 sessions, at most {@link PROBE_SLICES}) and each sweep pings the sessions of one
   * slice: 10,000 pings at once would be a burst of 700 kB in front of the game packets.
   */
  #probeAll(now: number): void {
    const slices = Math.min(PROBE_SLICES, Math.max(1, Math.ceil(this.pool.size / 64)));
    const slice = (this.#probeSlice = (this.#probeSlice + 1) % slices);
    let any = false, active = false;
    for (const s of this.#sessions.values()) {
      if (s.diag || !s.current) continue;
      any = true;
      if (now - (s.lastDataMs ?? -Infinity) <= ACTIVE_MS) active = true;
      if (s.slot % slices !== slice) continue;
      // An idle session (nothing sent through it lately: a player in a menu, a parked client)
      // is measured every IDLE_PROBE_MS only; thousands of them must not cost a ping each a second.
      if (
        now - (s.lastDataMs ?? -Infinity) > ACTIVE_MS &&
        now - (s.lastProbeMs ?? -Infinity) < IDLE_PROBE_MS
      ) {
        continue;
      }
      s.lastProbeMs = now;
      const seq = (this.#probeSeq = (this.#probeSeq + 1) >>> 0 || 1);
      (s.rtt ??= new RttStats(SERVER_RTT_WINDOW)).probeSent(seq, now);
      this.#sendControl(s, encodePing(ControlKind.Ping, seq, now));
    }
    // With every session idle, the sweeps slow down to the idle probes' pace.
    const every = active ? this.#probeMs : Math.max(this.#probeMs, IDLE_PROBE_MS);
    if (any) this.timers.set(ServerTimer.Probe, now + every / slices);
    else this.timers.stop(ServerTimer.Probe);
  }

  /** The next sweep within one probe interval (a session started sending). */
  #probeSoon(now: number): void {
    if (this.#probeMs <= 0) return;
    if (this.timers.get(ServerTimer.Probe) > now + this.#probeMs) {
      this.timers.set(ServerTimer.Probe, now + this.#probeMs);
    }
  }

  /** Arms the probe sweep when a session gets keys and none is armed. */
  #armProbe(now: number): void {
    if (this.#probeMs > 0 && !this.timers.isSet(ServerTimer.Probe)) {
      this.timers.set(ServerTimer.Probe, now + this.#probeMs);
    }
  }

  /** Every session's figures at `now`, for `xvpn status`. */
  status(now: number): ServerStatus {
    const clients: ServerClientStatus[] = [];
    let diagSessions = 0;
    for (const s of this.#sessions.values()) {
      if (s.diag) {
        diagSessions++;
        continue;
      }
      const r = s.rtt?.report(now);
      clients.push({
        name: s.peer.name,
        key: s.peer.keyText,
        endpoint: formatEndpoint(s.endpoint),
        address: formatIPv4(s.lease.address),
        ...(this.#pool6 ? { address6: formatIPv6(this.#addr6Of(s.lease.address)) } : {}),
        connectedMs: Math.round(now - (s.startedMs ?? now)),
        handshakeAgeMs: s.current ? Math.round(now - s.current.createdMs) : -1,
        idleMs: Math.round(now - s.lastRecvMs),
        rx: { packets: s.rxPackets, bytes: s.rxBytes },
        tx: { packets: s.txPackets, bytes: s.txBytes },
        rttMs: r?.rttMs ?? -1,
        jitterMs: r?.jitterMs ?? -1,
        lossPct: r?.lossPct ?? 0,
        redundant: s.redundant === true,
      });
    }
    const drops: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.drops)) if (v > 0) drops[k] = v;
    return {
      clients,
      diagSessions,
      drops,
      leased: this.pool.size,
      poolSize: this.pool.capacity,
    };
  }

  /** Closes every session, queueing a sealed "shutdown" disconnect to each client. */
  shutdown(): void {
    for (const s of [...this.#sessions.values()]) {
      this.#sendControl(s, new Uint8Array([ControlKind.Disconnect, DisconnectReason.Shutdown]));
      this.#remove(s);
    }
  }

  #remove(s: ServerSession): void {
    this.#sessions.remove(s);
    if (!s.diag) this.pool.release(s.peer.keyText);
  }
}

/** True for a ping (plaintext `msg[0..n)`) from the client's active path: flagged so, or a plain
 * 8-byte ping from a single-path client, which has no other path. */
function activePing(msg: Uint8Array, n: number): boolean {
  if (n === 9) return true;
  return n === 10 && (msg[9]! & PING_FLAG_ACTIVE) !== 0;
}
