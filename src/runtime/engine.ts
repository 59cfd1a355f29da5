/**
 * One shape for both protocol cores, so that the packet loops (portable and fast) are written
 * once: the server and client cores differ in who a datagram may come from and where a sealed
 * packet goes, and these adapters absorb exactly that.
 *
 * @module
 */
import type { ClientCore, ClientEvent, ClientStatus } from "../core/client.ts";
import type { FollowAddress } from "../core/follow.ts";
import type { PacketBuf } from "../core/packet.ts";
import { type Outgoing, PacketResult, Verdict } from "../core/result.ts";

export type { Outgoing };
import { type Endpoint, sameEndpoint } from "../lib/endpoint.ts";
import type { ServerCore, ServerEvent, ServerStatus } from "../core/server.ts";
import { MAX_REDUNDANT_ENDPOINTS } from "../core/timers.ts";
import type { DropCounters } from "../core/wire.ts";

/** An event of either core. */
export type CoreEvent = ServerEvent | ClientEvent;

/** What a packet loop needs from a core. */
export interface CoreAdapter {
  /** Handles a datagram from `from` (`outerEcn`: the ECN field of its IP header, for RFC 6040
   * decapsulation); see ServerCore.receive. */
  receive(
    now: number,
    d: PacketBuf,
    from: Endpoint,
    out: Uint8Array,
    outerEcn?: number,
  ): PacketResult;
  /** Routes and seals a TUN packet at once (unqueued). A Net verdict always carries `to`, and
   * `extra[0..extraCount)` are further destinations for the same bytes (redundant multipath). */
  fromTun(now: number, pkt: Uint8Array, len: number, out: PacketBuf): PacketResult;
  /** The queue key a TUN packet waits under (a session's), or -1 when it goes nowhere
   * (counted). */
  route(pkt: Uint8Array, len: number): number;
  /** Seals a packet that waited under `key` (as fromTun, with header `flags`). */
  seal(
    now: number,
    key: number,
    pkt: Uint8Array,
    len: number,
    out: PacketBuf,
    flags: number,
  ): PacketResult;
  /** True while queue key `key` still has a session (a queue whose session went is dropped). */
  hasKey(key: number): boolean;
  /** Runs the expired timers; returns the next deadline (monotonic ms), as {@link deadline}. */
  tick(now: number, wallMs: number): number;
  /**
   * The next deadline of the core's timer table (monotonic ms; Infinity when none). Handling a
   * packet can set a timer (a send arms the client's liveness probe), so a loop asks again after
   * every batch instead of trusting what tick() last returned.
   */
  deadline(): number;
  /** Takes the queued control-path datagrams. */
  takeOutbox(): Outgoing[];
  /** Takes the queued events. */
  takeEvents(): CoreEvent[];
  /** True when there is control-path output waiting. */
  readonly pending: boolean;
  /** Says goodbye to the peer(s) (queued in the outbox). */
  stop(): void;
  /** Drop counters. */
  readonly drops: DropCounters;
  /** The core's figures for `xvpn status` (plain data). */
  status(now: number): ClientStatus | ServerStatus;
  /** The local network changed: probe the path now (client only). */
  nudge?(now: number): void;
  /** Domain following (client only): the held answer `id`, for the TUN. */
  release?(id: number, forget?: readonly FollowAddress[]): Uint8Array | undefined;
  /** Where sealed packets go now (client only: a server that moved or was re-resolved). */
  setServer?(server: Endpoint): void;
  /** Most extra destinations one sealed packet can have (sizes the loops' send batches). */
  readonly maxExtra: number;
}

/** Adapts a {@link ServerCore}. */
export class ServerAdapter implements CoreAdapter {
  /** A redundant session's other recent endpoints. */
  readonly maxExtra = MAX_REDUNDANT_ENDPOINTS - 1;
  constructor(readonly core: ServerCore) {}
  receive(
    now: number,
    d: PacketBuf,
    from: Endpoint,
    out: Uint8Array,
    outerEcn = 0,
  ): PacketResult {
    return this.core.receive(now, d, from, out, outerEcn);
  }
  fromTun(now: number, pkt: Uint8Array, len: number, out: PacketBuf): PacketResult {
    return this.core.fromTun(now, pkt, len, out);
  }
  route(pkt: Uint8Array, len: number): number {
    return this.core.route(pkt, len);
  }
  seal(
    now: number,
    key: number,
    pkt: Uint8Array,
    len: number,
    out: PacketBuf,
    flags: number,
  ): PacketResult {
    return this.core.seal(now, key, pkt, len, out, flags);
  }
  hasKey(key: number): boolean {
    return this.core.hasSession(key);
  }
  tick(now: number): number {
    return this.core.tick(now);
  }
  deadline(): number {
    return this.core.deadline();
  }
  takeOutbox(): Outgoing[] {
    return this.core.outbox.splice(0);
  }
  takeEvents(): CoreEvent[] {
    return this.core.events.splice(0);
  }
  get pending(): boolean {
    return this.core.outbox.length > 0 || this.core.events.length > 0;
  }
  stop(): void {
    this.core.shutdown();
  }
  get drops(): DropCounters {
    return this.core.drops;
  }
  status(now: number): ServerStatus {
    return this.core.status(now);
  }
}

