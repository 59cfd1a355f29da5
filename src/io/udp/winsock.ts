/**
 * An IPv4 UDP socket through Winsock 2 by FFI (ws2_32.dll), for the Windows data-path Worker
 * (`runtime/dataplane/win_worker.ts`), which blocks in WaitForMultipleObjects and so cannot use
 * `Deno.listenDatagram`. Non-blocking (ioctlsocket FIONBIO): `recv` returns -1 when nothing
 * waits (WSAEWOULDBLOCK). Readability is a Winsock event: WSACreateEvent plus
 * WSAEventSelect(FD_READ, and FD_WRITE when asked), a manual-reset HANDLE the Worker puts in
 * its wait array; the Worker resets it ({@link WinsockUdp.resetEvent}) before it drains the
 * socket to WSAEWOULDBLOCK, so a datagram that arrives during the drain sets it again.
 *
 * The hot calls allocate nothing: the peer's `sockaddr_in` is encoded once per destination
 * change, and `recv` leaves the sender in {@link WinsockUdp.fromIp} / {@link fromPort}.
 *
 * On Linux it runs over the fake wintun library (its Winsock stand-ins over POSIX sockets);
 * it has not run on real Windows.
 *
 * @module
 */
import { formatIPv4, parseIPv4 } from "../../lib/ip.ts";
import {
  AF_INET,
  decodeSockaddrIn,
  encodeSockaddrIn,
  FD_READ,
  FD_WRITE,
  FIONBIO,
  FIONREAD,
  INVALID_SOCKET,
  IPPROTO_UDP,
  SO_RCVBUF,
  SO_SNDBUF,
  SOCK_DGRAM,
  SOCKADDR_IN_BYTES,
  SOL_SOCKET,
  type Winsock,
  WINSOCK_SYMBOLS,
  WINSOCK_VERSION,
  WSADATA_BYTES,
  WsaError,
  wsaErrorName,
  WSANETWORKEVENTS_BYTES,
} from "./winsock_abi.ts";

/** A non-blocking UDP socket being set up: its library, the socket, what to undo on failure. */
export interface WinsockSetup {
  lib: Deno.DynamicLibrary<typeof WINSOCK_SYMBOLS>;
  ws: Winsock;
  sock: bigint;
  /** Steps to undo, in the order done (the socket, WSAStartup, the library). */
  undo: (() => void)[];
  /** Undoes everything, then throws a {@link WinsockError} for `call` (default: the last error). */
  fail(call: string, code?: number): never;
}

/**
 * The steps every Winsock socket of ours starts with: load `dll`, WSAStartup, an IPv4 UDP
 * socket, non-blocking (FIONBIO). `what` starts each error message. The caller goes on with
 * `fail` for its own steps, and on success owns `lib` and `sock` (and one WSAStartup).
 */
export function openWinsockSocket(dll: string, what: string): WinsockSetup {
  let lib: Deno.DynamicLibrary<typeof WINSOCK_SYMBOLS>;
  try {
    lib = Deno.dlopen(dll, WINSOCK_SYMBOLS);
  } catch (err) {
    throw new Error(`cannot load Winsock from ${dll}: ${(err as Error).message}`);
  }
  const ws = lib.symbols;
  const undo: (() => void)[] = [() => lib.close()];
  const fail = (call: string, code = ws.WSAGetLastError()): never => {
    for (const u of undo.reverse()) u();
    throw new WinsockError(`${what}: ${call} failed: ${wsaErrorName(code)} (${code})`, code);
  };
  const started = ws.WSAStartup(WINSOCK_VERSION, new Uint8Array(WSADATA_BYTES));
  if (started !== 0) fail("WSAStartup", started);
  undo.push(() => ws.WSACleanup());
  const sock = BigInt(ws.socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP));
  if (sock === INVALID_SOCKET) fail("socket");
  undo.push(() => ws.closesocket(sock));
  if (ws.ioctlsocket(sock, FIONBIO, new Uint32Array([1])) !== 0) fail("ioctlsocket(FIONBIO)");
  return { lib, ws, sock, undo, fail };
}

/** A failed Winsock call, with its WSAGetLastError code. */
export class WinsockError extends Error {
  readonly code: number;
  readonly codeName: string;
  constructor(message: string, code: number) {
    super(message);
    this.name = "WinsockError";
    this.code = code;
    this.codeName = wsaErrorName(code);
  }
}

/** Options of {@link WinsockUdp.open}. */
export interface WinsockOptions {
  /** Path of ws2_32 (default `ws2_32.dll`; on Linux the fake wintun library). */
  dll?: string;
  /** Local IPv4 address to bind (`0.0.0.0`: any). */
  host: string;
  /** Local port (0: any). */
  port: number;
  /** Also signal the event for FD_WRITE (room again after a send that would block): the
   * flow scheduler's backpressure. */
  writeEvents?: boolean;
  /** SO_SNDBUF / SO_RCVBUF to ask for (bytes), if any. */
  sndbuf?: number;
  rcvbuf?: number;
}

