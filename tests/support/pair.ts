/**
 * A client and a server core over in-memory links with a virtual clock (quinn's `Pair`):
 * handshakes, keepalives, rekeys and expiry run in milliseconds of real time. The client goes
 * through the runtime's {@link ClientAdapter}, so path choice (`via`) and extra destinations are
 * exercised exactly as the data loops see them; a single-path client has one link.
 *
 * Time does not tick: {@link Pair.run} jumps straight to the next thing that happens (a
 * datagram's arrival, or the earlier of the two cores' deadlines), as quinn's `Pair::step` /
 * `drive_bounded` do. Every time a core is woken by its own deadline (not by a datagram) counts
 * as a timer wake-up ({@link Pair.wakes}), so tests can hold the cores to a wake-up budget, and
 * a core that leaves a timer in the past after tick() fails the run at once instead of spinning.
 *
 * @module
 */
import { CLIENT_TIMER_NAMES, ClientCore, type ClientOptions } from "../../src/core/client.ts";
import { ServerCore, type ServerOptions } from "../../src/core/server.ts";
import { generatePrivateKey, publicKeyOf } from "../../src/core/keys.ts";
import { parseCidr, parseIPv4 } from "../../src/lib/ip.ts";
import { type PacketResult, Verdict } from "../../src/core/result.ts";
import { type Endpoint, sameEndpoint } from "../../src/lib/endpoint.ts";
import type { MultipathMode } from "../../src/core/paths.ts";
import { loadAead } from "../../src/crypto/aead.ts";
import { PacketBuf } from "../../src/core/packet.ts";
import { ClientAdapter } from "../../src/runtime/engine.ts";
import { deriveSeed, seededRandom } from "../lab/prng.ts";
import { FaultInjector, type Impairment } from "../lab/fault.ts";

const AEAD = await loadAead("auto");

/** Seeded PRNG in [0, 1) so that impaired runs replay (the harness-wide one). */
export const seeded = seededRandom;

/** One client path: its own endpoint (as the server sees it) and link state. */
export interface SimLink {
  /** The client's address on this path. */
  endpoint: Endpoint;
  /** False: everything on this path is lost, both ways. */
  up: boolean;
  /** Loss probability per datagram and direction. */
  loss: number;
  /** One-way delay (ms). */
  delayMs: number;
  /** More impairment both ways (reordering, duplication, jitter), by the lab's fault injector. */
  impair?: Impairment;
  /** True: only the way to the server is broken (what the client sends is lost). */
  upstreamDown?: boolean;
}

/** A datagram on the wire. */
export interface Flight {
  /** When it arrives. */
  at: number;
  data: Uint8Array;
  toServer: boolean;
  /** The client path it travels on. */
  path: number;
  /** Source address as the receiver sees it. */
  from: Endpoint;
  /** True when a link dropped it. */
  lost: boolean;
}

/** Link impairments of a single-path pair (all links of a multipath one, unless set there). */
export interface LinkOptions {
  /** One-way delay (ms). */
  delayMs?: number;
  /** Loss probability 0..1. */
  loss?: number;
  /** Seed for loss. */
  seed?: number;
  /** More impairment of every link both ways (see {@link SimLink.impair}). */
  impair?: Impairment;
  /** Multipath: one link per client path. Absent: a single-path client with one link. */
  paths?: Partial<SimLink>[];
  /** Multipath mode (with `paths`). */
  multipath?: MultipathMode;
  /** Extra client options. */
  client?: Partial<ClientOptions>;
}

/** Timer wake-ups of each core: how often it was woken by its own deadline. */
export interface WakeCounts {
  client: number;
  server: number;
  /** Client wake-ups by the timer that was due first. */
  clientByTimer: Record<string, number>;
  /** When each client wake-up happened (virtual ms). */
  clientTimes: number[];
}

