/**
 * The fast data path's event loop, run inside the data-plane Worker. It owns the non-blocking
 * TUN and UDP fds and blocks in one synchronous poll() on [TUN, UDP, wake eventfd], with the
 * core's next deadline as the timeout. No awaits, no thread hops: a packet that arrives is
 * handled on this thread as soon as the kernel wakes it.
 *
 * One turn of the loop:
 *   1. poll() until a fd is readable or the next timer is due;
 *   2. network -> TUN: recvmmsg a batch into the receive slots; for each datagram the core
 *      opens it into the TUN buffer, which is written at once (one owner, no queue);
 *   3. TUN -> network: read packets one by one, each sealed straight into its own send slot;
 *      one sendmmsg (GSO-merged where possible) sends the batch;
 *   4. timers and control-path output (handshakes, pongs, config) when due.
 * Both directions get a bounded number of batches per turn, so neither starves the other and
 * no queue builds up inside xvpn: under overload the kernel's socket and TUN queues hold the
 * backlog (and drop), which keeps added latency at one batch.
 *
 * Multipath clients have one UDP socket per path, all in the same poll(); a sealed packet is
 * sent on the socket its destination names (`via`), and copied into the send slots of every
 * further destination (redundant mode; the server's redundant sessions likewise copy it for each
 * recent client endpoint). With one socket and one destination, which is every single-path
 * tunnel, none of this runs: the per-packet cost is one comparison.
 *
 * @module
 */
import { PacketBuf } from "../../core/packet.ts";
import { formatIPv4, parseIPv4 } from "../../lib/ip.ts";
import { Verdict } from "../../core/result.ts";
import { type Endpoint } from "../../lib/endpoint.ts";
import { type Libc, POLLIN } from "../../io/_libc.ts";
import type { TunDevice } from "../../io/tun/device.ts";
import type { LinuxUdpSocket } from "../../io/udp/linux.ts";
import type { CoreAdapter, CoreEvent, Outgoing } from "../engine.ts";
import { writeTun } from "../tunwrite.ts";
import { TcpCoalescer, VNET_HDR_BYTES } from "../../core/gro.ts";
import { ReadKind, TsoSplitter } from "../../core/tso.ts";

/** #readTun(): the read was a TCP super-packet, now in #tso. */
const SEGMENTS = -2;
import { CTRL_COMMAND, CTRL_STOP } from "./messages.ts";

/** Batches per direction per loop turn before the other direction gets a go. */
const BATCHES_PER_TURN = 4;
/** Longest poll() sleep even with no timer due (ms), so a missed wake costs little. */
const MAX_SLEEP_MS = 1000;
/** Endpoints cached for the server's receive path (a flood of sources just recycles it). */
const MAX_ENDPOINTS = 4096;

/** An endpoint with its IPv4 address as a number, as the send path needs it. */
interface NumEndpoint extends Endpoint {
  ip: number;
}

/** A UDP socket with its own receive and send slots. */
export interface UdpSlots {
  udp: LinuxUdpSocket;
  rx: PacketBuf[];
  tx: PacketBuf[];
}

/** Everything the loop drives. */
export interface LoopParts {
  c: Libc;
  core: CoreAdapter;
  tun: TunDevice;
  udp: LinuxUdpSocket;
  rx: PacketBuf[];
  tx: PacketBuf[];
  wakeFd: number;
  control: Int32Array;
  onEvents: (events: CoreEvent[]) => void;
  isClosed: () => boolean;
  /** Multipath: the sockets of paths 2..n (path 1's is `udp`), each with its own slots. */
  more?: UdpSlots[];
}