/** `recv`'s answer for an ICMP error report of an earlier send (WSAECONNRESET, WSAENETRESET):
 * no datagram. */
export const RECV_SKIPPED = -2;
/** `recv`'s answer for a datagram longer than the buffer (WSAEMSGSIZE): its start is in the
 * buffer, the rest is lost, so it must be dropped. */
export const RECV_TRUNCATED = -3;
/** `recv`'s answer when nothing waits. */
export const RECV_EMPTY = -1;
/** `send`'s answer when the send buffer is full (WSAEWOULDBLOCK, WSAENOBUFS): try again once
 * FD_WRITE is signalled. */
export const SEND_BLOCKED = -1;
/** `send`'s answer when the network refused the datagram (unreachable, down): it is lost. */
export const SEND_REFUSED = -2;

/** A non-blocking Winsock UDP socket with a read event; see the module docs. */
export class WinsockUdp {
  /** The bound local address and port. */
  readonly localHost: string;
  readonly localPort: number;
  /** The sender of the last datagram `recv` returned. */
  fromIp = 0;
  fromPort = 0;
  /** Datagrams skipped: longer than the buffer, or ICMP reports (WSAECONNRESET). */
  skipped = 0;
  readonly #lib: Deno.DynamicLibrary<typeof WINSOCK_SYMBOLS>;
  readonly #ws: Winsock;
  readonly #sock: bigint;
  readonly #event: Deno.PointerObject;
  readonly #to = new Uint8Array(SOCKADDR_IN_BYTES);
  #toIp = -1;
  #toPort = -1;
  readonly #from = new Uint8Array(SOCKADDR_IN_BYTES);
  readonly #fromLen = new Int32Array(1);
  readonly #fromLenBytes = new Uint8Array(this.#fromLen.buffer);
  readonly #fromView = new DataView(this.#from.buffer);
  /** setsockopt's int and ioctlsocket's u_long, made once. */
  readonly #int = new Int32Array(1);
  readonly #u32 = new Uint32Array(1);
  /** WSANETWORKEVENTS, made once. */
  readonly #netEvents = new Uint8Array(WSANETWORKEVENTS_BYTES);
  readonly #netEventsView = new DataView(this.#netEvents.buffer);
  #closed = false;

  private constructor(
    lib: Deno.DynamicLibrary<typeof WINSOCK_SYMBOLS>,
    sock: bigint,
    event: Deno.PointerObject,
    local: { ip: number; port: number },
  ) {
    this.#lib = lib;
    this.#ws = lib.symbols;
    this.#sock = sock;
    this.#event = event;
    this.localHost = formatIPv4(local.ip);
    this.localPort = local.port;
  }

  /** WSAStartup, socket, FIONBIO, bind, getsockname, buffer sizes, WSACreateEvent +
   * WSAEventSelect. */
  static open(opts: WinsockOptions): WinsockUdp {
    const ip = parseIPv4(opts.host);
    if (ip === undefined) {
      throw new Error(`the Windows data path binds IPv4 only, not ${opts.host}`);
    }
    const { lib, ws, sock, undo, fail } = openWinsockSocket(
      opts.dll ?? "ws2_32.dll",
      "cannot open the UDP socket",
    );
    const addr = new Uint8Array(SOCKADDR_IN_BYTES);
    encodeSockaddrIn(addr, ip, opts.port);
    if (ws.bind(sock, addr, SOCKADDR_IN_BYTES) !== 0) fail(`bind(${opts.host}:${opts.port})`);
    const len = new Int32Array([SOCKADDR_IN_BYTES]);
    if (ws.getsockname(sock, addr, new Uint8Array(len.buffer)) !== 0) fail("getsockname");
    const local = decodeSockaddrIn(addr) ?? { ip, port: opts.port };
    const event = ws.WSACreateEvent();
    if (event === null) fail("WSACreateEvent");
    undo.push(() => ws.WSACloseEvent(event));
    for (
      const [opt, name, bytes] of [[SO_SNDBUF, "SO_SNDBUF", opts.sndbuf], [
        SO_RCVBUF,
        "SO_RCVBUF",
        opts.rcvbuf,
      ]] as const
    ) {
      if (bytes === undefined) continue;
      if (ws.setsockopt(sock, SOL_SOCKET, opt, new Int32Array([bytes]), 4) !== 0) {
        fail(`setsockopt(${name}, ${bytes})`);
      }
    }
    const mask = opts.writeEvents ? FD_READ | FD_WRITE : FD_READ;
    if (ws.WSAEventSelect(sock, event, mask) !== 0) {
      fail(`WSAEventSelect(${opts.writeEvents ? "FD_READ | FD_WRITE" : "FD_READ"})`);
    }
    return new WinsockUdp(lib, sock, event!, local);
  }

