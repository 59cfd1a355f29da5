/**
 * The probe socket of `xvpn diag mtu` on Windows: the {@link ProbeSocket} contract over Winsock
 * by FFI, as {@link PmtuSocket} is over libc on Linux. Windows 10 has the same two options under
 * other numbers (ws2ipdef.h): `IP_MTU_DISCOVER` (71) = `IP_PMTUDISC_PROBE` sets DF on every
 * datagram and limits sends by the interface MTU only, so a path MTU cached from an earlier run
 * does not stop a probe; `IP_MTU` (73) reads the system's estimate of the path MTU on a
 * connected socket.
 *
 * How an ICMP "fragmentation needed" shows: Linux reports it on the next recv() (EMSGSIZE) of a
 * connected socket. Whether Windows does is not documented, but it lowers its path-MTU estimate,
 * which `IP_MTU` reads; so a wait for an answer also watches `IP_MTU`, and a drop below what it
 * was is reported as EMSGSIZE, as Linux would have. A WSAEMSGSIZE from recv() counts the same
 * way, once. And when the second try of a size goes unanswered while the estimate (cached
 * from an earlier run, so not lowered again) is below that size, the wait ends with EMSGSIZE
 * rather than a timeout.
 *
 * Errors come out as Linux errno values (the diagnosis reads one set), a WSA code without a
 * counterpart as itself (10000 and up, never an errno).
 *
 * Tested on Linux over the fake wintun library's Winsock stand-ins, with the ICMP error
 * reported on recv and with it hidden (`FAKE_WINSOCK_HIDE_ICMP=1`); never on real Windows.
 *
 * @module
 */
import { Errno, errnoName } from "../_libc.ts";
import { parseIPv4 } from "../../lib/ip.ts";
import { POLL_SLEEP_MS, type ProbeSocket, type ReceiveResult } from "./pmtu.ts";
import {
  encodeSockaddrIn,
  IP_MTU,
  IP_MTU_DISCOVER,
  IP_PMTUDISC_PROBE,
  IPPROTO_IP,
  SOCKADDR_IN_BYTES,
  WINSOCK_SYMBOLS,
  WsaError,
  wsaErrorName,
} from "./winsock_abi.ts";
import { openWinsockSocket, WinsockError } from "./winsock.ts";

/** IPv4 + UDP header bytes. */
const HEADERS = 28;

/** WSA codes and the errno the diagnosis knows them by. */
const ERRNO_OF = new Map<number, number>([
  [WsaError.WSAEWOULDBLOCK, Errno.EAGAIN],
  [WsaError.WSAEMSGSIZE, Errno.EMSGSIZE],
  // An ICMP "port unreachable": WSAECONNRESET on a UDP socket (SIO_UDP_CONNRESET).
  [WsaError.WSAECONNRESET, Errno.ECONNREFUSED],
  [WsaError.WSAECONNREFUSED, Errno.ECONNREFUSED],
  [WsaError.WSAENOBUFS, Errno.ENOBUFS],
  [WsaError.WSAENETUNREACH, Errno.ENETUNREACH],
  [WsaError.WSAEHOSTUNREACH, Errno.EHOSTUNREACH],
  [WsaError.WSAEINTR, Errno.EINTR],
]);

/** A connected, non-blocking Winsock UDP socket with DF set on every datagram (IPv4). */
export class WinsockPmtuSocket implements ProbeSocket {
  readonly headerBytes = HEADERS;
  readonly #lib: Deno.DynamicLibrary<typeof WINSOCK_SYMBOLS>;
  readonly #sock: bigint;
  readonly #int = new Int32Array(1);
  readonly #intBytes = new Uint8Array(this.#int.buffer);
  readonly #len = new Int32Array(1);
  readonly #lenBytes = new Uint8Array(this.#len.buffer);
  /** The path MTU as last seen: a drop below it is an ICMP "fragmentation needed". */
  #knownMtu: number;
  /** IP bytes of the last datagram sent, and how many waits for it ended unanswered. */
  #lastSent = 0;
  #unanswered = 0;
  #closed = false;

  private constructor(lib: Deno.DynamicLibrary<typeof WINSOCK_SYMBOLS>, sock: bigint) {
    this.#lib = lib;
    this.#sock = sock;
    this.#knownMtu = 0;
    this.#knownMtu = this.pathMtu();
  }