/** The data-plane loop. */
export class DataPlaneLoop {
  readonly #p: LoopParts;
  readonly #pollfds: Uint8Array;
  readonly #pollView: DataView;
  /** poll() entries: TUN, first UDP socket, wake eventfd, then the other paths' sockets. */
  readonly #nfds: bigint;
  /** Every socket, path order (entry 0 is the parts object itself, so setUdp() updates both). */
  readonly #socks: UdpSlots[];
  /** Send counts per socket during one multipath batch. */
  readonly #txCount: Int32Array;
  readonly #tunIn = new Uint8Array(65536);
  readonly #tunOut = new Uint8Array(65536);
  /** The TUN carries a virtio-net header before each packet (then writes are coalesced). */
  readonly #vnet: boolean;
  /** Where a read packet starts (after the virtio header, if there is one). */
  readonly #tunInPkt: Uint8Array;
  /** The buffer TUN reads go into (#tunIn, or the TSO splitter's with the virtio header). */
  readonly #tunRead: Uint8Array;
  readonly #gro = new TcpCoalescer();
  readonly #tso = new TsoSplitter();
  readonly #drain = new Uint8Array(8);
  readonly #endpoints = new Map<number, NumEndpoint>();
  #nextDeadline = 0;

  constructor(p: LoopParts) {
    this.#p = p;
    this.#vnet = p.tun.vnetHdr === true;
    // With the virtio header, reads go straight into the TSO splitter's buffer.
    this.#tunInPkt = this.#vnet ? this.#tso.readPacket : this.#tunIn;
    this.#tunRead = this.#vnet ? this.#tso.read : this.#tunIn;
    const more = p.more ?? [];
    this.#socks = [p, ...more];
    this.#txCount = new Int32Array(this.#socks.length);
    this.#nfds = BigInt(3 + more.length);
    this.#pollfds = new Uint8Array((3 + more.length) * 8);
    this.#pollView = new DataView(this.#pollfds.buffer);
    const fds = [p.tun.fd, p.udp.fd, p.wakeFd, ...more.map((s) => s.udp.fd)];
    fds.forEach((fd, i) => {
      this.#pollView.setInt32(i * 8, fd, true);
      this.#pollView.setInt16(i * 8 + 4, POLLIN, true);
    });
  }