  /** The read event (a WSAEVENT, i.e. a HANDLE) as a number for a wait array. */
  get eventHandle(): bigint {
    return BigInt(Deno.UnsafePointer.value(this.#event));
  }

  /** Clears the read event; call before draining with {@link recv}. With FD_WRITE selected,
   * use {@link takeEvents} instead: a reset would also wipe an FD_WRITE that just happened. */
  resetEvent(): void {
    this.#ws.WSAResetEvent(this.#event);
  }

  /**
   * The network events recorded since the last call (FD_READ, FD_WRITE bits), clearing the
   * record and resetting the event in one step (WSAEnumNetworkEvents), so that no event is lost
   * between reading and resetting. Call before draining with {@link recv}. 0 when it failed.
   */
  takeEvents(): number {
    if (this.#ws.WSAEnumNetworkEvents(this.#sock, this.#event, this.#netEvents) !== 0) {
      this.#ws.WSAResetEvent(this.#event);
      return 0;
    }
    return this.#netEventsView.getInt32(0, true);
  }

  /** Bytes waiting in the receive buffer (ioctlsocket FIONREAD), or -1 when it cannot say. */
  pendingBytes(): number {
    return this.#ws.ioctlsocket(this.#sock, FIONREAD, this.#u32) === 0 ? this.#u32[0]! : -1;
  }

  /** Sets SO_SNDBUF; returns the size asked for, or 0 when Winsock refused it. */
  setSendBuffer(bytes: number): number {
    this.#int[0] = bytes;
    return this.#ws.setsockopt(this.#sock, SOL_SOCKET, SO_SNDBUF, this.#int, 4) === 0 ? bytes : 0;
  }

  /**
   * Sends `buf[0..len)` to `ip:port`. Returns the bytes sent, {@link SEND_BLOCKED} when the
   * send buffer is full (WSAEWOULDBLOCK, WSAENOBUFS), or {@link SEND_REFUSED} when the network
   * refused it (unreachable, down: a drop the core's timers recover from).
   */
  send(buf: Uint8Array, len: number, ip: number, port: number): number {
    if (ip !== this.#toIp || port !== this.#toPort) {
      encodeSockaddrIn(this.#to, ip, port);
      this.#toIp = ip;
      this.#toPort = port;
    }
    if (!(len >= 0 && len <= buf.byteLength)) {
      throw new RangeError(`send length ${len} outside a buffer of ${buf.byteLength} bytes`);
    }
    // The whole buffer goes as the pointer and `len` says how much of it: no view per packet.
    const n = this.#ws.sendto(
      this.#sock,
      buf,
      len,
      0,
      this.#to,
      SOCKADDR_IN_BYTES,
    );
    if (n >= 0) return n;
    const e = this.#ws.WSAGetLastError();
    switch (e) {
      case WsaError.WSAEWOULDBLOCK:
      case WsaError.WSAENOBUFS:
        return SEND_BLOCKED;
      case WsaError.WSAENETUNREACH:
      case WsaError.WSAEHOSTUNREACH:
      case WsaError.WSAENETDOWN:
      case WsaError.WSAEADDRNOTAVAIL:
      case WsaError.WSAECONNRESET:
      case WsaError.WSAENETRESET:
      case WsaError.WSAEACCES:
      case WsaError.WSAEMSGSIZE:
      case WsaError.WSAEINVAL:
        // One datagram refused for good (no route, a firewall, too big, port 0): counted by
        // the caller, never fatal for the data path.
        return SEND_REFUSED;
    }
    throw new WinsockError(`sendto failed: ${wsaErrorName(e)} (${e})`, e);
  }

  /**
   * Receives one datagram into `buf`: its length (the sender in {@link fromIp}/{@link fromPort}),
   * {@link RECV_EMPTY} when nothing waits, {@link RECV_TRUNCATED} for one longer than `buf`,
   * {@link RECV_SKIPPED} for an ICMP report of an earlier send.
   */
  recv(buf: Uint8Array): number {
    this.#fromLen[0] = SOCKADDR_IN_BYTES;
    const n = this.#ws.recvfrom(
      this.#sock,
      buf,
      buf.byteLength,
      0,
      this.#from,
      this.#fromLenBytes,
    );
    if (n >= 0) {
      this.fromIp = this.#fromView.getUint32(4, false);
      this.fromPort = this.#fromView.getUint16(2, false);
      return n;
    }
    const e = this.#ws.WSAGetLastError();
    if (e === WsaError.WSAEWOULDBLOCK) return RECV_EMPTY;
    if (
      e === WsaError.WSAEMSGSIZE || e === WsaError.WSAECONNRESET || e === WsaError.WSAENETRESET
    ) {
      // WSAECONNRESET: an ICMP port unreachable; WSAENETRESET: an ICMP TTL expired
      // (SIO_UDP_NETRESET). Neither is a datagram, neither ends the data path.
      this.skipped++;
      return e === WsaError.WSAEMSGSIZE ? RECV_TRUNCATED : RECV_SKIPPED;
    }
    throw new WinsockError(`recvfrom failed: ${wsaErrorName(e)} (${e})`, e);
  }

  /** Unties the event, closes the socket and the event, WSACleanup. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#ws.WSAEventSelect(this.#sock, this.#event, 0);
    this.#ws.closesocket(this.#sock);
    this.#ws.WSACloseEvent(this.#event);
    this.#ws.WSACleanup();
    this.#lib.close();
  }
}
