/**
 * The {@link BatchUdp} contract over a Winsock socket ({@link WinsockUdp}), so that the flow
 * scheduler's loop (`runtime/dataplane/loop.ts`) runs on Windows as it does over recvmmsg and
 * sendmmsg on Linux. Winsock has no batch calls for UDP that Deno's FFI can reach cheaply, so a
 * batch is a run of recvfrom/sendto calls (each synchronous, tens of nanoseconds of FFI on top
 * of the system call), into and out of the caller's slots.
 *
 * What the Linux socket has and this one does not, and what the loop does about it:
 * - no GSO and no IP_PKTINFO (a client sends from whatever its route says);
 * - no TOS either way (no DSCP on the outer header, no ECN copied out: Windows sets those
 *   through its QoS API, not per datagram); `rxTos` stays 0;
 * - no SO_MEMINFO: {@link memory} reads the receive queue's depth with FIONREAD instead (on
 *   Windows, every byte waiting), so bulk is shed before the buffer overflows, as on Linux;
 * - IPv4 only, one address family.
 * The send buffer is resizable (SO_SNDBUF), so the loop's link-rate sizing works as on Linux,
 * and a send that would block is backpressure: FD_WRITE on the socket's event wakes the loop
 * (or, when a receive took it from the record first, {@link WinsockBatchUdp.writable} tells the
 * poller). Whether Windows' sendto pushes back this way under load, rather than dropping
 * further down, has not been seen on real Windows.
 *
 * @module
 */
import { type BatchUdp, type LocalAddress, NO_LOCAL, type SocketMemory } from "./batch.ts";
import { FD_WRITE } from "./winsock_abi.ts";
import { RECV_EMPTY, RECV_SKIPPED, RECV_TRUNCATED, SEND_BLOCKED, WinsockUdp } from "./winsock.ts";

/** Options of {@link WinsockBatchUdp.open}. */
export interface WinsockBatchOptions {
  /** ws2_32 (or the Linux fake). */
  dll: string;
  /** Local IPv4 address to bind. */
  host: string;
  port: number;
  /** The caller's receive and send slots (each at least the largest datagram). */
  rxSlots: Uint8Array[];
  txSlots: Uint8Array[];
  /** SO_SNDBUF / SO_RCVBUF. */
  sndbuf?: number;
  rcvbuf?: number;
}

/** A Winsock UDP socket behind the batch contract; see the module docs. */
export class WinsockBatchUdp implements BatchUdp {
  readonly fd = -1;
  readonly family = 4 as const;
  readonly gsoEnabled = false;
  gsoSegments = 1;
  readonly rxLen: Int32Array;
  readonly rxIp: Uint32Array;
  readonly rxPort: Uint16Array;
  readonly rxV6: Uint8Array;
  readonly rxIp6: Uint8Array;
  readonly rxLocal: Uint8Array;
  readonly rxTos: Uint8Array;
  readonly txLen: Int32Array;
  readonly txIp: Uint32Array;
  readonly txPort: Uint16Array;
  readonly txV6: Uint8Array;
  readonly txIp6: Uint8Array;
  readonly txLocal: Uint8Array;
  readonly txTos: Uint8Array;
  readonly locals: readonly LocalAddress[] = [NO_LOCAL];
  /** Datagrams refused for good (unreachable, down, a firewall), dropped: the loop counts
   * them as `send_failed`. */
  txDropped = 0;
  /** FD_WRITE was seen since the last send that would block: the socket has room. */
  #writable = true;
  readonly #udp: WinsockUdp;
  readonly #rx: Uint8Array[];
  readonly #tx: Uint8Array[];
  /** SO_RCVBUF as asked (Windows takes it as given), 0: unknown. */
  readonly #rcvbuf: number;