  /** Opens a socket connected to `host:port` (an IPv4 literal); `dll` is ws2_32 (or the fake). */
  static open(host: string, port: number, dll = "ws2_32.dll"): WinsockPmtuSocket {
    const ip = parseIPv4(host);
    if (ip === undefined) throw new Error(`diag mtu on Windows probes IPv4 only, not ${host}`);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`bad UDP port ${port}`);
    }
    const { lib, ws, sock, undo, fail } = openWinsockSocket(dll, "cannot open the probe socket");
    const mode = new Int32Array([IP_PMTUDISC_PROBE]);
    if (ws.setsockopt(sock, IPPROTO_IP, IP_MTU_DISCOVER, mode, 4) !== 0) {
      fail("setsockopt(IP_MTU_DISCOVER) (Windows 10 or later is needed)");
    }
    const sa = new Uint8Array(SOCKADDR_IN_BYTES);
    encodeSockaddrIn(sa, ip, port);
    if (ws.connect(sock, sa, SOCKADDR_IN_BYTES) !== 0) fail(`connect() to ${host}:${port}`);
    try {
      return new WinsockPmtuSocket(lib, sock); // reads IP_MTU: may fail on an old Windows
    } catch (err) {
      for (const u of undo.reverse()) u();
      throw err;
    }
  }

  send(data: Uint8Array): number {
    this.#check("send");
    const ws = this.#lib.symbols;
    if (ws.send(this.#sock, data, data.length, 0) >= 0) {
      const bytes = data.length + HEADERS;
      if (bytes !== this.#lastSent) this.#unanswered = 0;
      this.#lastSent = bytes;
      return 0;
    }
    return this.#errno(ws.WSAGetLastError());
  }

  async receive(buf: Uint8Array, timeoutMs: number): Promise<ReceiveResult> {
    this.#check("recv");
    const ws = this.#lib.symbols;
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const n = ws.recv(this.#sock, buf, buf.length, 0);
      if (n >= 0) return { kind: "datagram", length: n };
      const e = this.#errno(ws.WSAGetLastError());
      if (e === Errno.EMSGSIZE) {
        this.#knownMtu = this.pathMtu(); // reported now: not again by the watch below
        return { kind: "error", errno: e };
      }
      if (e !== Errno.EAGAIN) return { kind: "error", errno: e };
      // Nothing to read: has the system lowered its path MTU meanwhile (an ICMP came)? (It
      // may also rise, when a cached value expires: follow it, so the next drop shows.)
      const mtu = this.pathMtu();
      if (mtu < this.#knownMtu) {
        this.#knownMtu = mtu;
        return { kind: "error", errno: Errno.EMSGSIZE };
      }
      this.#knownMtu = mtu;
      if (performance.now() >= deadline) {
        // No answer, and the estimate (cached from an earlier run's ICMP, so not lowered
        // again) says it cannot fit: on the second unanswered try of the same size, as good
        // as the error Linux would report. Once could be plain loss on a path that grew
        // since the value was cached.
        if (mtu < this.#lastSent && ++this.#unanswered >= 2) {
          return { kind: "error", errno: Errno.EMSGSIZE };
        }
        return { kind: "timeout" };
      }
      await new Promise((r) => setTimeout(r, POLL_SLEEP_MS));
    }
  }

  pathMtu(): number {
    this.#check("getsockopt");
    const ws = this.#lib.symbols;
    this.#len[0] = 4;
    if (ws.getsockopt(this.#sock, IPPROTO_IP, IP_MTU, this.#intBytes, this.#lenBytes) !== 0) {
      const code = ws.WSAGetLastError();
      throw new WinsockError(`getsockopt(IP_MTU) failed: ${wsaErrorName(code)} (${code})`, code);
    }
    return this.#int[0]!;
  }

  describe(errno: number): string {
    if (errno >= 10000) return `${wsaErrorName(errno)} (${errno})`;
    return errnoName(errno);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const ws = this.#lib.symbols;
    ws.closesocket(this.#sock);
    ws.WSACleanup();
    this.#lib.close();
  }

  #errno(wsa: number): number {
    return ERRNO_OF.get(wsa) ?? wsa;
  }

  #check(op: string): void {
    if (this.#closed) throw new Error(`${op}() on a closed probe socket`);
  }
}
