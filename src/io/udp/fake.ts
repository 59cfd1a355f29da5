/**
 * In-memory twins of the batch UDP socket (wireguard-go's `conn/bindtest`): sockets on a
 * {@link UdpChannel}, a tiny switch that delivers each datagram to the socket bound to its
 * destination. A `fault` hook on the channel sees every datagram and decides how many copies
 * arrive (0 for loss, 2 for duplication); the test lab's fault injector plugs in there.
 *
 * @module
 */
import { formatIPv4, parseIPv4 } from "../../lib/ip.ts";
import type { BatchUdp } from "./batch.ts";

/** What the channel does with one datagram: the copies to deliver (each owned bytes). */
export type UdpFault = (datagram: Uint8Array, from: string, to: string) => Uint8Array[];

/** A switch between fake sockets, keyed by `ip:port`. */
export class UdpChannel {
  /** Hook deciding each datagram's fate (default: delivered once). */
  fault: UdpFault | undefined;
  /** Datagrams sent (including the dropped ones) and delivered. */
  sent = 0;
  delivered = 0;
  readonly #sockets = new Map<string, ChannelUdp>();

  /** Opens a socket bound to `host:port` with the given slots. */
  open(host: string, port: number, rxSlots: Uint8Array[], txSlots: Uint8Array[]): ChannelUdp {
    const key = `${host}:${port}`;
    if (this.#sockets.has(key)) throw new Error(`fake UDP ${key}: address in use`);
    const s = new ChannelUdp(this, host, port, rxSlots, txSlots);
    this.#sockets.set(key, s);
    return s;
  }

  /** @internal Moves a datagram to its destination's queue (through the fault hook). */
  route(data: Uint8Array, fromIp: number, fromPort: number, toIp: number, toPort: number): void {
    this.sent++;
    const from = `${formatIPv4(fromIp)}:${fromPort}`;
    const to = `${formatIPv4(toIp)}:${toPort}`;
    const copies = this.fault ? this.fault(data, from, to) : [data];
    const dst = this.#sockets.get(to);
    if (!dst) return;
    for (const c of copies) {
      this.delivered++;
      dst.enqueue(c, fromIp, fromPort);
    }
  }

  /** @internal */
  forget(s: ChannelUdp): void {
    this.#sockets.delete(`${s.localHost}:${s.localPort}`);
  }
}

/** A fake batch socket on a {@link UdpChannel}. */
export class ChannelUdp implements BatchUdp {
  readonly gsoEnabled = false;
  readonly rxLen: Int32Array;
  readonly rxIp: Uint32Array;
  readonly rxPort: Uint16Array;
  readonly txLen: Int32Array;
  readonly txIp: Uint32Array;
  readonly txPort: Uint16Array;
  /** When set, send() accepts at most this many datagrams per call (backpressure tests). */
  sendLimit: number | undefined;
  readonly #queue: { data: Uint8Array; ip: number; port: number }[] = [];
  readonly #ip: number;
  #closed = false;

  /** @internal Use {@link UdpChannel.open}. */
  constructor(
    readonly channel: UdpChannel,
    readonly localHost: string,
    readonly localPort: number,
    readonly rxSlots: Uint8Array[],
    readonly txSlots: Uint8Array[],
  ) {
    const ip = parseIPv4(localHost);
    if (ip === undefined) throw new TypeError(`fake UDP: "${localHost}" is not an IPv4 address`);
    this.#ip = ip;
    this.rxLen = new Int32Array(rxSlots.length);
    this.rxIp = new Uint32Array(rxSlots.length);
    this.rxPort = new Uint16Array(rxSlots.length);
    this.txLen = new Int32Array(txSlots.length);
    this.txIp = new Uint32Array(txSlots.length);
    this.txPort = new Uint16Array(txSlots.length);
  }

  get fd(): number {
    return -1;
  }

  /** Datagrams waiting to be received. */
  get pending(): number {
    return this.#queue.length;
  }

  /** True when a receive would return something (for a fake poller). */
  readable(): boolean {
    return this.#queue.length > 0;
  }

  /** @internal */
  enqueue(data: Uint8Array, ip: number, port: number): void {
    if (!this.#closed) this.#queue.push({ data, ip, port });
  }

  recv(): number {
    if (this.#closed) throw new Error(`recv() on closed fake UDP ${this.localHost}`);
    let n = 0;
    while (n < this.rxSlots.length && this.#queue.length > 0) {
      const d = this.#queue.shift()!;
      const slot = this.rxSlots[n]!;
      if (d.data.length > slot.length) {
        this.rxLen[n] = -1; // truncated, as MSG_TRUNC
      } else {
        slot.set(d.data);
        this.rxLen[n] = d.data.length;
      }
      this.rxIp[n] = d.ip;
      this.rxPort[n] = d.port;
      n++;
    }
    return n;
  }

  send(count: number, first = 0): number {
    if (this.#closed) throw new Error(`send() on closed fake UDP ${this.localHost}`);
    const n = this.sendLimit === undefined ? count : Math.min(count, this.sendLimit);
    for (let j = first; j < first + n; j++) {
      const bytes = this.txSlots[j]!.slice(0, this.txLen[j]!);
      this.channel.route(bytes, this.#ip, this.localPort, this.txIp[j]!, this.txPort[j]!);
    }
    return n;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.channel.forget(this);
  }
}