  private constructor(udp: WinsockUdp, rx: Uint8Array[], tx: Uint8Array[], rcvbuf: number) {
    this.#udp = udp;
    this.#rcvbuf = rcvbuf;
    this.#rx = rx;
    this.#tx = tx;
    const r = rx.length, t = tx.length;
    this.rxLen = new Int32Array(r);
    this.rxIp = new Uint32Array(r);
    this.rxPort = new Uint16Array(r);
    this.rxV6 = new Uint8Array(r);
    this.rxIp6 = new Uint8Array(16 * r);
    this.rxLocal = new Uint8Array(r);
    this.rxTos = new Uint8Array(r);
    this.txLen = new Int32Array(t);
    this.txIp = new Uint32Array(t);
    this.txPort = new Uint16Array(t);
    this.txV6 = new Uint8Array(t);
    this.txIp6 = new Uint8Array(16 * t);
    this.txLocal = new Uint8Array(t);
    this.txTos = new Uint8Array(t);
  }

  /** Opens the socket, its event signalled for FD_READ and FD_WRITE. */
  static open(o: WinsockBatchOptions): WinsockBatchUdp {
    const udp = WinsockUdp.open({
      dll: o.dll,
      host: o.host,
      port: o.port,
      writeEvents: true,
      sndbuf: o.sndbuf,
      rcvbuf: o.rcvbuf,
    });
    return new WinsockBatchUdp(udp, o.rxSlots, o.txSlots, o.rcvbuf ?? 0);
  }

  /** The socket's event, for the poller. */
  get handle(): bigint {
    return this.#udp.eventHandle;
  }

  get localHost(): string {
    return this.#udp.localHost;
  }

  get localPort(): number {
    return this.#udp.localPort;
  }

  recv(): number {
    const udp = this.#udp;
    // Take the recorded events before reading: a datagram arriving meanwhile sets the event
    // again (Winsock re-records FD_READ after each recvfrom that leaves data behind). Taking
    // them, not just resetting the event, keeps an FD_WRITE that came in since the last wait:
    // the poller is told through writable() (a reset would lose it, and a loop held back by
    // backpressure would wait for a signal that never comes).
    if (udp.takeEvents() & FD_WRITE) this.#writable = true;
    let n = 0;
    while (n < this.#rx.length) {
      const len = udp.recv(this.#rx[n]!);
      if (len === RECV_EMPTY) break;
      if (len === RECV_SKIPPED) continue; // an ICMP report: no datagram
      if (len === RECV_TRUNCATED) {
        this.rxLen[n++] = -1; // the caller drops it as too big, and counts it
        continue;
      }
      this.rxLen[n] = len;
      this.rxIp[n] = udp.fromIp;
      this.rxPort[n] = udp.fromPort;
      n++;
    }
    return n;
  }

  send(count: number, first = 0): number {
    const udp = this.#udp;
    for (let i = first; i < first + count; i++) {
      const r = udp.send(this.#tx[i]!, this.txLen[i]!, this.txIp[i]!, this.txPort[i]!);
      if (r === SEND_BLOCKED) {
        this.#writable = false; // Winsock records FD_WRITE again once there is room
        return i - first;
      }
      if (r < 0) this.txDropped++;
    }
    return count;
  }

  /** For the poller: an FD_WRITE came since the last send that would block (see recv). */
  writable(): boolean {
    return this.#writable;
  }

  setSendBuffer(bytes: number): number {
    return this.#udp.setSendBuffer(bytes);
  }

  /** The receive queue's depth against the buffer asked for (FIONREAD: Windows gives every
   * byte waiting), so the loop sheds bulk before the buffer overflows at random; the rest of
   * SO_MEMINFO has no Winsock counterpart and reads 0. */
  memory(out: SocketMemory): boolean {
    const q = this.#udp.pendingBytes();
    if (q < 0 || this.#rcvbuf <= 0) return false;
    out.rxQueued = q;
    out.rxLimit = this.#rcvbuf;
    out.txQueued = 0;
    out.txLimit = 0;
    out.rxDrops = 0;
    return true;
  }

  close(): void {
    this.#udp.close();
  }
}
