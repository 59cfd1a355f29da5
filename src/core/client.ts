/**
 * The client's protocol core: sans-I/O and synchronous, like {@link ServerCore}. It talks to one
 * server; the runtime owns the socket and sends `outbox` datagrams to the server's address.
 *
 * Lifecycle: `start()` queues an initiation; retries back off (250 ms doubling to 8 s, with
 * jitter; `timers.ts`) until a response authenticates; then a config request goes out (it also
 * confirms the new keys to the server) and is repeated each second until the config push
 * arrives. After that: a keepalive ping every interval (the pong gives the RTT), a rekey after
 * two minutes, and a fresh handshake when the path looks dead: nothing authenticated for three
 * keepalive intervals, or, while we send, six liveness probes unanswered (about 0.9 s).
 *
 * Timers: one {@link TimerTable} of named deadlines ({@link ClientTimer}). Each action sets the
 * timers it needs (a sent packet arms the liveness timer, an authenticated one stops it, a ping
 * sets the next keepalive), {@link ClientCore.tick} handles the expired ones, and
 * {@link ClientCore.deadline} is the minimum: the runtime sleeps until then and asks again after
 * every batch of packets, so a timer armed by a send is never missed.
 *
 * Multipath (`paths` option; dual channel): the runtime has one socket per path. Every path gets
 * a flagged ping every 200 ms (these replace the keepalive and liveness pings) and a
 * {@link PathSet} decides from their answers which paths are up and which carry the traffic;
 * probes go out through `pathOutbox` (to one path each), everything else through `outbox`, which
 * the runtime sends on {@link ClientCore.sendPaths}. The tunnel counts as dead only when every
 * path is.
 *
 * @module
 */
import type { Aead } from "../crypto/aead.ts";
import {
  ControlKind,
  decodeConfigPush,
  decodeMtuProbeAck,
  decodePingBody,
  DisconnectReason,
  encodeConfigRequest,
  encodeMtuProbe,
  encodePing,
  PING_FLAG_ACTIVE,
  PING_PATH_SHIFT,
  type QueueRequest,
  type SessionConfig,
} from "./control.ts";
import {
  checkMac1,
  createInitiation,
  INIT_FLAG_DIAG,
  INIT_FLAG_REDUNDANT,
  mac1Key,
  type PendingInitiation,
  readResponse,
  RESPONSE_FLAG_RESUMED,
} from "./handshake.ts";
import { type MultipathMode, type PathChange, type PathReport, PathSet } from "./paths.ts";
import { CookieJar } from "./cookie.ts";
import { type RttReport, RttStats } from "./rtt_stats.ts";
import { publicKeyOf } from "./keys.ts";
import { Keypair, SEAL_OVERHEAD_BYTES } from "./keypair.ts";
import { PacketResult, Verdict } from "./result.ts";
import { PacketBuf } from "./packet.ts";
import type { DhImpl } from "./noise.ts";
import {
  acceptedSources,
  acceptedSources6,
  applyPolicy,
  type ClientPolicy,
  DEFAULT_POLICY,
  type LocalNetwork,
  SourceFilter,
  SourceFilter6,
} from "./policy.ts";
import { type Cidr6, formatIPv6 } from "../lib/ip6.ts";
import { type Cidr, formatIPv4, ipv4Dst, ipv4Src } from "../lib/ip.ts";
import { DomainFollower, FOLLOW_SWEEP_MS, type FollowAddress } from "./follow.ts";

/** Nothing known of the local network (the policy then refuses no route as local). */
const NO_LOCAL: LocalNetwork = { subnets: [], gateways: [] };
import {
  CONFIG_RETRY_MS,
  DEAD_AFTER_KEEPALIVES,
  HANDSHAKE_RETRY_FIRST_MS,
  HANDSHAKE_RETRY_JITTER,
  HANDSHAKE_RETRY_MAX_MS,
  LIVENESS_PROBE_MS,
  LIVENESS_PROBES,
  LIVENESS_SILENCE_MS,
  PATH_DEAD_PROBES,
  PATH_PROBE_MS,
  PATH_REPORT_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS,
} from "./timers.ts";
import {
  classify,
  type DropCounters,
  type DropReason,
  MessageType,
  newDropCounters,
  readU32,
} from "./wire.ts";
import { decapsulate, innerLength, validInnerPacket } from "./inner.ts";
import { TimerTable } from "./timer_table.ts";
import { clampMss, mssForMtu } from "./mss.ts";

/**
 * The client core's settings: plain data (structured-cloneable), built once from the config
 * and handed to either data path. {@link ClientOptions} adds what is injected.
 */
export interface ClientParams {
  /** Our static private key. */
  privateKey: Uint8Array;
  /** The server's static public key. */
  serverPublicKey: Uint8Array;
  /** Keepalive interval to use instead of the server's. */
  keepaliveMs?: number;
  /** Clamp the MSS of TCP SYNs crossing the tunnel to fit the pushed MTU (default true). */
  mssClamp?: boolean;
  /** A diagnostic session (`xvpn diag`): no address, no config, only probes and pings. */
  diag?: boolean;
  /** Multipath: how many paths (sockets) the runtime has, 1..8. Absent: one path, as ever. */
  paths?: number;
  /** Multipath: how the paths share the traffic (default failover). */
  multipath?: MultipathMode;
  /** What to ask of the server's queue for our traffic down (shaping, priority rules). */
  queue?: QueueRequest;
  /** What to accept of a push (default {@link DEFAULT_POLICY}). */
  policy?: ClientPolicy;
  /** The client's own network, for the policy (default: nothing known). */
  local?: LocalNetwork;
  /** Routes from the client's own config: trusted, so their sources are accepted too. */
  routes?: Cidr[];
  /** The IPv6 ones. */
  routes6?: Cidr6[];
  /**
   * Measure the round trip with an authenticated ping this often (ms) while the session is up,
   * for `xvpn status` and `xvpn ping` (default {@link DEFAULT_PROBE_MS}; 0: keepalives only).
   * A multipath client measures every path with its own probes instead.
   */
  probeMs?: number;
  /** Game profiles' domains to follow (follow.ts): their DNS answers from the tunnel are held
   * until the runtime has routed the answered addresses into it. */
  follow?: string[];
}

