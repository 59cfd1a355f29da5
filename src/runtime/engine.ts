/**
 * One shape for both protocol cores, so that the packet loops (portable and fast) are written
 * once: the server and client cores differ in who a datagram may come from and where a sealed
 * packet goes, and these adapters absorb exactly that.
 *
 * @module
 */
import type { ClientCore, ClientEvent } from "../core/client.ts";
import type { PacketBuf } from "../core/packet.ts";
import { type Endpoint, PacketResult, sameEndpoint, Verdict } from "../core/result.ts";
import type { ServerCore, ServerEvent } from "../core/server.ts";
import type { DropCounters } from "../core/wire.ts";

/** An event of either core. */
export type CoreEvent = ServerEvent | ClientEvent;

/** A control-path datagram with its destination. */
export interface Outgoing {
  /** Bytes to send. */
  data: Uint8Array;
  /** Destination. */
  to: Endpoint;
}

/** What a packet loop needs from a core. */
export interface CoreAdapter {
  /** Handles a datagram from `from`; see ServerCore.receive. */
  receive(now: number, d: PacketBuf, from: Endpoint, out: Uint8Array): PacketResult;
  /** Seals a TUN packet; a Net verdict always carries `to`. */
  fromTun(now: number, pkt: Uint8Array, len: number, out: PacketBuf): PacketResult;
  /** Runs timers; returns the next deadline (monotonic ms). */
  tick(now: number, wallMs: number): number;
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
  /** The local network changed: probe the path now (client only). */
  nudge?(now: number): void;
  /** Where sealed packets go now (client only: a server that moved or was re-resolved). */
  setServer?(server: Endpoint): void;
}

/** Adapts a {@link ServerCore}. */
export class ServerAdapter implements CoreAdapter {
  constructor(readonly core: ServerCore) {}
  receive(now: number, d: PacketBuf, from: Endpoint, out: Uint8Array): PacketResult {
    return this.core.receive(now, d, from, out);
  }
  fromTun(now: number, pkt: Uint8Array, len: number, out: PacketBuf): PacketResult {
    return this.core.fromTun(now, pkt, len, out);
  }
  tick(now: number): number {
    return this.core.tick(now);
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
}

/** Adapts a {@link ClientCore} talking to `server`; datagrams from anyone else are ignored. */
export class ClientAdapter implements CoreAdapter {
  /** Datagrams from addresses other than the server's. */
  strangers = 0;
  readonly #ignored = new PacketResult();

  constructor(readonly core: ClientCore, public server: Endpoint) {
    this.#ignored.verdict = Verdict.None;
  }
  nudge(now: number): void {
    this.core.nudge(now);
  }
  setServer(server: Endpoint): void {
    this.server = server;
  }
  receive(now: number, d: PacketBuf, from: Endpoint, out: Uint8Array): PacketResult {
    if (from !== this.server && !sameEndpoint(from, this.server)) {
      this.strangers++;
      this.core.drops.stranger++;
      return this.#ignored;
    }
    return this.core.receive(now, d, out);
  }
  fromTun(now: number, pkt: Uint8Array, len: number, out: PacketBuf): PacketResult {
    const r = this.core.fromTun(now, pkt, len, out);
    r.to = this.server;
    return r;
  }
  tick(now: number, wallMs: number): number {
    return this.core.tick(now, wallMs);
  }
  takeOutbox(): Outgoing[] {
    return this.core.outbox.splice(0).map((data) => ({ data, to: this.server }));
  }
  takeEvents(): CoreEvent[] {
    return this.core.events.splice(0);
  }
  get pending(): boolean {
    return this.core.outbox.length > 0 || this.core.events.length > 0;
  }
  stop(): void {
    this.core.close();
  }
  get drops(): DropCounters {
    return this.core.drops;
  }
}
