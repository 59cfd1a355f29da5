/**
 * In-memory twins of the batch UDP socket (wireguard-go's `conn/bindtest`): sockets on a
 * {@link UdpChannel}, a tiny switch that delivers each datagram to the socket bound to its
 * destination. A `fault` hook on the channel sees every datagram and decides how many copies
 * arrive (0 for loss, 2 for duplication); the test lab's fault injector plugs in there.
 *
 * @module
 */
import { formatIPv4, parseIPv4 } from "../../lib/ip.ts";
import { type BatchUdp, type LocalAddress, NO_LOCAL, type SocketMemory } from "./batch.ts";

/** What the channel does with one datagram: the copies to deliver (each owned bytes). */
export type UdpFault = (datagram: Uint8Array, from: string, to: string) => Uint8Array[];

/** A switch between fake sockets, keyed by `ip:port`. */
export class UdpChannel {
  /** Hook deciding each datagram's fate (default: delivered once). */
  fault: UdpFault | undefined;
  /** Hook rewriting the TOS byte on the way (a router that marks CE, or bleaches DSCP). */
  remark: ((tos: number) => number) | undefined;
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
  route(
    data: Uint8Array,
    fromIp: number,
    fromPort: number,
    toIp: number,
    toPort: number,
    tos = 0,
  ): void {
    this.sent++;
    const from = `${formatIPv4(fromIp)}:${fromPort}`;
    const to = `${formatIPv4(toIp)}:${toPort}`;
    const copies = this.fault ? this.fault(data, from, to) : [data];
    const dst = this.#sockets.get(to);
    if (!dst) return;
    const t = this.remark ? this.remark(tos) : tos;
    for (const c of copies) {
      this.delivered++;
      dst.enqueue(c, fromIp, fromPort, t);
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
  /** The twin speaks IPv4 only (IPv6 and PKTINFO are tested on real sockets). */
  readonly family = 4;
  readonly rxV6: Uint8Array;
  readonly rxIp6: Uint8Array;
  readonly rxLocal: Uint8Array;
  readonly txV6: Uint8Array;
  readonly txIp6: Uint8Array;
  readonly txLocal: Uint8Array;
  readonly locals: readonly LocalAddress[] = [NO_LOCAL];
  readonly rxLen: Int32Array;
  readonly rxIp: Uint32Array;
  readonly rxPort: Uint16Array;
  readonly txLen: Int32Array;
  readonly txIp: Uint32Array;
  readonly txPort: Uint16Array;
  readonly rxTos: Uint8Array;
  readonly txTos: Uint8Array;
  /** Every TOS byte sent, in order (tests look at DSCP marks). */
  readonly sentTos: number[] = [];
  /** When set, send() accepts at most this many datagrams per call (backpressure tests). */
  sendLimit: number | undefined;
  /**
   * A link rate on this socket's sends (a slow uplink): send() takes datagrams while the token
   * bucket has their bytes, and the socket is writable again when it has a datagram's worth.
   */
  throttle: { bytesPerMs: number; burstBytes: number; now: () => number } | undefined;
  #tokens = 0;
  #tokensAt = -1;
  /** The receive limit memory() reports; over it (x1.5 bytes), datagrams are dropped and counted,
   * as a full kernel receive queue would. */
  rxLimitBytes = 1 << 20;
  /** Datagrams dropped for a full receive queue. */
  rxDrops = 0;
  readonly #queue: { data: Uint8Array; ip: number; port: number; tos: number }[] = [];
  #queuedBytes = 0;
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
    this.rxTos = new Uint8Array(rxSlots.length);
    this.txTos = new Uint8Array(txSlots.length);
    this.rxV6 = new Uint8Array(rxSlots.length);
    this.rxIp6 = new Uint8Array(16 * rxSlots.length);
    this.rxLocal = new Uint8Array(rxSlots.length);
    this.txV6 = new Uint8Array(txSlots.length);
    this.txIp6 = new Uint8Array(16 * txSlots.length);
    this.txLocal = new Uint8Array(txSlots.length);
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
  enqueue(data: Uint8Array, ip: number, port: number, tos = 0): void {
    if (this.#closed) return;
    if ((this.#queuedBytes + data.length) * 1.5 > this.rxLimitBytes) {
      this.rxDrops++;
      return;
    }
    this.#queuedBytes += data.length;
    this.#queue.push({ data, ip, port, tos });
  }

  recv(): number {
    if (this.#closed) throw new Error(`recv() on closed fake UDP ${this.localHost}`);
    let n = 0;
    while (n < this.rxSlots.length && this.#queue.length > 0) {
      const d = this.#queue.shift()!;
      this.#queuedBytes -= d.data.length;
      const slot = this.rxSlots[n]!;
      if (d.data.length > slot.length) {
        this.rxLen[n] = -1; // truncated, as MSG_TRUNC
      } else {
        slot.set(d.data);
        this.rxLen[n] = d.data.length;
      }
      this.rxIp[n] = d.ip;
      this.rxPort[n] = d.port;
      this.rxTos[n] = d.tos;
      n++;
    }
    return n;
  }

  /** Refills the throttle's bucket up to now. */
  #refill(): void {
    const t = this.throttle;
    if (!t) return;
    const now = t.now();
    if (this.#tokensAt < 0) this.#tokens = t.burstBytes;
    else {this.#tokens = Math.min(
        t.burstBytes,
        this.#tokens + (now - this.#tokensAt) * t.bytesPerMs,
      );}
    this.#tokensAt = now;
  }

  /** True when a send would take at least one datagram (for a fake poller's POLLOUT). */
  writable(): boolean {
    if (!this.throttle) return true;
    this.#refill();
    return this.#tokens >= 1500;
  }

  /** When a throttled socket can take a full-size datagram again (virtual ms); 0 unthrottled. */
  writableAt(): number {
    const t = this.throttle;
    if (!t) return 0;
    this.#refill();
    if (this.#tokens >= 1500) return t.now();
    // At least a microsecond ahead: float rounding must not put it at now while not writable.
    return t.now() + Math.max(0.001, (1500 - this.#tokens) / t.bytesPerMs);
  }

  send(count: number, first = 0): number {
    if (this.#closed) throw new Error(`send() on closed fake UDP ${this.localHost}`);
    let n = this.sendLimit === undefined ? count : Math.min(count, this.sendLimit);
    if (this.throttle) {
      this.#refill();
      let k = 0;
      while (k < n && this.#tokens >= this.txLen[first + k]!) {
        this.#tokens -= this.txLen[first + k++]!;
      }
      n = k;
    }
    for (let j = first; j < first + n; j++) {
      const bytes = this.txSlots[j]!.slice(0, this.txLen[j]!);
      this.sentTos.push(this.txTos[j]!);
      this.channel.route(
        bytes,
        this.#ip,
        this.localPort,
        this.txIp[j]!,
        this.txPort[j]!,
        this.txTos[j]!,
      );
    }
    return n;
  }

  /** Most datagrams per GSO send (the fake does no GSO; kept for the interface). */
  gsoSegments = 64;
  /** The send buffer asked for (the fake does not limit by it). */
  sendBuffer = 1 << 17;

  /** Records the size asked for; returns it doubled, as Linux does. */
  setSendBuffer(bytes: number): number {
    this.sendBuffer = 2 * bytes;
    return this.sendBuffer;
  }

  /** Queued bytes as the kernel would count them (datagram bytes x 1.5), limit `rxLimitBytes`. */
  memory(out: SocketMemory): boolean {
    out.rxQueued = Math.round(this.#queuedBytes * 1.5);
    out.rxLimit = this.rxLimitBytes;
    out.txQueued = 0;
    out.txLimit = 1 << 20;
    out.rxDrops = this.rxDrops;
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
    this.channel.forget(this);
  }
}