/** How often a client measures its round trip by default: once a second, ~1 kbit/s. */
export const DEFAULT_PROBE_MS = 1_000;
/** The RTT probes run at that rate while data crossed the tunnel this recently... */
export const PROBE_ACTIVE_MS = 10_000;
/** ...or a status reader asked this recently. */
export const PROBE_WATCHED_MS = 30_000;

/** Everything the client core needs: its settings and what is injected; no I/O handles. */
export interface ClientOptions extends ClientParams {
  /** Data-path AEAD. */
  aead: Aead;
  /** Fills a buffer with random bytes (injected for deterministic tests). */
  random?: (buf: Uint8Array) => void;
  /** The X25519 for handshakes (default: @noble's; the runtime passes libsodium's). */
  dh?: DhImpl;
}

/** Something the runtime must act on or log. */
export type ClientEvent =
  | { type: "handshake_sent"; attempt: number }
  | { type: "connected"; connId: number; rekey: boolean }
  | {
    type: "config";
    /** The config as accepted by the policy (what the runtime applies). */
    config: SessionConfig;
    /** What the policy refused or changed, one sentence each. */
    refused: string[];
  }
  | { type: "path_dead"; silentMs: number; reason: string }
  | { type: "disconnected"; reason: string; final: boolean }
  | { type: "probe_ack"; seq: number; received: number; serverMtu: number }
  /** A DNS answer for a followed domain, held: route `addresses` into the tunnel, then call
   * {@link ClientCore.release}(id) and write what it gives to the TUN. */
  | { type: "follow"; id: number; addresses: FollowAddress[] }
  /** Followed addresses whose TTL ran out and that saw no traffic: their routes can go. */
  | { type: "unfollow"; addresses: FollowAddress[] }
  | {
    type: "paths";
    /** What changed (paths down or up, the active path); empty for a periodic report. */
    changes: PathChange[];
    /** The active path now. */
    active: number;
    /** Every path's figures. */
    paths: PathReport[];
  };

/** One path's figures in a {@link ClientStatus}. */
export interface PathStatus extends RttReport {
  /** Path index (config order; 0 for a single-path client). */
  index: number;
  /** Considered alive (a single path: keys up and not declared dead). */
  up: boolean;
  /** Carries the traffic now (failover's active path; every live path when redundant). */
  active: boolean;
}

/** What `xvpn status` shows of a client core (plain data; the runtime adds node and TUN). */
export interface ClientStatus {
  /** `connecting`: no keys yet; `reconnecting`: a dead path's handshake is under way. */
  state: "connecting" | "connected" | "reconnecting" | "closed";
  /** Since the newest completed handshake (ms), -1 before the first. */
  handshakeAgeMs: number;
  /** Handshakes begun, and dead-path verdicts (each a reconnect). */
  handshakes: number;
  deadPaths: number;
  /** The pushed tunnel address (`10.7.0.2/24`), its IPv6 one, the MTU: absent before the push. */
  address?: string;
  address6?: string;
  mtu?: number;
  rx: { packets: number; bytes: number };
  tx: { packets: number; bytes: number };
  /** Non-zero drop counters by reason. */
  drops: Record<string, number>;
  mode: "single" | MultipathMode;
  paths: PathStatus[];
  /** Addresses routed into the tunnel by domain following (game profiles). */
  followed: number;
}

/** A datagram for one path's socket (multipath probes). */
export interface PathDatagram {
  /** Path index. */
  path: number;
  /** Bytes to send. */
  data: Uint8Array;
}

/** Default keepalive until the server's config arrives. */
const DEFAULT_KEEPALIVE_MS = 10_000;

/** The client's timers (ids into its {@link TimerTable}). */
export const ClientTimer = {
  /** Resend the initiation (backoff with jitter). */
  Retry: 0,
  /** Handshake again at once: the server said it restarts. */
  Restart: 1,
  /** Ask for the config again until it arrives. */
  Config: 2,
  /** Send the next keepalive ping. */
  Keepalive: 3,
  /** Nothing authenticated for three keepalive intervals (single path), or every path down
   * for long enough (multipath): the path is dead. */
  Dead: 4,
  /** We sent and heard nothing back: probe, and after enough unanswered probes, dead. */
  Liveness: 5,
  /** The keys are old (or have sealed too many messages): handshake again. */
  Rekey: 6,
  /** Multipath: the next probe, probe timeout, loss count or failback. */
  Paths: 7,
  /** Multipath: the periodic per-path report. */
  Report: 8,
  /** Single path: the next RTT probe (status figures). */
  Probe: 9,
  /** Domain following: look for routes that can go. */
  Follow: 10,
} as const;

/** Timer names by id, for tests and logs. */
export const CLIENT_TIMER_NAMES: readonly string[] = Object.keys(ClientTimer);