  /** The cached endpoint object for (ip, port): the same object every time, no allocation. */
  endpoint(ip: number, port: number): NumEndpoint {
    const key = ip * 65536 + port;
    let e = this.#endpoints.get(key);
    if (!e) {
      if (this.#endpoints.size >= MAX_ENDPOINTS) this.#endpoints.clear();
      e = { hostname: formatIPv4(ip), port, ip };
      this.#endpoints.set(key, e);
    }
    return e;
  }

  /** Replaces path `index`'s UDP socket (after a rebind); the next poll() watches the new fd.
   * The new socket must use the same slots as the old one. */
  setUdp(udp: LinuxUdpSocket, index = 0): void {
    this.#socks[index]!.udp = udp;
    this.#pollView.setInt32((index === 0 ? 1 : 2 + index) * 8, udp.fd, true);
  }

  /** Runs until the stop flag is set, a command is announced, or the core closes for good. */
  run(): void {
    const p = this.#p;
    this.#timers(performance.now());
    while (
      Atomics.load(p.control, CTRL_STOP) === 0 && Atomics.load(p.control, CTRL_COMMAND) === 0 &&
      !p.isClosed()
    ) {
      const now = performance.now();
      const timeout = Math.max(0, Math.min(MAX_SLEEP_MS, Math.ceil(this.#nextDeadline - now)));
      const rc = p.c.poll(this.#pollfds, this.#nfds, timeout);
      const t = performance.now();
      if (rc > 0) {
        const v = this.#pollView;
        // Only the fds poll() reported are touched: each skipped EAGAIN is a syscall saved on
        // the way of a lone game packet.
        let net = v.getInt16(8 + 6, true) !== 0;
        let tun = v.getInt16(6, true) !== 0;
        if (v.getInt16(2 * 8 + 6, true) !== 0) p.c.read(p.wakeFd, this.#drain, 8n);
        // Alternate directions until both are drained (or the turn budget is used).
        for (let turn = 0; turn < BATCHES_PER_TURN && (net || tun); turn++) {
          if (net) net = this.#fromNet(t);
          if (tun) tun = this.#fromTun(t);
        }
        if (this.#socks.length > 1) this.#fromOtherPaths(t);
        // Packets can set timers (a send arms the client's liveness probe): ask the core.
        this.#nextDeadline = p.core.deadline();
      }
      if (t >= this.#nextDeadline || p.core.pending) this.#timers(t);
    }
  }

  /** Says goodbye and flushes it (after run() returned because of the stop flag). */
  stop(): void {
    this.#p.core.stop();
    this.#flush();
  }

  /** Multipath: drains the other paths' sockets that poll() reported readable. */
  #fromOtherPaths(now: number): void {
    const v = this.#pollView;
    for (let k = 1; k < this.#socks.length; k++) {
      if (v.getInt16((2 + k) * 8 + 6, true) === 0) continue;
      const { udp, rx } = this.#socks[k]!;
      for (let turn = 0; turn < BATCHES_PER_TURN && this.#fromNet(now, udp, rx); turn++);
    }
  }

  /** One recvmmsg batch; returns true when the batch was full (more may be waiting). */
  #fromNet(now: number, udp = this.#p.udp, rx = this.#p.rx): boolean {
    const { core, tun } = this.#p;
    const n = udp.recv();
    if (n <= 0) return false;
    // With the virtio header, decrypt straight into the coalescer's input (no copy to join).
    const out = this.#vnet ? this.#gro.input : this.#tunOut;
    for (let i = 0; i < n; i++) {
      const len = udp.rxLen[i]!;
      if (len < 0) {
        core.drops.too_big++;
        continue;
      }
      const d = rx[i]!;
      d.len = len;
      const r = core.receive(now, d, this.endpoint(udp.rxIp[i]!, udp.rxPort[i]!), out);
      if (r.verdict !== Verdict.Tun) continue;
      if (!this.#vnet) {
        writeTun(tun, out, r.length, core.drops);
        continue;
      }
      // Join TCP segments of one flow into one GSO write; anything else goes alone.
      const gro = this.#gro;
      if (gro.add(r.length)) continue;
      if (gro.pending) writeTun(tun, gro.buf, gro.finish(), core.drops);
      if (!gro.add(r.length)) {
        writeTun(tun, gro.inputWithHeader, r.length + VNET_HDR_BYTES, core.drops);
      }
    }
    if (this.#gro.pending) writeTun(tun, this.#gro.buf, this.#gro.finish(), core.drops);
    if (core.pending) this.#flush();
    return n === rx.length;
  }

  /**
   * Reads one packet from the TUN into #tunInPkt; returns its length, 0 when none is waiting,
   * SEGMENTS for a TCP super-packet now in #tso, or -1 for a read to skip (counted).
   */
  #readTun(tun: TunDevice, buf: Uint8Array): number {
    const n = tun.read(buf);
    if (!this.#vnet || n === 0) return n;
    switch (this.#tso.begin(n)) {
      case ReadKind.Plain:
        return n - VNET_HDR_BYTES;
      case ReadKind.Segments:
        return SEGMENTS;
      default:
        this.#p.core.drops.bad_inner_packet++;
        return -1;
    }
  }

  /** Reads up to one batch from the TUN, seals, sends; true when the batch was full. */
  #fromTun(now: number): boolean {
    if (this.#socks.length > 1) return this.#fromTunPaths(now);
    const { core, tx, tun } = this.#p;
    const buf = this.#tunRead;
    // Room for a packet's extra copies (redundant sessions) stays free at the end of the batch.
    const limit = tx.length - core.maxExtra;
    let count = 0;
    while (count < limit) {
      const n = this.#readTun(tun, buf);
      if (n === 0) break;
      if (n === SEGMENTS) {
        // A TCP super-packet from the kernel (TSO): cut it up, sending full batches as we go.
        const tso = this.#tso;
        for (let i = 0; i < tso.count; i++) {
          if (count >= limit) count = this.#sendBatch(count);
          const len = tso.segment(i);
          count = this.#sealOne(now, tso.seg, len, count);
        }
        continue;
      }
      if (n < 0) continue;
      count = this.#sealOne(now, this.#tunInPkt, n, count);
    }
    this.#sendBatch(count);
    if (core.pending) this.#flush();
    return count >= limit;
  }

  /** Seals one inner packet into send slot `count` (and its redundant copies after it);
   * returns the next free slot. */
  #sealOne(now: number, pkt: Uint8Array, len: number, count: number): number {
    const { core, udp, tx } = this.#p;
    const sealed = tx[count]!;
    const r = core.fromTun(now, pkt, len, sealed);
    if (r.verdict !== Verdict.Net) return count;
    const to = r.to as NumEndpoint;
    udp.txLen[count] = r.length;
    udp.txIp[count] = to.ip ?? parseIPv4(to.hostname) ?? 0;
    udp.txPort[count] = to.port;
    count++;
    for (let i = 0; i < r.extraCount; i++) queue(this.#p, count++, sealed, r.length, r.extra![i]!);
    return count;
  }

  /** Sends send slots 0..count (counting what the kernel refused); returns 0, the next slot. */
  #sendBatch(count: number): number {
    if (count > 0) {
      const sent = this.#p.udp.send(count);
      if (sent < count) this.#p.core.drops.send_failed += count - sent;
    }
    return 0;
  }

  /**
   * Multipath client: like #fromTun, but each sealed packet goes to the socket of each of its
   * destinations (`via`), sealed into the first socket's next slot and copied where needed.
   * Every socket gets at most one copy per packet, so the batch ends when any socket is full.
   */
  #fromTunPaths(now: number): boolean {
    const { core, tun } = this.#p;
    const socks = this.#socks;
    const counts = this.#txCount;
    counts.fill(0);
    const buf = this.#tunRead;
    let full = false;
    for (;;) {
      for (let k = 0; k < socks.length; k++) if (counts[k]! >= socks[k]!.tx.length) full = true;
      if (full) break;
      const n = this.#readTun(tun, buf);
      if (n === 0) break;
      if (n < 0) continue; // no TSO with several paths (see runtime/client.ts): only skips here
      const sealed = socks[0]!.tx[counts[0]!]!;
      const r = core.fromTun(now, this.#tunInPkt, n, sealed);
      if (r.verdict !== Verdict.Net) continue;
      for (let i = -1; i < r.extraCount; i++) {
        const to = i < 0 ? r.to! : r.extra![i]!;
        const k = to.via ?? 0;
        const s = socks[k];
        if (!s) continue;
        queue(s, counts[k]!++, sealed, r.length, to);
      }
    }
    for (let k = 0; k < socks.length; k++) {
      const count = counts[k]!;
      if (count === 0) continue;
      const sent = socks[k]!.udp.send(count);
      if (sent < count) core.drops.send_failed += count - sent;
    }
    if (core.pending) this.#flush();
    return full;
  }

  #timers(now: number): void {
    this.#nextDeadline = this.#p.core.tick(now, Date.now());
    this.#flush();
  }

  /** Sends control-path datagrams (one at a time, through send slot 0 of the socket named by
   * `to.via`) and posts events. */
  #flush(): void {
    const { core } = this.#p;
    for (const o of core.takeOutbox()) {
      const s = this.#socks[o.to.via ?? 0] ?? this.#p;
      this.#sendOne(o, s.udp, s.tx[0]!);
    }
    const events = core.takeEvents();
    if (events.length) this.#p.onEvents(events);
  }

  #sendOne(o: Outgoing, udp: LinuxUdpSocket, slot: PacketBuf): void {
    if (o.data.length > slot.buf.length) return;
    slot.buf.set(o.data);
    udp.txLen[0] = o.data.length;
    udp.txIp[0] = (o.to as NumEndpoint).ip ?? parseIPv4(o.to.hostname) ?? 0;
    udp.txPort[0] = o.to.port;
    if (udp.send(1) < 1) this.#p.core.drops.send_failed++;
  }
}

/**
 * Puts a copy of the sealed datagram `sealed[0..len)` into send slot `j` of `s`, addressed to
 * `to` (nothing to copy when the datagram was sealed into that very slot).
 */
function queue(s: UdpSlots, j: number, sealed: PacketBuf, len: number, to: Endpoint): void {
  const slot = s.tx[j]!;
  if (slot !== sealed) slot.buf.set(sealed.buf.subarray(0, len));
  s.udp.txLen[j] = len;
  s.udp.txIp[j] = (to as NumEndpoint).ip ?? parseIPv4(to.hostname) ?? 0;
  s.udp.txPort[j] = to.port;
}
