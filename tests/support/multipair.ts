/**
 * A multipath client and a server core over several in-memory links (one per client path) with a
 * virtual clock, like {@link Pair} but through the runtime's {@link ClientAdapter}, so that path
 * choice (`via`) and extra destinations are exercised exactly as the data loops see them.
 *
 * @module
 */
import { ClientCore } from "../../src/core/client.ts";
import { ServerCore } from "../../src/core/server.ts";
import { generatePrivateKey, publicKeyOf } from "../../src/core/keys.ts";
import { parseCidr, parseIPv4 } from "../../src/core/ip.ts";
import { type Endpoint, type PacketResult, sameEndpoint, Verdict } from "../../src/core/result.ts";
import type { MultipathMode } from "../../src/core/paths.ts";
import { createAead } from "../../src/crypto/aead.ts";
import { PacketBuf } from "../../src/core/packet.ts";
import { ClientAdapter } from "../../src/runtime/engine.ts";
import { seeded } from "./pair.ts";

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
}

/** A datagram on the wire. */
export interface Flight {
  at: number;
  data: Uint8Array;
  toServer: boolean;
  path: number;
  /** True when a link dropped it. */
  lost: boolean;
}

/** Client with `links.length` paths, server, and the links. */
export class MultiPair {
  now = 1_000_000;
  wall = 1_800_000_000_000;
  readonly clientKey = generatePrivateKey();
  readonly serverKey = generatePrivateKey();
  readonly server: ServerCore;
  readonly client: ClientCore;
  readonly adapter: ClientAdapter;
  readonly serverEndpoint: Endpoint = { hostname: "192.0.2.1", port: 51820 };
  /** Inner packets each side wrote to its TUN. */
  readonly clientTun: Uint8Array[] = [];
  readonly serverTun: Uint8Array[] = [];
  /** Every datagram sent, with its path. */
  readonly wire: Flight[] = [];
  readonly links: SimLink[];
  #inflight: Flight[] = [];
  readonly #rnd: () => number;
  readonly #out = new Uint8Array(4096);
  readonly #tx = PacketBuf.alloc(4096);
  readonly aead = createAead("auto");

  constructor(mode: MultipathMode, links: Partial<SimLink>[], seed = 1) {
    this.#rnd = seeded(seed);
    this.links = links.map((l, i) => ({
      endpoint: { hostname: `192.0.2.${10 + i}`, port: 40000 + i },
      up: true,
      loss: 0,
      delayMs: 1,
      ...l,
    }));
    this.server = new ServerCore({
      privateKey: this.serverKey,
      clients: [{ name: "alice", publicKey: publicKeyOf(this.clientKey) }],
      pool: parseCidr("10.7.0.0/24")!,
      mtu: 1420,
      routes: [],
      dns: [parseIPv4("10.7.0.1")!],
      keepaliveMs: 10_000,
      sessionTimeoutMs: 60_000,
      aead: this.aead,
    });
    this.client = new ClientCore({
      privateKey: this.clientKey,
      serverPublicKey: publicKeyOf(this.serverKey),
      aead: this.aead,
      paths: this.links.length,
      multipath: mode,
    });
    this.adapter = new ClientAdapter(this.client, this.serverEndpoint);
  }

  /** The path whose client endpoint is `e`, or -1. */
  pathOf(e: Endpoint): number {
    return this.links.findIndex((l) => sameEndpoint(l.endpoint, e));
  }

  #send(data: Uint8Array, toServer: boolean, path: number): void {
    const link = this.links[path];
    if (!link) return; // the server sent to an address that is no path of ours
    const lost = !link.up || (link.loss > 0 && this.#rnd() < link.loss);
    const f = { at: this.now + link.delayMs, data, toServer, path, lost };
    this.wire.push(f);
    if (!lost) this.#inflight.push(f);
  }

  /** Sends a datagram the way a data loop does: to `r.to` and every `r.extra`. */
  #sendResult(r: PacketResult, bytes: Uint8Array, toServer: boolean): void {
    const pathOf = (e: Endpoint) => toServer ? e.via ?? 0 : this.pathOf(e);
    this.#send(bytes, toServer, pathOf(r.to!));
    for (let i = 0; i < r.extraCount; i++) this.#send(bytes, toServer, pathOf(r.extra![i]!));
  }

  /** Moves control-path output of both sides onto the links. */
  flush(): void {
    for (const o of this.adapter.takeOutbox()) this.#send(o.data, true, o.to.via ?? 0);
    for (const o of this.server.outbox.splice(0)) this.#send(o.data, false, this.pathOf(o.to));
  }

  /** Delivers one datagram to its side. */
  deliver(f: Flight): void {
    if (f.toServer) {
      const from = this.links[f.path]!.endpoint;
      const r = this.server.receive(this.now, new PacketBuf(f.data), from, this.#out);
      if (r.verdict === Verdict.Tun) this.serverTun.push(this.#out.slice(0, r.length));
      return;
    }
    const d = new PacketBuf(f.data);
    const r = this.adapter.receive(this.now, d, this.serverEndpoint, this.#out);
    if (r.verdict === Verdict.Tun) this.clientTun.push(this.#out.slice(0, r.length));
  }

  /** Advances the virtual clock by `ms` in 1 ms steps, delivering and ticking. */
  run(ms: number): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.now += 1;
      this.wall += 1;
      this.adapter.tick(this.now, this.wall);
      if (this.now % 100 === 0) this.server.tick(this.now);
      this.flush();
      const due = this.#inflight.filter((f) => f.at <= this.now);
      this.#inflight = this.#inflight.filter((f) => f.at > this.now);
      for (const f of due) this.deliver(f);
      this.flush();
    }
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