/** Client protocol state machine. */
export class ClientCore {
  /** Datagrams for the server (control path); the runtime drains this after each call. */
  readonly outbox: Uint8Array[] = [];
  /** Events; the runtime drains this. */
  readonly events: ClientEvent[] = [];
  /** Multipath: datagrams for one given path each (probes); the runtime drains this too. */
  readonly pathOutbox: PathDatagram[] = [];
  /** Drops by reason. */
  readonly drops: DropCounters = newDropCounters();
  /** The pushed config, once received. */
  config: SessionConfig | undefined;
  /** Last measured keepalive round trip (ms), -1 before the first. */
  rttMs = -1;
  /** Packet counters; `deadPaths`: dead-path verdicts (each one a reconnect). */
  readonly stats = {
    rxPackets: 0,
    txPackets: 0,
    rxBytes: 0,
    txBytes: 0,
    handshakes: 0,
    deadPaths: 0,
  };
  /** Round trip, jitter and loss of the single path's pings (multipath: see {@link paths}). */
  readonly rtt = new RttStats();

  readonly #o: ClientOptions;
  readonly #mac1Key: Uint8Array;
  /** The server's last cookie, for mac2 when it is under load (cookie.ts). */
  readonly #cookies: CookieJar;
  /** The sender id of the newest initiation: fresh per handshake (the server's too), so the
   * ids on the wire change with every rekey and every network change. */
  #localId = 0;
  readonly #random: (buf: Uint8Array) => void;
  readonly #result = new PacketResult();
  // Control plaintexts (MTU probes are as large as a datagram can be).
  readonly #plain = new Uint8Array(65536);
  /** Named deadlines (see {@link ClientTimer}). */
  readonly timers = new TimerTable(Object.keys(ClientTimer).length);
  /** Deadline slots of {@link timers}, for one-store updates on the packet path. */
  readonly #at: Float64Array = this.timers.at;
  #pending: PendingInitiation | undefined;
  #attempt = 0;
  #current: Keypair | undefined;
  #previous: Keypair | undefined;
  #lastRecvMs = 0;
  #lastPingMs = -Infinity;
  /** Liveness probes sent since the last authenticated datagram. */
  #probes = 0;
  /** The path was declared dead and a handshake is under way: no liveness probing (the
   * handshake retries run the show) until something authenticated arrives again. */
  #reconnecting = false;
  #pingSeq = 0;
  #closed = false;
  /** MSS limit for SYNs (from the pushed MTU), or 0 when clamping is off. */
  #maxMss = 0;
  /** Nothing authenticated for this long is a dead path (three keepalive intervals). */
  #deadAfterMs = DEAD_AFTER_KEEPALIVES * DEFAULT_KEEPALIVE_MS;
  /** Multipath state, or undefined for a single-path client. */
  readonly #paths: PathSet | undefined;
  /** Inner sources accepted from the server (set with each config push). */
  readonly #sources = new SourceFilter();
  readonly #sources6 = new SourceFilter6();
  /** RTT probe interval of a single-path session (0: none). */
  readonly #probeMs: number;
  /** Domain following (game profiles), when any domain is followed. */
  readonly #follower: DomainFollower | undefined;
  /** Last data packet either way, and until when a status reader wants fresh figures. */
  #lastDataMs = -Infinity;
  #watchedUntil = -Infinity;

  constructor(opts: ClientOptions) {
    this.#o = opts;
    this.#random = opts.random ?? ((b) => crypto.getRandomValues(b));
    this.#mac1Key = mac1Key(publicKeyOf(opts.privateKey));
    this.#cookies = new CookieJar(opts.serverPublicKey);
    if (opts.paths !== undefined) {
      this.#paths = new PathSet(opts.paths, opts.multipath ?? "failover");
    }
    this.#deadAfterMs = DEAD_AFTER_KEEPALIVES * this.keepaliveMs;
    // A diagnostic session (`xvpn diag mtu`) measures only when asked to (`xvpn ping`).
    this.#probeMs = opts.probeMs ?? (opts.diag ? 0 : DEFAULT_PROBE_MS);
    this.#follower = opts.follow?.length ? new DomainFollower(opts.follow) : undefined;
  }

  /** The next time {@link tick} has work (monotonic ms; Infinity when nothing is scheduled). */
  deadline(): number {
    return this.#closed ? Infinity : this.timers.next();
  }

  /** Multipath state (paths up, RTT, loss, route), or undefined for a single-path client. */
  get paths(): PathSet | undefined {
    return this.#paths;
  }

  /**
   * Multipath: the paths that datagrams of `outbox` go out on now. Before there are keys (a
   * first handshake, or one after every path failed), all of them: probes cannot say yet which
   * path works, and an initiation that arrives twice costs the server one replay check.
   */
  sendPaths(): readonly number[] {
    const ps = this.#paths;
    if (!ps) return [0];
    return this.#current ? ps.route : ps.all;
  }

  /** True once keys are up and the config has arrived (a diagnostic session needs no config). */
  get ready(): boolean {
    return this.#current !== undefined && (this.config !== undefined || this.#o.diag === true);
  }

  /** Our sender id of the newest handshake (receiver id of what the server sends). */
  get localId(): number {
    return this.#localId;
  }

  /** The keepalive interval in force. */
  get keepaliveMs(): number {
    return this.#o.keepaliveMs ?? this.config?.keepaliveMs ?? DEFAULT_KEEPALIVE_MS;
  }

