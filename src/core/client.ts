/**
 * The client's protocol core: sans-I/O and synchronous, like {@link ServerCore}. It talks to one
 * server; the runtime owns the socket and sends `outbox` datagrams to the server's address.
 *
 * Lifecycle: `start()` queues an initiation; retries back off (1 s doubling to 8 s, with
 * jitter) until a response authenticates; then a config request goes out (it also confirms the
 * new keys to the server) and is repeated each second until the config push arrives. After
 * that: a keepalive ping every interval (the pong gives the RTT), a rekey after two minutes, and
 * a fresh handshake when nothing authenticated has come back for three keepalive intervals
 * (the server restarted, or the path changed under us).
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
  encodeMtuProbe,
  encodePing,
  PING_FLAG_ACTIVE,
  PING_PATH_SHIFT,
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
} from "./handshake.ts";
import { type MultipathMode, type PathChange, type PathReport, PathSet } from "./paths.ts";
import { CookieJar } from "./cookie.ts";
import { publicKeyOf } from "./keys.ts";
import { Keypair, SEAL_OVERHEAD_BYTES } from "./keypair.ts";
import { PacketResult, Verdict } from "./result.ts";
import { PacketBuf } from "./packet.ts";
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
import { validInnerPacket } from "./inner.ts";
import { clampMss, mssForMtu } from "./mss.ts";

/** Everything the client core needs; no I/O handles. */
export interface ClientOptions {
  /** Our static private key. */
  privateKey: Uint8Array;
  /** The server's static public key. */
  serverPublicKey: Uint8Array;
  /** Data-path AEAD. */
  aead: Aead;
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
  /** Fills a buffer with random bytes (injected for deterministic tests). */
  random?: (buf: Uint8Array) => void;
}

/** Something the runtime must act on or log. */
export type ClientEvent =
  | { type: "handshake_sent"; attempt: number }
  | { type: "connected"; connId: number; rekey: boolean }
  | { type: "config"; config: SessionConfig }
  | { type: "path_dead"; silentMs: number; reason: string }
  | { type: "rtt"; rttMs: number }
  | { type: "disconnected"; reason: string; final: boolean }
  | { type: "probe_ack"; seq: number; received: number; serverMtu: number }
  | {
    type: "paths";
    /** What changed (paths down or up, the active path); empty for a periodic report. */
    changes: PathChange[];
    /** The active path now. */
    active: number;
    /** Every path's figures. */
    paths: PathReport[];
  };

/** A datagram for one path's socket (multipath probes). */
export interface PathDatagram {
  /** Path index. */
  path: number;
  /** Bytes to send. */
  data: Uint8Array;
}

