/**
 * A client and a server core wired through an in-memory link with a virtual clock (quinn's
 * `Pair`): handshakes, keepalives, rekeys and expiry run in milliseconds of real time.
 *
 * @module
 */
import { ClientCore } from "../../src/core/client.ts";
import { ServerCore, type ServerOptions } from "../../src/core/server.ts";
import { generatePrivateKey, publicKeyOf } from "../../src/core/keys.ts";
import { parseCidr, parseIPv4 } from "../../src/core/ip.ts";
import { type Endpoint, Verdict } from "../../src/core/result.ts";
import { createAead } from "../../src/crypto/aead.ts";
import { PacketBuf } from "../../src/core/packet.ts";
import { seededRandom } from "../../src/netns/prng.ts";

/** A datagram in flight. */
interface Flight {
  at: number;
  data: Uint8Array;
  toServer: boolean;
  from: Endpoint;
}

/** Seeded PRNG in [0, 1) so that impaired runs replay (the harness-wide one). */
export const seeded = seededRandom;

/** Link impairments. */
export interface LinkOptions {
  /** One-way delay (ms). */
  delayMs?: number;
  /** Loss probability 0..1. */
  loss?: number;
  /** Seed for loss. */
  seed?: number;
}

/** Two cores and a link. */
export class Pair {
  now = 1_000_000;
  wall = 1_800_000_000_000;
  readonly clientKey = generatePrivateKey();
  readonly serverKey = generatePrivateKey();
  server: ServerCore;
  client: ClientCore;
  /** Inner packets each side wrote to its TUN. */
  readonly clientTun: Uint8Array[] = [];
  readonly serverTun: Uint8Array[] = [];
  /** Every datagram sent on the wire, for replay tests. */
  readonly wire: Flight[] = [];
  /** When false, nothing is delivered (a dead path). */
  linkUp = true;
  clientEndpoint: Endpoint = { hostname: "192.0.2.10", port: 40000 };
  readonly serverEndpoint: Endpoint = { hostname: "192.0.2.1", port: 51820 };
  #inflight: Flight[] = [];
  #rnd: () => number;
  readonly #out = new Uint8Array(4096);
  readonly #tx = PacketBuf.alloc(4096);
  readonly aead = createAead("auto");

  constructor(readonly link: LinkOptions = {}, serverOverrides: Partial<ServerOptions> = {}) {
    this.#rnd = seeded(link.seed ?? 1);
    this.server = this.newServer(serverOverrides);
    this.client = new ClientCore({
      privateKey: this.clientKey,
      serverPublicKey: publicKeyOf(this.serverKey),
      aead: this.aead,
    });
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

  #send(data: Uint8Array, toServer: boolean, from: Endpoint) {
    const f = { at: this.now + (this.link.delayMs ?? 1), data, toServer, from };
    this.wire.push(f);
    if (!this.linkUp) return;
    if (this.link.loss && this.#rnd() < this.link.loss) return;
    this.#inflight.push(f);
  }

  /** Moves control-path output of both cores onto the link. */
  flush(): void {
    for (const d of this.client.outbox.splice(0)) this.#send(d, true, this.clientEndpoint);
    for (const o of this.server.outbox.splice(0)) this.#send(o.data, false, this.serverEndpoint);
  }

  /** Delivers one datagram to its side (also used to inject replays). */
  deliver(f: Pick<Flight, "data" | "toServer" | "from">): number {
    if (f.toServer) {
      const r = this.server.receive(this.now, new PacketBuf(f.data), f.from, this.#out);
      if (r.verdict === Verdict.Tun) this.serverTun.push(this.#out.slice(0, r.length));
      return r.verdict;
    }
    const r = this.client.receive(this.now, new PacketBuf(f.data), this.#out);
    if (r.verdict === Verdict.Tun) this.clientTun.push(this.#out.slice(0, r.length));
    return r.verdict;
  }

  /** Advances the virtual clock by `ms` in 1 ms steps, delivering and ticking. */
  run(ms: number): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.now += 1;
      this.wall += 1;
      this.client.tick(this.now, this.wall);
      if (this.now % 100 === 0) this.server.tick(this.now);
      this.flush();
      const due = this.#inflight.filter((f) => f.at <= this.now);
      this.#inflight = this.#inflight.filter((f) => f.at > this.now);
      for (const f of due) this.deliver(f);
      this.flush();
    }
  }

  /** Client sends an inner packet; returns false if the core dropped it. */
  clientSend(pkt: Uint8Array): boolean {
    const r = this.client.fromTun(this.now, pkt, pkt.length, this.#tx);
    if (r.verdict !== Verdict.Net) return false;
    this.#send(this.#tx.buf.slice(0, r.length), true, this.clientEndpoint);
    return true;
  }

  /** Server sends an inner packet (as read from its TUN). */
  serverSend(pkt: Uint8Array): boolean {
    const r = this.server.fromTun(this.now, pkt, pkt.length, this.#tx);
    if (r.verdict !== Verdict.Net) return false;
    this.#send(this.#tx.buf.slice(0, r.length), false, r.to!);
    return true;
  }
}
