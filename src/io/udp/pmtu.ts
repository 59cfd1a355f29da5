/**
 * A small UDP socket for path-MTU probes (`xvpn diag mtu`), through FFI because Deno's own UDP
 * socket cannot set DF, cannot say that a send failed with EMSGSIZE, and cannot read the path
 * MTU the kernel learned.
 *
 * - `IP_MTU_DISCOVER = IP_PMTUDISC_DO`: every datagram leaves with DF set, so a router that
 *   cannot forward it drops it and (unless ICMP is filtered) answers ICMP "fragmentation
 *   needed" with its next-hop MTU. The kernel caches that MTU for the destination; from then on
 *   a larger send fails at once with EMSGSIZE, and `getsockopt(IP_MTU)` reads the value.
 *   (`IP_PMTUDISC_PROBE` also sets DF but ignores the cached value: only the device MTU limits.)
 * - The socket is connected, which also makes the kernel report ICMP errors for this
 *   destination on the socket: "port unreachable" as ECONNREFUSED and, in DO mode,
 *   "fragmentation needed" as EMSGSIZE on the next recv().
 * - Non-blocking: recv() never waits; {@link PmtuSocket.receive} polls it with short awaited
 *   sleeps. This is the control path (a few datagrams a second), so simplicity beats latency.
 *
 * @module
 */
import {
  AF_INET,
  AF_INET6,
  Errno,
  ErrnoError,
  errnoName,
  errnoView,
  IP_MTU,
  IP_MTU_DISCOVER,
  IP_PMTUDISC_DO,
  IP_PMTUDISC_PROBE,
  IPV6_MTU,
  IPV6_MTU_DISCOVER,
  type Libc,
  libc,
  MSG_DONTWAIT,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_IP,
  SOL_IPV6,
  strerror,
} from "../_libc.ts";
import { parseIPv4 } from "../../lib/ip.ts";
import { parseIPv6 } from "../../lib/ip6.ts";
import {
  SOCKADDR_IN6_BYTES,
  SOCKADDR_IN_BYTES,
  writeSockaddrIn,
  writeSockaddrIn6,
} from "./sockaddr.ts";

/** How the kernel treats the path MTU for this socket's sends; see the module docs. */
export type PmtuMode = "do" | "probe";

/** What {@link PmtuSocket.receive} got. */
export type ReceiveResult =
  /** A datagram of `length` bytes is in the buffer. */
  | { kind: "datagram"; length: number }
  /** An error the kernel reported on the socket (an ICMP error, usually): its errno. */
  | { kind: "error"; errno: number }
  /** Nothing arrived in time. */
  | { kind: "timeout" };

/** How long {@link PmtuSocket.receive} sleeps between polls of the non-blocking socket. */
export const POLL_SLEEP_MS = 2;

/**
 * What the MTU diagnosis needs of its probe socket: {@link PmtuSocket} on Linux,
 * `WinsockPmtuSocket` on Windows. Error codes are Linux errno values on both (the Windows
 * socket translates its WSA codes), so that the diagnosis reads them one way.
 */
export interface ProbeSocket {
  /** IP + UDP header bytes: path MTU = largest payload + this. */
  readonly headerBytes: number;
  /** Sends one datagram with DF set: 0, or the errno (EMSGSIZE, ECONNREFUSED, EAGAIN, ...). */
  send(data: Uint8Array): number;
  /** Waits up to `timeoutMs` for a datagram (or an error reported on the socket). */
  receive(buf: Uint8Array, timeoutMs: number): Promise<ReceiveResult>;
  /** The path MTU the system knows for the destination now. */
  pathMtu(): number;
  /** An errno as words, for messages. */
  describe(errno: number): string;
  /** Closes the socket; idempotent. */
  close(): void;
}

/** A connected, non-blocking UDP socket (IPv4 or IPv6) with DF set on every datagram. */
export class PmtuSocket implements ProbeSocket {
  readonly #c: Libc;
  readonly #fd: number;
  readonly #v6: boolean;
  #closed = false;

  private constructor(
    c: Libc,
    fd: number,
    readonly host: string,
    readonly port: number,
    v6: boolean,
  ) {
    this.#c = c;
    this.#fd = fd;
    this.#v6 = v6;
  }

  /** 28 (IPv4 20 + UDP 8) or 48 (IPv6 40 + UDP 8): path MTU = largest payload + this. */
  get headerBytes(): number {
    return this.#v6 ? 48 : 28;
  }