  /** Starts (or restarts) a handshake now. */
  start(now: number, wallMs: number): void {
    this.#attempt = 0;
    this.#initiate(now, wallMs);
  }

  #initiate(now: number, wallMs: number): void {
    // A fresh sender id, unlike those of the keys still in use (their packets keep arriving).
    const id = new Uint8Array(4);
    let localId = 0;
    while (
      localId === 0 || localId === this.#current?.localId || localId === this.#previous?.localId
    ) {
      this.#random(id);
      localId = readU32(id, 0);
    }
    this.#localId = localId;
    this.#pending = createInitiation({
      staticPrivate: this.#o.privateKey,
      serverPublic: this.#o.serverPublicKey,
      localId: this.#localId,
      wallMs,
      dh: this.#o.dh,
      flags: (this.#o.diag ? INIT_FLAG_DIAG : 0) |
        (this.#paths?.mode === "redundant" ? INIT_FLAG_REDUNDANT : 0),
    });
    this.#attempt++;
    this.stats.handshakes++;
    const base = Math.min(
      HANDSHAKE_RETRY_FIRST_MS * 2 ** (this.#attempt - 1),
      HANDSHAKE_RETRY_MAX_MS,
    );
    const j = new Uint8Array(1);
    this.#random(j);
    this.timers.set(ClientTimer.Retry, now + base * (1 + HANDSHAKE_RETRY_JITTER * (j[0]! / 255)));
    this.#cookies.stamp(now, this.#pending.datagram);
    this.outbox.push(this.#pending.datagram);
    this.events.push({ type: "handshake_sent", attempt: this.#attempt });
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
    this.#result.verdict = Verdict.None;
    this.#result.length = 0;
    return this.#result;
  }

  /** Handles one datagram from the server (`d.buf[0..d.len)`). `out` receives an inner packet for the TUN. */
  receive(now: number, d: PacketBuf, out: Uint8Array, outerEcn = 0): PacketResult {
    const type = classify(d.buf, d.len);
    if (typeof type === "string") return this.#drop(type);
    if (type === MessageType.HandshakeResponse) return this.#onResponse(now, d.bytes());
    if (type === MessageType.CookieReply) return this.#onCookieReply(now, d.bytes());
    if (type !== MessageType.Data && type !== MessageType.Control) return this.#drop("bad_type");
    // The receiver id names the keys (each handshake has its own); the epoch must agree.
    const id = readU32(d.buf, 4);
    const kp = this.#current?.localId === id
      ? this.#current
      : this.#previous?.localId === id
      ? this.#previous
      : undefined;
    if (!kp) return this.#drop("unknown_receiver");
    if (kp.epoch !== d.buf[2] || kp.expired(now)) return this.#drop("expired_key");
    const plain = type === MessageType.Data ? out : this.#plain;
    if (d.len - SEAL_OVERHEAD_BYTES > plain.length) return this.#drop("too_big");
    const n = kp.open(this.#o.aead, d, plain);
    if (typeof n === "string") return this.#drop(n);
    // The path works: no liveness probing until we send again, and the dead-path clock
    // restarts (a few stores; this runs for every packet). Not for the server's own RTT probe:
    // it proves only the way down, and a client whose packets no longer reach the server must
    // still find its path dead.
    if (type !== MessageType.Control || plain[0] !== ControlKind.Ping) {
      this.#lastRecvMs = now;
      this.#probes = 0;
      this.#reconnecting = false;
      const at = this.#at;
      at[ClientTimer.Liveness] = Infinity;
      if (!this.#paths) at[ClientTimer.Dead] = now + this.#deadAfterMs;
    }
    this.stats.rxPackets++;
    this.stats.rxBytes += d.len;
    if (type === MessageType.Control) return this.#onControl(now, plain.subarray(0, n));
    if (n === 0) return this.#none();
    this.#noteData(now);
    if (!validInnerPacket(out, n)) return this.#drop("bad_inner_packet");
    // Only sources we route into the tunnel (WireGuard's AllowedIPs): a host beside the server
    // must not pass a packet off as one from our own LAN. Addresses routed by domain following
    // are asked only when the configured prefixes say no.
    if (
      out[0]! >> 4 === 6
        ? !this.#sources6.accepts(out, 8) && !this.#follower?.seen6(out, 8, now)
        : !this.#sources.accepts(ipv4Src(out)) && !this.#follower?.seen4(ipv4Src(out), now)
    ) {
      return this.#drop("bad_inner_src");
    }
    if (outerEcn !== 0 && !decapsulate(out, outerEcn)) return this.#drop("ce_not_ect");
    if (this.#maxMss) clampMss(out, n, this.#maxMss);
    const len = innerLength(out); // from the IP header: trims any padding
    if (this.#follower) {
      const hold = this.#follower.inspect(out, len, now);
      if (hold) {
        this.events.push({ type: "follow", id: hold.id, addresses: hold.addresses });
        if (!this.timers.isSet(ClientTimer.Follow)) {
          this.timers.set(ClientTimer.Follow, now + FOLLOW_SWEEP_MS);
        }
        return this.#none();
      }
    }
    const r = this.#result;
    r.verdict = Verdict.Tun;
    r.length = len;
    return r;
  }

  /** The server is under load and did no handshake for our initiation: keep its cookie and send
   * the same initiation again at once with mac2 (its timestamp is still unused, so the server
   * accepts it; WireGuard waits for its retry timer, a game should not). */
  #onCookieReply(now: number, d: Uint8Array): PacketResult {
    const pending = this.#pending;
    if (!pending || readU32(d, 4) !== pending.localId) return this.#drop("unknown_receiver");
    if (!this.#cookies.accept(now, d)) return this.#drop("bad_cookie");
    const again = pending.datagram.slice();
    this.#cookies.restamp(now, again);
    this.outbox.push(again);
    return this.#none();
  }

  #onResponse(now: number, d: Uint8Array): PacketResult {
    const pending = this.#pending;
    if (!pending || readU32(d, 4) !== pending.localId) return this.#drop("unknown_receiver");
    if (!checkMac1(this.#mac1Key, d)) return this.#drop("bad_mac1");
    const resp = readResponse(d, pending);
    if (resp === undefined) return this.#drop("bad_handshake");
    const { connId } = resp;
    const keys = pending.state.split();
    const rekey = this.#current !== undefined;
    this.#previous = this.#current;
    this.#current = new Keypair(
      keys.initiatorToResponder,
      keys.responderToInitiator,
      d[2]!,
      connId,
      now,
      pending.localId,
    );
    this.#pending = undefined;
    this.timers.stop(ClientTimer.Retry);
    this.#attempt = 0;
    this.#lastRecvMs = now;
    this.#probes = 0;
    this.#reconnecting = false;
    this.timers.stop(ClientTimer.Liveness);
    if (!this.#paths) this.timers.set(ClientTimer.Dead, now + this.#deadAfterMs);
    this.timers.set(ClientTimer.Rekey, now + REKEY_AFTER_TIME_MS);
    if (this.#paths) this.timers.set(ClientTimer.Paths, now); // probe every path from now on
    this.events.push({ type: "connected", connId, rekey });
    if (this.#o.diag) {
      // A diagnostic session asks for no config; it is ready now.
    } else if (!this.config || !(resp.flags & RESPONSE_FLAG_RESUMED)) {
      // A new session (first connect, or the server forgot us): ask for the config. This is
      // also the first packet under the new keys, which confirms them to the server.
      this.#sendConfigRequest(now);
    } else if (this.#paths) {
      this.#probeAll(now); // confirm the new keys at once, and measure every path again
    } else {
      this.#ping(now); // confirm the new keys at once so the server switches to them
    }
    if (this.config || this.#o.diag) this.#armProbe(now);
    return this.#none();
  }

  #onControl(now: number, msg: Uint8Array): PacketResult {
    switch (msg[0]) {
      case ControlKind.ConfigPush: {
        const pushed = decodeConfigPush(msg.subarray(1));
        if (!pushed) return this.#drop("bad_control");
        const { config: c, refused } = applyPolicy(
          pushed,
          this.#o.policy ?? DEFAULT_POLICY,
          this.#o.local ?? NO_LOCAL,
        );
        this.config = c;
        this.#sources.set(acceptedSources(c, this.#o.routes ?? []));
        this.#sources6.set(acceptedSources6(c, this.#o.routes6 ?? []));
        this.#maxMss = this.#o.mssClamp === false ? 0 : mssForMtu(c.mtu);
        this.timers.stop(ClientTimer.Config);
        this.#deadAfterMs = DEAD_AFTER_KEEPALIVES * this.keepaliveMs;
        if (!this.#paths) {
          this.timers.set(ClientTimer.Dead, this.#lastRecvMs + this.#deadAfterMs);
          this.timers.set(ClientTimer.Keepalive, this.#lastPingMs + this.keepaliveMs);
          this.#armProbe(now);
        }
        this.events.push({ type: "config", config: c, refused });
        return this.#none();
      }
      case ControlKind.Pong: {
        const p = decodePingBody(msg.subarray(1));
        if (!p) return this.#drop("bad_control");
        this.rttMs = ((now >>> 0) - p.timeMs) >>> 0;
        if (p.flags !== undefined && this.#paths) {
          // A probe's answer: five a second per path, so no event each (reports instead).
          this.#paths.pongReceived(p.flags >> PING_PATH_SHIFT, p.seq, this.rttMs, now);
          this.timers.set(ClientTimer.Paths, this.#paths.deadline());
          this.#pathEvents();
          return this.#none();
        }
        this.rtt.answer(p.seq, now);
        return this.#none();
      }
      case ControlKind.Ping: {
        // The server measures our round trip too (status on its side): echo its ping.
        if (!decodePingBody(msg.subarray(1))) return this.#drop("bad_control");
        const pong = msg.slice();
        pong[0] = ControlKind.Pong;
        // One answer, on the active path (a redundant client would send it on every path).
        const data = this.#sealControl(pong);
        if (data && this.#paths) this.pathOutbox.push({ path: this.#paths.active, data });
        else if (data) this.outbox.push(data);
        return this.#none();
      }
      case ControlKind.MtuProbeAck: {
        const a = decodeMtuProbeAck(msg.subarray(1));
        if (!a) return this.#drop("bad_control");
        this.events.push({ type: "probe_ack", ...a });
        return this.#none();
      }
      case ControlKind.Disconnect: {
        this.#current = this.#previous = undefined;
        this.#stopSessionTimers();
        if (msg[1] === DisconnectReason.PoolExhausted) {
          // Retrying cannot help until the operator changes the pool: give up, loudly.
          this.#closed = true;
          this.#pending = undefined;
          this.timers.stopAll();
          this.events.push({
            type: "disconnected",
            reason: "the server's address pool is exhausted",
            final: true,
          });
        } else {
          // The server is restarting or going away: handshake again (with backoff) from the
          // next tick on; routes stay in place so traffic resumes by itself.
          this.timers.set(ClientTimer.Restart, now);
          this.events.push({ type: "disconnected", reason: "the server shut down", final: false });
        }
        return this.#none();
      }
      default:
        return this.#drop("bad_control");
    }
  }

  #sendControl(msg: Uint8Array): void {
    const data = this.#sealControl(msg);
    if (data) this.outbox.push(data);
  }

  #sealControl(msg: Uint8Array): Uint8Array | undefined {
    const kp = this.#current;
    if (!kp) return undefined;
    const data = PacketBuf.alloc(msg.length + SEAL_OVERHEAD_BYTES);
    kp.seal(this.#o.aead, MessageType.Control, msg, msg.length, data);
    this.stats.txPackets++;
    this.stats.txBytes += data.len;
    return data.bytes();
  }

  /** Multipath: a probe on path `i`, flagged active when `i` carries the traffic. */
  #probe(i: number, now: number): void {
    const ps = this.#paths!;
    const seq = ++this.#pingSeq;
    const flags = (i === ps.active ? PING_FLAG_ACTIVE : 0) | (i << PING_PATH_SHIFT);
    const data = this.#sealControl(encodePing(ControlKind.Ping, seq, now, flags));
    if (!data) return;
    this.pathOutbox.push({ path: i, data });
    ps.probeSent(i, seq, now);
    this.#lastPingMs = now;
    this.timers.set(ClientTimer.Paths, ps.deadline());
  }

  #probeAll(now: number): void {
    for (let i = 0; i < this.#paths!.count; i++) this.#probe(i, now);
  }

  /** Turns PathSet changes into one event with every path's figures. */
  #pathEvents(): void {
    const ps = this.#paths!;
    if (ps.changes.length === 0) return;
    this.events.push({
      type: "paths",
      changes: ps.changes.splice(0),
      active: ps.active,
      paths: ps.report(),
    });
  }

  #sendConfigRequest(now: number): void {
    this.#sendControl(encodeConfigRequest(this.#o.queue));
    this.timers.set(ClientTimer.Config, now + CONFIG_RETRY_MS);
  }

  /** A keepalive, liveness or RTT ping; the next keepalive is due one interval later. */
  #ping(now: number): void {
    const seq = ++this.#pingSeq;
    this.#sendControl(encodePing(ControlKind.Ping, seq, now));
    this.rtt.probeSent(seq, now);
    this.#lastPingMs = now;
    if (this.config) this.timers.set(ClientTimer.Keepalive, now + this.keepaliveMs);
  }

  /** Stops what only a live session needs (keepalives, liveness, dead path, rekey). */
  #stopSessionTimers(): void {
    const t = this.timers;
    for (
      const id of [
        ClientTimer.Config,
        ClientTimer.Keepalive,
        ClientTimer.Dead,
        ClientTimer.Liveness,
        ClientTimer.Rekey,
        ClientTimer.Paths,
        ClientTimer.Report,
        ClientTimer.Probe,
      ]
    ) t.stop(id);
  }

  /** The next RTT probe of a single-path session that can carry traffic (or a diagnostic
   * one), one interval after the last ping of any kind. */
  /** Data crossed the tunnel: an idle tunnel's probes speed up to once a second at once. */
  #noteData(now: number): void {
    const idle = now - this.#lastDataMs >= PROBE_ACTIVE_MS;
    this.#lastDataMs = now;
    if (idle && this.timers.isSet(ClientTimer.Probe)) this.#armProbe(now);
  }

  #armProbe(now: number): void {
    if (this.#probeMs <= 0 || this.#paths || !this.#current) return;
    // Once a second while the tunnel carries traffic or someone reads its status; an idle,
    // unwatched tunnel is measured by its keepalives alone (a node with thousands of parked
    // clients must not answer a ping of each one every second).
    const busy = now - this.#lastDataMs < PROBE_ACTIVE_MS || now < this.#watchedUntil;
    const every = busy || this.#o.diag ? this.#probeMs : Math.max(this.#probeMs, this.keepaliveMs);
    this.timers.set(ClientTimer.Probe, Math.max(now, this.#lastPingMs + every));
  }

  /**
   * The queue a packet read from the TUN waits in: 0 (the client has one way out), or -1 when
   * there is no session to send it on yet (counted as no_session).
   */
  route(_pkt: Uint8Array, _len: number): number {
    if (this.#current && this.config) return 0;
    this.#drop("no_session");
    return -1;
  }

  /** Seals one packet read from the TUN (`pkt[0..len)`) for the server into `out`, which needs
   * `len + 32` bytes (`out.len` is set), with header `flags` (HEADER_FLAG_INTERACTIVE). */
  seal(now: number, pkt: Uint8Array, len: number, out: PacketBuf, flags = 0): PacketResult {
    const kp = this.#current;
    if (!kp || !this.config) return this.#drop("no_session");
    if (kp.expired(now)) return this.#drop("expired_key");
    if (len + SEAL_OVERHEAD_BYTES > out.buf.length) return this.#drop("too_big");
    if (this.#maxMss) clampMss(pkt, len, this.#maxMss);
    const f = this.#follower;
    if (f && f.size) pkt[0]! >> 4 === 6 ? f.touch6(pkt, 24, now) : f.touch4(ipv4Dst(pkt), now);
    const r = this.#result;
    kp.seal(this.#o.aead, MessageType.Data, pkt, len, out, flags);
    this.#noteData(now);
    r.length = out.len;
    r.verdict = Verdict.Net;
    const at = this.#at;
    // Sent, and nothing heard since: unless already armed, the liveness timer starts (once the
    // silence is long enough and the last ping old enough). One load and compare per packet.
    if (at[ClientTimer.Liveness] === Infinity && !this.#reconnecting && !this.#paths) {
      at[ClientTimer.Liveness] = Math.max(
        this.#lastRecvMs + LIVENESS_SILENCE_MS,
        this.#lastPingMs + LIVENESS_PROBE_MS,
      );
    }
    if (kp.sendCounter >= REKEY_AFTER_MESSAGES) at[ClientTimer.Rekey] = now;
    this.stats.txPackets++;
    this.stats.txBytes += r.length;
    return r;
  }

  /** Seals one packet read from the TUN at once, unqueued (the portable path, tests). */
  fromTun(now: number, pkt: Uint8Array, len: number, out: PacketBuf): PacketResult {
    return this.seal(now, pkt, len, out);
  }

  /** Runs the expired timers (retries, config requests, keepalives, liveness probes, rekey,
   * dead-path detection) and returns the next deadline (monotonic ms), as {@link deadline}. */
  tick(now: number, wallMs: number): number {
    if (this.#closed) return Infinity;
    const t = this.timers;
    if (t.expired(ClientTimer.Restart, now)) {
      t.stop(ClientTimer.Restart);
      this.#attempt = 0;
      this.#initiate(now, wallMs);
    }
    if (t.expired(ClientTimer.Retry, now)) this.#initiate(now, wallMs);
    if (t.expired(ClientTimer.Follow, now)) {
      const gone = this.#follower!.expired(now);
      if (gone.length) this.events.push({ type: "unfollow", addresses: gone });
      if (this.#follower!.size) t.set(ClientTimer.Follow, now + FOLLOW_SWEEP_MS);
      else t.stop(ClientTimer.Follow);
    }
    const kp = this.#current;
    if (kp) {
      if (t.expired(ClientTimer.Config, now)) this.#sendConfigRequest(now);
      if (this.#paths) this.#tickPaths(now, wallMs, this.#paths);
      else this.#tickPath(now, wallMs);
      if (t.expired(ClientTimer.Rekey, now)) {
        t.stop(ClientTimer.Rekey);
        // A handshake already under way (a dead path's) makes the new keys anyway.
        if (!this.#pending) {
          this.#attempt = 0;
          this.#initiate(now, wallMs);
        }
      }
    }
    return this.deadline();
  }

  /** Timers of a single-path session: keepalive, liveness probes, dead path. */
  #tickPath(now: number, wallMs: number): void {
    const t = this.timers;
    if (t.expired(ClientTimer.Liveness, now)) {
      if (this.#probes >= LIVENESS_PROBES) {
        this.#pathDead(
          now,
          wallMs,
          now - this.#lastRecvMs,
          `${this.#probes} probes unanswered while sending`,
        );
        return;
      }
      this.#ping(now);
      this.#probes++;
      t.set(ClientTimer.Liveness, now + LIVENESS_PROBE_MS);
    }
    if (t.expired(ClientTimer.Dead, now)) {
      this.#pathDead(
        now,
        wallMs,
        now - this.#lastRecvMs,
        `${DEAD_AFTER_KEEPALIVES} keepalives unanswered`,
      );
      return;
    }
    if (t.expired(ClientTimer.Keepalive, now)) this.#ping(now);
    if (t.expired(ClientTimer.Probe, now)) {
      // Nothing at all came back since the last ping, a whole probe interval ago: the path may
      // be dead. The liveness probes decide (six at 100 ms), instead of three keepalives. (A
      // diagnostic session only measures: `xvpn ping` reports the loss instead.)
      if (
        this.#lastRecvMs < this.#lastPingMs && now - this.#lastPingMs >= this.#probeMs &&
        !this.#reconnecting && !this.#o.diag &&
        !t.isSet(ClientTimer.Liveness)
      ) {
        this.#ping(now);
        this.#probes++;
        t.set(ClientTimer.Liveness, now + LIVENESS_PROBE_MS);
        t.set(ClientTimer.Probe, now + this.#probeMs);
        return;
      }
      if (now - this.#lastPingMs >= this.#probeMs) this.#ping(now);
      this.#armProbe(now);
    }
  }

  /** Timers of a multipath session: probes on every path instead of keepalives and liveness
   * pings; the tunnel is dead when every path has been down for long enough. */
  #tickPaths(now: number, wallMs: number, ps: PathSet): void {
    const t = this.timers;
    ps.tick(now);
    const deadAfter = PATH_DEAD_PROBES * PATH_PROBE_MS;
    if (ps.anyUp || this.#reconnecting) {
      t.stop(ClientTimer.Dead);
    } else if (now - this.#lastRecvMs >= deadAfter) {
      t.stop(ClientTimer.Dead);
      this.#pathDead(now, wallMs, now - this.#lastRecvMs, `all ${ps.count} paths down`);
    } else {
      t.set(ClientTimer.Dead, this.#lastRecvMs + deadAfter);
    }
    for (let i = 0; i < ps.count; i++) if (ps.probeDue(i, now)) this.#probe(i, now);
    if (!t.isSet(ClientTimer.Report)) {
      t.set(ClientTimer.Report, now + PATH_REPORT_MS);
    } else if (t.expired(ClientTimer.Report, now)) {
      this.events.push({ type: "paths", changes: [], active: ps.active, paths: ps.report(true) });
      t.set(ClientTimer.Report, now + PATH_REPORT_MS);
    }
    t.set(ClientTimer.Paths, ps.deadline());
    this.#pathEvents();
  }

  /** The path is dead: tell the runtime (it takes a fresh socket) and handshake again. Until
   * something authenticated arrives, only the handshake retries run: no liveness probing, no
   * second verdict per probe round. The keys stay, in case only the path changed. */
  #pathDead(now: number, wallMs: number, silentMs: number, reason: string): void {
    this.events.push({ type: "path_dead", silentMs, reason });
    this.stats.deadPaths++;
    this.timers.stop(ClientTimer.Probe); // the liveness of the handshake retries rules now
    this.#probes = 0;
    this.#reconnecting = true;
    this.timers.stop(ClientTimer.Liveness);
    this.timers.stop(ClientTimer.Dead);
    this.#attempt = 0;
    this.#initiate(now, wallMs);
  }

  /**
   * The local network changed (address, route, interface): probe the path now, and rekey, so
   * that the ids on the wire change with the address (an observer of both networks cannot tie
   * them together by id; the session, its address and config carry on). If the server answers,
   * nothing else happens (it already follows us to a new address); if not, the liveness probes
   * declare the path dead within a second and the handshake retries take over.
   */
  nudge(now: number): void {
    if (!this.#current || this.#closed) return;
    // After a dead-path verdict the handshake retries run the show (the runtime's fresh socket
    // carries them): probing again here would give a new verdict, and a new socket, every 600 ms.
    // A changed network is worth a retry soon, though, not at the end of a long backoff.
    if (this.#reconnecting) {
      this.#attempt = Math.min(this.#attempt, 1);
      const soon = now + HANDSHAKE_RETRY_FIRST_MS;
      if (this.timers.get(ClientTimer.Retry) > soon) this.timers.set(ClientTimer.Retry, soon);
      return;
    }
    if (!this.#pending) this.timers.set(ClientTimer.Rekey, now);
    if (this.#paths) return this.#probeAll(now);
    this.#ping(now);
    this.#probes = 1;
    this.#reconnecting = false;
    this.timers.set(ClientTimer.Liveness, now + LIVENESS_PROBE_MS);
  }

  /**
   * A sealed path-MTU probe whose UDP payload is exactly `size` bytes (at least 37), or
   * undefined before the handshake completed. The server answers with a small ack carrying the
   * size it received and its TUN MTU (event `probe_ack`).
   */
  probe(seq: number, size: number): Uint8Array | undefined {
    const kp = this.#current;
    if (!kp) return undefined;
    const plain = encodeMtuProbe(seq, size - SEAL_OVERHEAD_BYTES);
    const data = PacketBuf.alloc(plain.length + SEAL_OVERHEAD_BYTES);
    kp.seal(this.#o.aead, MessageType.Control, plain, plain.length, data);
    return data.bytes();
  }

  /** The session's figures at `now` for `xvpn status`. */
  status(now: number): ClientStatus {
    // Someone is looking: measure once a second for a while, idle or not.
    const wasWatched = now < this.#watchedUntil;
    this.#watchedUntil = now + PROBE_WATCHED_MS;
    if (!wasWatched && this.timers.isSet(ClientTimer.Probe)) this.#armProbe(now);
    const kp = this.#current;
    const c = this.config;
    const drops: Record<string, number> = {};
    for (const [k, v] of Object.entries(this.drops)) if (v > 0) drops[k] = v;
    const ps = this.#paths;
    const paths: PathStatus[] = ps
      ? Array.from({ length: ps.count }, (_, i) => ({
        index: i,
        up: ps.isUp(i),
        active: ps.route.includes(i),
        ...ps.status(i, now),
      }))
      : [{ index: 0, up: !!kp && !this.#reconnecting, active: true, ...this.rtt.report(now) }];
    return {
      state: this.#closed
        ? "closed"
        : !kp
        ? "connecting"
        : this.#reconnecting
        ? "reconnecting"
        : "connected",
      handshakeAgeMs: kp ? Math.round(now - kp.createdMs) : -1,
      handshakes: this.stats.handshakes,
      deadPaths: this.stats.deadPaths,
      ...(c
        ? {
          address: `${formatIPv4(c.address.addr)}/${c.address.prefix}`,
          ...(c.address6
            ? { address6: `${formatIPv6(c.address6.addr)}/${c.address6.prefix}` }
            : {}),
          mtu: c.mtu,
        }
        : {}),
      rx: { packets: this.stats.rxPackets, bytes: this.stats.rxBytes },
      tx: { packets: this.stats.txPackets, bytes: this.stats.txBytes },
      drops,
      mode: ps ? ps.mode : "single",
      paths,
      followed: this.followed,
    };
  }

  /** The DNS answer held under `id` (a `follow` event), now that its routes are in: for the
   * TUN. `forget`: its addresses that got no route (refused, or the command failed), which are
   * then dropped from the table. Undefined when unknown (already released). */
  release(id: number, forget: readonly FollowAddress[] = []): Uint8Array | undefined {
    if (forget.length) this.#follower?.forget(forget);
    return this.#follower?.release(id);
  }

  /** Addresses routed by domain following now. */
  get followed(): number {
    return this.#follower?.size ?? 0;
  }

  /** True once the client has stopped for good (closed, or refused by the server). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Closes the session: queues a sealed disconnect for the server, stops all timers. */
  close(): void {
    this.#sendControl(new Uint8Array([ControlKind.Disconnect, DisconnectReason.Shutdown]));
    this.#closed = true;
    this.#current = this.#previous = undefined;
    this.#pending = undefined;
    this.timers.stopAll();
  }
}