/** Default keepalive until the server's config arrives. */
const DEFAULT_KEEPALIVE_MS = 10_000;

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
  /** Packet counters. */
  readonly stats = { rxPackets: 0, txPackets: 0, rxBytes: 0, txBytes: 0, handshakes: 0 };

  readonly #o: ClientOptions;
  readonly #mac1Key: Uint8Array;
  /** The server's last cookie, for mac2 when it is under load (cookie.ts). */
  readonly #cookies: CookieJar;
  readonly #localId: number;
  readonly #random: (buf: Uint8Array) => void;
  readonly #result = new PacketResult();
  // Control plaintexts (MTU probes are as large as a datagram can be).
  readonly #plain = new Uint8Array(65536);
  #pending: PendingInitiation | undefined;
  #attempt = 0;
  #retryAtMs = Infinity;
  #current: Keypair | undefined;
  #previous: Keypair | undefined;
  #lastRecvMs = 0;
  #lastPingMs = -Infinity;
  /** When the last inner packet went out (liveness probing starts if nothing comes back). */
  #lastDataSentMs = -Infinity;
  /** Liveness probes sent since the last authenticated datagram. */
  #probes = 0;
  #configRequestAtMs = Infinity;
  #pingSeq = 0;
  #closed = false;
  #restart = false;
  /** MSS limit for SYNs (from the pushed MTU), or 0 when clamping is off. */
  #maxMss = 0;
  /** Multipath state, or undefined for a single-path client. */
  readonly #paths: PathSet | undefined;
  #pathReportAtMs = -Infinity;

  constructor(opts: ClientOptions) {
    this.#o = opts;
    this.#random = opts.random ?? ((b) => crypto.getRandomValues(b));
    this.#mac1Key = mac1Key(publicKeyOf(opts.privateKey));
    this.#cookies = new CookieJar(opts.serverPublicKey);
    const id = new Uint8Array(4);
    do this.#random(id); while (readU32(id, 0) === 0);
    this.#localId = readU32(id, 0);
    if (opts.paths !== undefined) {
      this.#paths = new PathSet(opts.paths, opts.multipath ?? "failover");
    }
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

  /** Our sender id (receiver id of what the server sends). */
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
    this.#pending = createInitiation({
      staticPrivate: this.#o.privateKey,
      serverPublic: this.#o.serverPublicKey,
      localId: this.#localId,
      wallMs,
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
    this.#retryAtMs = now + base * (1 + HANDSHAKE_RETRY_JITTER * (j[0]! / 255));
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
  receive(now: number, d: PacketBuf, out: Uint8Array): PacketResult {
    const type = classify(d.buf, d.len);
    if (typeof type === "string") return this.#drop(type);
    if (type === MessageType.HandshakeResponse) return this.#onResponse(now, d.bytes());
    if (type === MessageType.CookieReply) return this.#onCookieReply(now, d.bytes());
    if (type !== MessageType.Data && type !== MessageType.Control) return this.#drop("bad_type");
    if (readU32(d.buf, 4) !== this.#localId) return this.#drop("unknown_receiver");
    const epoch = d.buf[2]!;
    const kp = this.#current?.epoch === epoch
      ? this.#current
      : this.#previous?.epoch === epoch
      ? this.#previous
      : undefined;
    if (!kp || kp.expired(now)) return this.#drop("expired_key");
    const plain = type === MessageType.Data ? out : this.#plain;
    if (d.len - SEAL_OVERHEAD_BYTES > plain.length) return this.#drop("too_big");
    const n = kp.open(this.#o.aead, d, plain);
    if (n < 0) return this.#drop(n === -1 ? "bad_tag" : n === -2 ? "replay" : "bad_counter");
    this.#lastRecvMs = now;
    this.#probes = 0;
    this.stats.rxPackets++;
    this.stats.rxBytes += d.len;
    if (type === MessageType.Control) return this.#onControl(now, plain.subarray(0, n));
    if (n === 0) return this.#none();
    if (!validInnerPacket(out, n)) return this.#drop("bad_inner_packet");
    if (this.#maxMss) clampMss(out, n, this.#maxMss);
    const r = this.#result;
    r.verdict = Verdict.Tun;
    r.length = (out[2]! << 8) | out[3]!; // IPv4 total length: trims any padding
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
    const connId = readResponse(d, pending);
    if (connId === undefined) return this.#drop("bad_handshake");
    const keys = pending.state.split();
    const rekey = this.#current !== undefined;
    this.#previous = this.#current;
    this.#current = new Keypair(
      keys.initiatorToResponder,
      keys.responderToInitiator,
      d[2]!,
      connId,
      now,
    );
    this.#pending = undefined;
    this.#retryAtMs = Infinity;
    this.#attempt = 0;
    this.#lastRecvMs = now;
    this.events.push({ type: "connected", connId, rekey });
    if (this.#o.diag) {
      // A diagnostic session asks for no config; it is ready now.
    } else if (!this.config || this.config.connId !== connId) {
      // A new session (first connect, or the server forgot us): ask for the config. This is
      // also the first packet under the new keys, which confirms them to the server.
      this.#sendConfigRequest(now);
    } else if (this.#paths) {
      this.#probeAll(now); // confirm the new keys at once, and measure every path again
    } else {
      this.#ping(now); // confirm the new keys at once so the server switches to them
    }
    return this.#none();
  }

  #onControl(now: number, msg: Uint8Array): PacketResult {
    switch (msg[0]) {
      case ControlKind.ConfigPush: {
        const c = decodeConfigPush(msg.subarray(1));
        if (!c) return this.#drop("bad_control");
        this.config = c;
        this.#maxMss = this.#o.mssClamp === false ? 0 : mssForMtu(c.mtu);
        this.#configRequestAtMs = Infinity;
        this.events.push({ type: "config", config: c });
        return this.#none();
      }
      case ControlKind.Pong: {
        const p = decodePingBody(msg.subarray(1));
        if (!p) return this.#drop("bad_control");
        this.rttMs = ((now >>> 0) - p.timeMs) >>> 0;
        if (p.flags !== undefined && this.#paths) {
          // A probe's answer: five a second per path, so no event each (reports instead).
          this.#paths.pongReceived(p.flags >> PING_PATH_SHIFT, p.seq, this.rttMs, now);
          this.#pathEvents();
          return this.#none();
        }
        this.events.push({ type: "rtt", rttMs: this.rttMs });
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
        if (msg[1] === DisconnectReason.PoolExhausted) {
          // Retrying cannot help until the operator changes the pool: give up, loudly.
          this.#closed = true;
          this.#pending = undefined;
          this.events.push({
            type: "disconnected",
            reason: "the server's address pool is exhausted",
            final: true,
          });
        } else {
          // The server is restarting or going away: handshake again (with backoff) from the
          // next tick on; routes stay in place so traffic resumes by itself.
          this.#restart = true;
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
    this.#sendControl(new Uint8Array([ControlKind.ConfigRequest]));
    this.#configRequestAtMs = now + CONFIG_RETRY_MS;
  }

  #ping(now: number): void {
    this.#sendControl(encodePing(ControlKind.Ping, ++this.#pingSeq, now));
    this.#lastPingMs = now;
  }

  /** Seals one packet read from the TUN (`pkt[0..len)`) for the server into `out`, which needs
   * `len + 32` bytes (`out.len` is set). */
  fromTun(now: number, pkt: Uint8Array, len: number, out: PacketBuf): PacketResult {
    const kp = this.#current;
    if (!kp || !this.config) return this.#drop("no_session");
    if (kp.expired(now)) return this.#drop("expired_key");
    if (len + SEAL_OVERHEAD_BYTES > out.buf.length) return this.#drop("too_big");
    if (this.#maxMss) clampMss(pkt, len, this.#maxMss);
    const r = this.#result;
    kp.seal(this.#o.aead, MessageType.Data, pkt, len, out);
    r.length = out.len;
    r.verdict = Verdict.Net;
    this.#lastDataSentMs = now;
    this.stats.txPackets++;
    this.stats.txBytes += r.length;
    return r;
  }

  /** Runs timers: retries, config requests, keepalives, rekey, dead-path detection. Returns
   * the next deadline (monotonic ms). */
  tick(now: number, wallMs: number): number {
    if (this.#closed) return Infinity;
    if (this.#restart) {
      this.#restart = false;
      this.#attempt = 0;
      this.#initiate(now, wallMs);
    }
    if (this.#pending && now >= this.#retryAtMs) this.#initiate(now, wallMs);
    if (this.#paths) return this.#tickPaths(now, wallMs, this.#paths);
    const kp = this.#current;
    if (kp) {
      if (now >= this.#configRequestAtMs) this.#sendConfigRequest(now);
      const ka = this.keepaliveMs;
      const silent = now - this.#lastRecvMs;
      // Traffic went out since we last heard anything: probe quickly instead of waiting for
      // the keepalive timer, so a dead path is noticed in under a second.
      const waiting = this.#lastDataSentMs > this.#lastRecvMs && silent >= LIVENESS_SILENCE_MS;
      if (!this.#pending && waiting && this.#probes >= LIVENESS_PROBES) {
        this.#pathDead(now, wallMs, silent, `${this.#probes} probes unanswered while sending`);
      } else if (!this.#pending && silent >= DEAD_AFTER_KEEPALIVES * ka) {
        this.#pathDead(now, wallMs, silent, `${DEAD_AFTER_KEEPALIVES} keepalives unanswered`);
      } else if (
        !this.#pending && waiting && this.config && now - this.#lastPingMs >= LIVENESS_PROBE_MS
      ) {
        this.#ping(now);
        this.#probes++;
      } else if (
        !this.#pending &&
        (now - kp.createdMs >= REKEY_AFTER_TIME_MS || kp.sendCounter >= REKEY_AFTER_MESSAGES)
      ) {
        this.#attempt = 0;
        this.#initiate(now, wallMs);
      }
      if (this.config && now - this.#lastPingMs >= ka) this.#ping(now);
    }
    let next = Math.min(this.#retryAtMs, this.#configRequestAtMs);
    if (kp) {
      if (this.#lastDataSentMs > this.#lastRecvMs) {
        // The next liveness probe: once the silence is long enough AND the last probe is old
        // enough. (Taking the earlier of the two woke the loop every millisecond while a reply
        // was on its way, because the last keepalive ping is usually long past.)
        next = Math.min(
          next,
          Math.max(this.#lastRecvMs + LIVENESS_SILENCE_MS, this.#lastPingMs + LIVENESS_PROBE_MS),
        );
      }
      next = Math.min(
        next,
        this.#lastPingMs + this.keepaliveMs,
        this.#lastRecvMs + DEAD_AFTER_KEEPALIVES * this.keepaliveMs,
        kp.createdMs + REKEY_AFTER_TIME_MS,
      );
    }
    return Math.max(next, now + 1);
  }

  /** tick() of a multipath client: probes on every path instead of keepalives and liveness
   * pings; the tunnel is dead when every path is. */
  #tickPaths(now: number, wallMs: number, ps: PathSet): number {
    let next = Math.min(this.#retryAtMs, this.#configRequestAtMs);
    const kp = this.#current;
    if (kp) {
      if (now >= this.#configRequestAtMs) this.#sendConfigRequest(now);
      ps.tick(now);
      const silent = now - this.#lastRecvMs;
      const deadAfter = PATH_DEAD_PROBES * PATH_PROBE_MS;
      if (!this.#pending && !ps.anyUp && silent >= deadAfter) {
        this.#pathDead(now, wallMs, silent, `all ${ps.count} paths down`);
      } else if (
        !this.#pending &&
        (now - kp.createdMs >= REKEY_AFTER_TIME_MS || kp.sendCounter >= REKEY_AFTER_MESSAGES)
      ) {
        this.#attempt = 0;
        this.#initiate(now, wallMs);
      }
      for (let i = 0; i < ps.count; i++) if (ps.probeDue(i, now)) this.#probe(i, now);
      if (now >= this.#pathReportAtMs) {
        if (this.#pathReportAtMs !== -Infinity) {
          this.events.push({
            type: "paths",
            changes: [],
            active: ps.active,
            paths: ps.report(true),
          });
        }
        this.#pathReportAtMs = now + PATH_REPORT_MS;
      }
      next = Math.min(
        next,
        ps.deadline(),
        this.#pathReportAtMs,
        kp.createdMs + REKEY_AFTER_TIME_MS,
      );
      if (!ps.anyUp) next = Math.min(next, this.#lastRecvMs + deadAfter);
      this.#pathEvents();
    }
    return Math.max(next, now + 1);
  }

  #pathDead(now: number, wallMs: number, silentMs: number, reason: string): void {
    this.events.push({ type: "path_dead", silentMs, reason });
    this.#probes = 0;
    this.#attempt = 0;
    this.#initiate(now, wallMs);
  }

  /**
   * The local network changed (address, route, interface): probe the path now. If the server
   * answers, nothing else happens (it already follows us to a new address); if not, the
   * liveness probes declare the path dead within a second and a new handshake starts.
   */
  nudge(now: number): void {
    if (!this.#current || this.#closed) return;
    if (this.#paths) return this.#probeAll(now);
    this.#lastDataSentMs = now;
    this.#ping(now);
    this.#probes = 1;
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
  }
}