  /**
   * Opens a socket connected to `host:port` (an IPv4 literal), in `mode` (default "do").
   * Throws an {@link ErrnoError} naming the step that failed.
   */
  static open(host: string, port: number, mode: PmtuMode = "do"): PmtuSocket {
    const ip = parseIPv4(host);
    const ip6 = ip === undefined ? parseIPv6(host) : undefined;
    if (ip === undefined && !ip6) throw new Error(`not an IPv4 or IPv6 address: ${host}`);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`bad UDP port ${port}`);
    }
    const c = libc();
    const err = errnoView();
    const fd = c.socket(ip6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw sysError("socket(SOCK_DGRAM) failed", err[0]!);
    const s = new PmtuSocket(c, fd, host, port, ip6 !== undefined);
    try {
      s.setMode(mode);
      const sa = new Uint8Array(SOCKADDR_IN6_BYTES);
      if (ip6) writeSockaddrIn6(sa, 0, ip6, 0, port);
      else writeSockaddrIn(sa, 0, ip!, port);
      if (c.connect(fd, sa, ip6 ? SOCKADDR_IN6_BYTES : SOCKADDR_IN_BYTES) < 0) {
        throw sysError(`connect() to ${host}:${port} failed`, err[0]!);
      }
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  /** Switches between DF-with-cached-PMTU ("do") and DF-ignoring-it ("probe"). */
  setMode(mode: PmtuMode): void {
    // IPV6_PMTUDISC_* have the values of IP_PMTUDISC_*.
    const v = mode === "do" ? IP_PMTUDISC_DO : IP_PMTUDISC_PROBE;
    const opt = new Uint8Array(new Int32Array([v]).buffer);
    const err = errnoView();
    const [level, name] = this.#v6 ? [SOL_IPV6, IPV6_MTU_DISCOVER] : [SOL_IP, IP_MTU_DISCOVER];
    if (this.#c.setsockopt(this.#fd, level, name, opt, 4) < 0) {
      throw sysError("setsockopt(IP_MTU_DISCOVER) failed", err[0]!);
    }
  }

  /**
   * Sends one datagram. Returns 0, or the errno when the kernel refused it: EMSGSIZE (larger
   * than the path MTU the kernel knows), ECONNREFUSED (an earlier ICMP port unreachable),
   * EAGAIN (send buffer full), ...
   */
  send(data: Uint8Array): number {
    this.#check("send");
    const err = errnoView();
    for (;;) {
      const n = this.#c.send(this.#fd, data, BigInt(data.length), MSG_DONTWAIT);
      if (n >= 0) return 0;
      const e = err[0]!;
      if (e !== Errno.EINTR) return e;
    }
  }

  /**
   * Receives one datagram into `buf` without waiting: its length, or -errno (-EAGAIN when none
   * is waiting).
   */
  recv(buf: Uint8Array): number {
    this.#check("recv");
    const err = errnoView();
    for (;;) {
      const n = this.#c.recv(this.#fd, buf, BigInt(buf.length), MSG_DONTWAIT);
      if (n >= 0) return n;
      const e = err[0]!;
      if (e !== Errno.EINTR) return -e;
    }
  }

  /** Waits up to `timeoutMs` for a datagram (or a socket error) into `buf`. */
  async receive(buf: Uint8Array, timeoutMs: number): Promise<ReceiveResult> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const n = this.recv(buf);
      if (n >= 0) return { kind: "datagram", length: n };
      if (n !== -Errno.EAGAIN) return { kind: "error", errno: -n };
      if (performance.now() >= deadline) return { kind: "timeout" };
      await new Promise((r) => setTimeout(r, POLL_SLEEP_MS));
    }
  }

  /** The path MTU the kernel knows for the destination (`getsockopt(IP_MTU)`). */
  pathMtu(): number {
    this.#check("getsockopt");
    const v = new Int32Array(1);
    const len = new Uint32Array([4]);
    const err = errnoView();
    const r = this.#c.getsockopt(
      this.#fd,
      this.#v6 ? SOL_IPV6 : SOL_IP,
      this.#v6 ? IPV6_MTU : IP_MTU,
      new Uint8Array(v.buffer),
      new Uint8Array(len.buffer),
    );
    if (r < 0) throw sysError("getsockopt(IP_MTU) failed", err[0]!);
    return v[0]!;
  }

  describe(errno: number): string {
    return `${errnoName(errno)} (${strerror(errno)})`;
  }

  /** Closes the socket; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#c.close(this.#fd);
  }

  #check(op: string): void {
    if (this.#closed) {
      throw new Error(`${op}() on closed probe socket to ${this.host}:${this.port}`);
    }
  }
}

/** An ErrnoError whose message is `what: ENAME (description)`. */
function sysError(what: string, e: number): ErrnoError {
  return new ErrnoError(`${what}: ${errnoName(e)} (${strerror(e)})`, e);
}