/** The most wake-ups within any `windowMs` of `times` (sorted). */
export function busiestWindow(times: readonly number[], windowMs: number): number {
  let most = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while (times[i]! - times[j]! >= windowMs) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

/** Two cores and their links. */
export class Pair {
  now = 1_000_000;
  wall = 1_800_000_000_000;
  readonly clientKey = generatePrivateKey();
  readonly serverKey = generatePrivateKey();
  server: ServerCore;
  client: ClientCore;
  adapter: ClientAdapter;
  /** Inner packets each side wrote to its TUN. */
  readonly clientTun: Uint8Array[] = [];
  readonly serverTun: Uint8Array[] = [];
  /** Every datagram sent on the wire (also the lost ones), for replay tests. */
  readonly wire: Flight[] = [];
  readonly links: SimLink[];
  readonly serverEndpoint: Endpoint = { hostname: "192.0.2.1", port: 51820 };
  /** Timer wake-ups so far (see {@link resetWakes}). */
  wakes: WakeCounts = { client: 0, server: 0, clientByTimer: {}, clientTimes: [] };
  /** Steps taken by {@link run} (each one jump of the clock). */
  steps = 0;
  #inflight: Flight[] = [];
  /** Per link: the fault injectors towards the server and towards the client. */
  readonly #faults: { up: FaultInjector; down: FaultInjector; key: string }[] = [];
  readonly #seed: number;
  readonly #out = new Uint8Array(4096);
  readonly #tx = PacketBuf.alloc(4096);
  readonly aead = AEAD;

  constructor(readonly link: LinkOptions = {}, serverOverrides: Partial<ServerOptions> = {}) {
    this.#seed = link.seed ?? 1;
    const specs = link.paths ?? [{}];
    this.links = specs.map((l, i) => ({
      endpoint: { hostname: `192.0.2.${10 + i}`, port: 40000 + i },
      up: true,
      loss: link.loss ?? 0,
      delayMs: link.delayMs ?? 1,
      impair: link.impair,
      ...l,
    }));
    this.server = this.newServer(serverOverrides);
    this.client = new ClientCore({
      privateKey: this.clientKey,
      serverPublicKey: publicKeyOf(this.serverKey),
      aead: this.aead,
      ...(link.paths ? { paths: this.links.length, multipath: link.multipath } : {}),
      ...link.client,
    });
    this.adapter = new ClientAdapter(this.client, this.serverEndpoint);
  }

  /** A fresh server core with this pair's keys (also used to simulate a restart). */
  newServer(overrides: Partial<ServerOptions> = {}): ServerCore {
    return new ServerCore({
      privateKey: this.serverKey,
      clients: [{ name: "alice", publicKey: publicKeyOf(this.clientKey) }],
      pool: parseCidr("10.7.0.0/24")!,
      mtu: 1420,
      routes: [parseCidr("198.51.100.0/24")!],
      dns: [parseIPv4("10.7.0.1")!],
      keepaliveMs: 10_000,
      sessionTimeoutMs: 60_000,
      aead: this.aead,
      ...overrides,
    });
  }

  /** Single path: whether the link delivers anything. */
  get linkUp(): boolean {
    return this.links[0]!.up;
  }
  set linkUp(up: boolean) {
    this.links[0]!.up = up;
  }

  /** Single path: the client's address as the server sees it (change it to roam). */
  get clientEndpoint(): Endpoint {
    return this.links[0]!.endpoint;
  }
  set clientEndpoint(e: Endpoint) {
    this.links[0]!.endpoint = e;
  }

  /** The path whose client endpoint is `e`, or -1. */
  pathOf(e: Endpoint): number {
    return this.links.findIndex((l) => sameEndpoint(l.endpoint, e));
  }

  /** Link `path`'s injector for one direction, rebuilt when the link's settings change. */
  #fault(path: number, toServer: boolean): FaultInjector {
    const link = this.links[path]!;
    const key = JSON.stringify([link.loss, link.delayMs, link.impair]);
    let f = this.#faults[path];
    if (!f || f.key !== key) {
      const imp = { ...link.impair, lossPercent: link.loss * 100, delayMs: link.delayMs };
      f = {
        up: new FaultInjector(deriveSeed(this.#seed, 2 * path), imp),
        down: new FaultInjector(deriveSeed(this.#seed, 2 * path + 1), imp),
        key,
      };
      this.#faults[path] = f;
    }
    return toServer ? f.up : f.down;
  }

  #send(data: Uint8Array, toServer: boolean, path: number): void {
    const link = this.links[path];
    if (!link) return; // the server sent to an address that is no path of ours
    const from = toServer ? link.endpoint : this.serverEndpoint;
    const go = link.up && !(toServer && link.upstreamDown)
      ? this.#fault(path, toServer).push(data, this.now)
      : [];
    if (go.length === 0) {
      this.wire.push({ at: this.now + link.delayMs, data, toServer, path, from, lost: true });
    }
    for (const d of go) {
      const f = { at: d.at, data: d.data, toServer, path, from, lost: false };
      this.wire.push(f);
      this.#inflight.push(f);
    }
  }

  /** Held datagrams (reordering) whose hold ran out go on the wire. */
  #expireHeld(): void {
    this.#faults.forEach((f, path) => {
      for (const [inj, toServer] of [[f.up, true], [f.down, false]] as const) {
        for (const d of inj.expire(this.now)) {
          const link = this.links[path]!;
          const from = toServer ? link.endpoint : this.serverEndpoint;
          const fl = { at: d.at, data: d.data, toServer, path, from, lost: false };
          this.wire.push(fl);
          this.#inflight.push(fl);
        }
      }
    });
  }

  /** Sends a datagram the way a data loop does: to `r.to` and every `r.extra`. */
  #sendResult(r: PacketResult, bytes: Uint8Array, toServer: boolean): void {
    const pathOf = (e: Endpoint) => toServer ? e.via ?? 0 : this.pathOf(e);
    this.#send(bytes, toServer, pathOf(r.to!));
    for (let i = 0; i < r.extraCount; i++) this.#send(bytes, toServer, pathOf(r.extra![i]!));
  }

  /** Moves control-path output of both cores onto the links. */
  flush(): void {
    for (const o of this.adapter.takeOutbox()) this.#send(o.data, true, o.to.via ?? 0);
    for (const o of this.server.outbox.splice(0)) this.#send(o.data, false, this.pathOf(o.to));
  }

  /** Delivers one datagram to its side (also used to inject replays); returns the verdict. */
  deliver(f: Pick<Flight, "data" | "toServer" | "from">): number {
    if (f.toServer) {
      const r = this.server.receive(this.now, new PacketBuf(f.data), f.from, this.#out);
      if (r.verdict === Verdict.Tun) this.serverTun.push(this.#out.slice(0, r.length));
      return r.verdict;
    }
    const r = this.adapter.receive(this.now, new PacketBuf(f.data), this.serverEndpoint, this.#out);
    if (r.verdict === Verdict.Tun) this.clientTun.push(this.#out.slice(0, r.length));
    return r.verdict;
  }

  /** Starts counting wake-ups afresh. */
  resetWakes(): void {
    this.wakes = { client: 0, server: 0, clientByTimer: {}, clientTimes: [] };
  }

  /**
   * Advances the virtual clock by `ms`, jumping from one event to the next: datagrams arrive
   * when due, and a core whose deadline has come is ticked (a timer wake-up, counted). Throws
   * when a core leaves a deadline at or before `now` after its tick: that would be a busy loop.
   */
  run(ms: number): void {
    const end = this.now + ms;
    for (;;) {
      this.flush();
      this.#expireHeld();
      let next = Math.min(this.client.deadline(), this.server.deadline());
      for (const f of this.#inflight) if (f.at < next) next = f.at;
      for (const f of this.#faults) next = Math.min(next, f.up.deadline(), f.down.deadline());
      if (next > end) break;
      if (next > this.now) {
        this.wall += next - this.now;
        this.now = next;
      }
      this.steps++;
      const due = this.#inflight.filter((f) => f.at <= this.now);
      this.#inflight = this.#inflight.filter((f) => f.at > this.now);
      let gotClient = false, gotServer = false;
      for (const f of due) {
        this.deliver(f);
        if (f.toServer) gotServer = true;
        else gotClient = true;
      }
      this.flush();
      if (this.client.deadline() <= this.now) {
        if (!gotClient) {
          this.wakes.client++;
          this.wakes.clientTimes.push(this.now);
          const name = CLIENT_TIMER_NAMES[this.client.timers.nextId()] ?? "?";
          this.wakes.clientByTimer[name] = (this.wakes.clientByTimer[name] ?? 0) + 1;
        }
        this.adapter.tick(this.now, this.wall);
        const after = this.client.deadline();
        if (after <= this.now) {
          const name = CLIENT_TIMER_NAMES[this.client.timers.nextId()];
          throw new Error(`client left timer ${name} at ${after} <= now ${this.now} after tick()`);
        }
      }
      if (this.server.deadline() <= this.now) {
        if (!gotServer) this.wakes.server++;
        this.server.tick(this.now);
        const after = this.server.deadline();
        if (after <= this.now) throw new Error(`server left a timer at ${after} <= ${this.now}`);
      }
    }
    this.wall += end - this.now;
    this.now = end;
    this.flush();
  }

  /** Client sends an inner packet through the adapter; false if the core dropped it. */
  clientSend(pkt: Uint8Array): boolean {
    const r = this.adapter.fromTun(this.now, pkt, pkt.length, this.#tx);
    if (r.verdict !== Verdict.Net) return false;
    this.#sendResult(r, this.#tx.buf.slice(0, r.length), true);
    return true;
  }

  /** Server sends an inner packet (as read from its TUN). */
  serverSend(pkt: Uint8Array): boolean {
    const r = this.server.fromTun(this.now, pkt, pkt.length, this.#tx);
    if (r.verdict !== Verdict.Net) return false;
    this.#sendResult(r, this.#tx.buf.slice(0, r.length), false);
    return true;
  }

  /** The path the server's session points at (-1: none of ours). */
  pathOfSession(): number {
    return this.pathOf(this.session.endpoint);
  }

  /** The one server session. */
  get session() {
    const [s] = [...this.server.sessions()];
    if (!s) throw new Error("no session");
    return s;
  }
}

/** A multipath pair: `links.length` client paths in `mode`. */
export class MultiPair extends Pair {
  constructor(mode: MultipathMode, links: Partial<SimLink>[], seed = 1) {
    super({ paths: links, multipath: mode, seed });
  }
}