/**
 * Adapts a {@link ClientCore} talking to `server`; datagrams from anyone else are ignored. With
 * multipath, destinations carry the path index in `via` (the server as seen from each path), and
 * a sealed packet goes to every path of the core's route (`extra` beyond the first).
 */
export class ClientAdapter implements CoreAdapter {
  /** Datagrams from addresses other than the server's. */
  strangers = 0;
  /** Every other path, at most. */
  readonly maxExtra: number;
  readonly #ignored = new PacketResult();
  /** Multipath: the server once per path (`via` set), the route's first one, the others. */
  #dests: Endpoint[] = [];
  #primary: Endpoint;
  readonly #extra: Endpoint[] = [];
  #extraCount = 0;
  #routeVersion = -1;

  constructor(readonly core: ClientCore, public server: Endpoint) {
    this.#ignored.verdict = Verdict.None;
    this.maxExtra = Math.max(0, (core.paths?.count ?? 1) - 1);
    this.#primary = server;
    this.#setDests();
  }
  nudge(now: number): void {
    this.core.nudge(now);
  }
  setServer(server: Endpoint): void {
    this.server = server;
    this.#setDests();
  }
  #setDests(): void {
    const n = this.core.paths?.count ?? 0;
    // Spread keeps any extra fields of the runtime's endpoint (the fast loop's numeric ip).
    this.#dests = Array.from({ length: n }, (_, via) => ({ ...this.server, via }));
    this.#routeVersion = -1;
  }
  /** Recomputes the data destinations after the core's route changed (not per packet). */
  #route(route: readonly number[], version: number): void {
    this.#primary = this.#dests[route[0]!]!;
    this.#extraCount = route.length - 1;
    for (let k = 1; k < route.length; k++) this.#extra[k - 1] = this.#dests[route[k]!]!;
    this.#routeVersion = version;
  }
  receive(
    now: number,
    d: PacketBuf,
    from: Endpoint,
    out: Uint8Array,
    outerEcn = 0,
  ): PacketResult {
    if (from !== this.server && !sameEndpoint(from, this.server)) {
      this.strangers++;
      this.core.drops.stranger++;
      return this.#ignored;
    }
    return this.core.receive(now, d, out, outerEcn);
  }
  route(pkt: Uint8Array, len: number): number {
    return this.core.route(pkt, len);
  }
  hasKey(key: number): boolean {
    return key === 0;
  }
  fromTun(now: number, pkt: Uint8Array, len: number, out: PacketBuf): PacketResult {
    return this.seal(now, 0, pkt, len, out, 0);
  }
  seal(
    now: number,
    _key: number,
    pkt: Uint8Array,
    len: number,
    out: PacketBuf,
    flags: number,
  ): PacketResult {
    const r = this.core.seal(now, pkt, len, out, flags);
    const ps = this.core.paths;
    if (!ps) {
      r.to = this.server;
      return r;
    }
    if (ps.routeVersion !== this.#routeVersion) this.#route(ps.route, ps.routeVersion);
    r.to = this.#primary;
    r.extra = this.#extra;
    r.extraCount = this.#extraCount;
    return r;
  }
  tick(now: number, wallMs: number): number {
    return this.core.tick(now, wallMs);
  }
  deadline(): number {
    return this.core.deadline();
  }
  takeOutbox(): Outgoing[] {
    const datagrams = this.core.outbox.splice(0);
    if (!this.core.paths) return datagrams.map((data) => ({ data, to: this.server }));
    const out: Outgoing[] = [];
    const paths = this.core.sendPaths();
    for (const data of datagrams) for (const p of paths) out.push({ data, to: this.#dests[p]! });
    for (const d of this.core.pathOutbox.splice(0)) {
      out.push({ data: d.data, to: this.#dests[d.path]! });
    }
    return out;
  }
  takeEvents(): CoreEvent[] {
    return this.core.events.splice(0);
  }
  get pending(): boolean {
    return this.core.outbox.length > 0 || this.core.pathOutbox.length > 0 ||
      this.core.events.length > 0;
  }
  stop(): void {
    this.core.close();
  }
  status(now: number): ClientStatus {
    return this.core.status(now);
  }
  release(id: number, forget?: readonly FollowAddress[]): Uint8Array | undefined {
    return this.core.release(id, forget);
  }
  get drops(): DropCounters {
    return this.core.drops;
  }
}
