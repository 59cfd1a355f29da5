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
 * @module
 */
import { PacketBuf } from "../../core/packet.ts";
import { formatIPv4, parseIPv4 } from "../../core/ip.ts";
import { type Endpoint, Verdict } from "../../core/result.ts";
import { type Libc, POLLIN } from "../../io/_libc.ts";
import type { TunDevice } from "../../io/tun/device.ts";
import type { LinuxUdpSocket } from "../../io/udp/linux.ts";
import type { CoreAdapter, CoreEvent, Outgoing } from "../engine.ts";
import { writeTun } from "../portable.ts";
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
}

/** The data-plane loop. */
export class DataPlaneLoop {
  readonly #p: LoopParts;
  readonly #pollfds = new Uint8Array(3 * 8);
  readonly #pollView: DataView;
  readonly #tunIn = new Uint8Array(65536);
  readonly #tunOut = new Uint8Array(65536);
  readonly #drain = new Uint8Array(8);
  readonly #endpoints = new Map<number, NumEndpoint>();
  #nextDeadline = 0;

  constructor(p: LoopParts) {
    this.#p = p;
    this.#pollView = new DataView(this.#pollfds.buffer);
    const fds = [p.tun.fd, p.udp.fd, p.wakeFd];
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

  /** Replaces the UDP socket (after a rebind); the next poll() watches the new fd. */
  setUdp(udp: LinuxUdpSocket): void {
    this.#p.udp = udp;
    this.#pollView.setInt32(8, udp.fd, true);
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
      const rc = p.c.poll(this.#pollfds, 3n, timeout);
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
      }
      if (t >= this.#nextDeadline || p.core.pending) this.#timers(t);
    }
  }

  /** Says goodbye and flushes it (after run() returned because of the stop flag). */
  stop(): void {
    this.#p.core.stop();
    this.#flush();
  }

  /** One recvmmsg batch; returns true when the batch was full (more may be waiting). */
  #fromNet(now: number): boolean {
    const { core, udp, rx, tun } = this.#p;
    const n = udp.recv();
    if (n <= 0) return false;
    const out = this.#tunOut;
    for (let i = 0; i < n; i++) {
      const len = udp.rxLen[i]!;
      if (len < 0) {
        core.drops.too_big++;
        continue;
      }
      const d = rx[i]!;
      d.len = len;
      const r = core.receive(now, d, this.endpoint(udp.rxIp[i]!, udp.rxPort[i]!), out);
      if (r.verdict === Verdict.Tun) writeTun(tun, out, r.length, core.drops);
    }
    if (core.pending) this.#flush();
    return n === rx.length;
  }

  /** Reads up to one batch from the TUN, seals, sends; true when the batch was full. */
  #fromTun(now: number): boolean {
    const { core, udp, tx, tun } = this.#p;
    const buf = this.#tunIn;
    let count = 0;
    while (count < tx.length) {
      const n = tun.read(buf);
      if (n === 0) break;
      const r = core.fromTun(now, buf, n, tx[count]!);
      if (r.verdict !== Verdict.Net) continue;
      const to = r.to as NumEndpoint;
      udp.txLen[count] = r.length;
      udp.txIp[count] = to.ip ?? parseIPv4(to.hostname) ?? 0;
      udp.txPort[count] = to.port;
      count++;
    }
    if (count > 0) {
      const sent = udp.send(count);
      if (sent < count) core.drops.send_failed += count - sent;
    }
    if (core.pending) this.#flush();
    return count === tx.length;
  }

  #timers(now: number): void {
    this.#nextDeadline = this.#p.core.tick(now, Date.now());
    this.#flush();
  }

  /** Sends control-path datagrams (one at a time, through send slot 0) and posts events. */
  #flush(): void {
    const { core, udp, tx } = this.#p;
    for (const o of core.takeOutbox()) this.#sendOne(o, udp, tx[0]!);
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
