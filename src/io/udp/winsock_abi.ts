/**
 * The binary interface of the few Winsock 2 calls (ws2_32.dll) that the Windows data-path
 * Worker makes, as a `Deno.dlopen` symbol table, with their constants and the IPv4
 * `sockaddr_in` encoding. Prototypes from winsock2.h; on Linux the fake wintun
 * (`tests/support/fakewintun/wintun_fake.c`) exports the same names over POSIX sockets.
 *
 * Types: `SOCKET` is a UINT_PTR (`"usize"`, a BigInt at the FFI boundary), `WSAEVENT` a HANDLE
 * (`"pointer"`), `int` is `"i32"`, and `long` / `u_long` are 32-bit on Windows (LLP64):
 * `"i32"` / a `u32` out-parameter, never a 64-bit type.
 *
 * `sockaddr_in` has the same 16-byte layout on Windows and Linux: `sin_family` (u16, host
 * order), `sin_port` (u16, big-endian), `sin_addr` (u32, network order), 8 zero bytes; AF_INET
 * is 2 on both.
 *
 * @module
 */

/** ws2_32.dll's exports that xvpn uses. */
export const WINSOCK_SYMBOLS = {
  /** int WSAStartup(WORD wVersionRequested, LPWSADATA lpWSAData) — 0, or the error itself. */
  WSAStartup: { parameters: ["u16", "buffer"], result: "i32" },
  /** int WSACleanup(void) */
  WSACleanup: { parameters: [], result: "i32" },
  /** int WSAGetLastError(void) — the calling thread's last Winsock error. */
  WSAGetLastError: { parameters: [], result: "i32" },
  /** SOCKET socket(int af, int type, int protocol) — INVALID_SOCKET (~0) on failure. */
  socket: { parameters: ["i32", "i32", "i32"], result: "usize" },
  /** int bind(SOCKET s, const sockaddr *name, int namelen) */
  bind: { parameters: ["usize", "buffer", "i32"], result: "i32" },
  /** int getsockname(SOCKET s, sockaddr *name, int *namelen) */
  getsockname: { parameters: ["usize", "buffer", "buffer"], result: "i32" },
  /** int ioctlsocket(SOCKET s, long cmd, u_long *argp) */
  ioctlsocket: { parameters: ["usize", "i32", "buffer"], result: "i32" },
  /** int sendto(SOCKET s, const char *buf, int len, int flags, const sockaddr *to, int tolen) */
  sendto: { parameters: ["usize", "buffer", "i32", "i32", "buffer", "i32"], result: "i32" },
  /** int recvfrom(SOCKET s, char *buf, int len, int flags, sockaddr *from, int *fromlen) */
  recvfrom: { parameters: ["usize", "buffer", "i32", "i32", "buffer", "buffer"], result: "i32" },
  /** int closesocket(SOCKET s) */
  closesocket: { parameters: ["usize"], result: "i32" },
  /** WSAEVENT WSACreateEvent(void) — a manual-reset event, not signalled; NULL on failure. */
  WSACreateEvent: { parameters: [], result: "pointer" },
  /** BOOL WSACloseEvent(WSAEVENT hEvent) */
  WSACloseEvent: { parameters: ["pointer"], result: "i32" },
  /** BOOL WSAResetEvent(WSAEVENT hEvent) */
  WSAResetEvent: { parameters: ["pointer"], result: "i32" },
  /** int WSAEnumNetworkEvents(SOCKET s, WSAEVENT hEventObject,
   * LPWSANETWORKEVENTS lpNetworkEvents) — the events recorded since the last call; clears the
   * record and resets the event in one step. */
  WSAEnumNetworkEvents: { parameters: ["usize", "pointer", "buffer"], result: "i32" },
  /** int WSAEventSelect(SOCKET s, WSAEVENT hEventObject, long lNetworkEvents) — also makes
   * the socket non-blocking. */
  WSAEventSelect: { parameters: ["usize", "pointer", "i32"], result: "i32" },
  /** int connect(SOCKET s, const sockaddr *name, int namelen) */
  connect: { parameters: ["usize", "buffer", "i32"], result: "i32" },
  /** int send(SOCKET s, const char *buf, int len, int flags) */
  send: { parameters: ["usize", "buffer", "i32", "i32"], result: "i32" },
  /** int recv(SOCKET s, char *buf, int len, int flags) */
  recv: { parameters: ["usize", "buffer", "i32", "i32"], result: "i32" },
  /** int getsockopt(SOCKET s, int level, int optname, char *optval, int *optlen) */
  getsockopt: { parameters: ["usize", "i32", "i32", "buffer", "buffer"], result: "i32" },
  /** int setsockopt(SOCKET s, int level, int optname, const char *optval, int optlen) */
  setsockopt: { parameters: ["usize", "i32", "i32", "buffer", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The callable Winsock symbols. */
export type Winsock = Deno.DynamicLibrary<typeof WINSOCK_SYMBOLS>["symbols"];

/** MAKEWORD(2, 2): Winsock 2.2. */
export const WINSOCK_VERSION = 0x0202;
/** sizeof(WSADATA) on x86-64 is 408; room to spare. */
export const WSADATA_BYTES = 512;
/** AF_INET, the same on Windows and Linux. */
export const AF_INET = 2;
/** SOCK_DGRAM, the same on Windows and Linux. */
export const SOCK_DGRAM = 2;
/** IPPROTO_UDP. */
export const IPPROTO_UDP = 17;
/** FIONBIO: _IOW('f', 126, u_long), as a (negative) 32-bit `long`. */
export const FIONBIO = 0x8004667e | 0;
/** FIONREAD: _IOR('f', 127, u_long). On a datagram socket Windows reports every byte waiting in
 * the receive buffer (not the first datagram's, as Linux does). */
export const FIONREAD = 0x4004667f;
/** FD_READ of WSAEventSelect. */
export const FD_READ = 0x01;
/** FD_WRITE of WSAEventSelect: recorded once at selection, then after each send that would
 * block, once the socket has room again. */
export const FD_WRITE = 0x02;
/** IPPROTO_IP, the level of the IPv4 options (0 on both). */
export const IPPROTO_IP = 0;
/** IP_MTU_DISCOVER (ws2ipdef.h, Windows 10): a PMTUD_STATE. Not Linux's 10. */
export const IP_MTU_DISCOVER = 71;
/** IP_MTU (ws2ipdef.h): the system's estimate of the path MTU, on a connected socket. */
export const IP_MTU = 73;
/** PMTUD_STATE values (ws2ipdef.h); Linux numbers them differently (DO is 2 there). */
export const IP_PMTUDISC_DO = 1;
export const IP_PMTUDISC_DONT = 2;
/** DF on every datagram, sends limited by the interface MTU only (the cached path MTU ignored). */
export const IP_PMTUDISC_PROBE = 3;
/** sizeof(WSANETWORKEVENTS): long lNetworkEvents, int iErrorCode[FD_MAX_EVENTS = 10]. */
export const WSANETWORKEVENTS_BYTES = 44;
/** SOL_SOCKET on Windows (not Linux's 1). */
export const SOL_SOCKET = 0xffff;
/** SO_SNDBUF and SO_RCVBUF on Windows. */
export const SO_SNDBUF = 0x1001;
export const SO_RCVBUF = 0x1002;
/** INVALID_SOCKET: (SOCKET)~0. */
export const INVALID_SOCKET = 0xffffffffffffffffn;
/** SOCKET_ERROR. */
export const SOCKET_ERROR = -1;
/** sizeof(struct sockaddr_in). */
export const SOCKADDR_IN_BYTES = 16;

/** The Winsock error codes (winerror.h, WSA*) xvpn names. */
export const WsaError = {
  WSAEINTR: 10004,
  WSAEBADF: 10009,
  WSAEACCES: 10013,
  WSAEFAULT: 10014,
  WSAEINVAL: 10022,
  WSAEMFILE: 10024,
  /** Non-blocking socket: nothing to receive now (or the send buffer is full). */
  WSAEWOULDBLOCK: 10035,
  WSAENOTSOCK: 10038,
  /** A datagram longer than the buffer (its start was kept). */
  WSAEMSGSIZE: 10040,
  WSAEAFNOSUPPORT: 10047,
  WSAEADDRINUSE: 10048,
  WSAEADDRNOTAVAIL: 10049,
  WSAENETDOWN: 10050,
  WSAENETUNREACH: 10051,
  WSAENETRESET: 10052,
  WSAENOBUFS: 10055,
  /** An ICMP port unreachable for an earlier send (UDP, SIO_UDP_CONNRESET on). */
  WSAECONNRESET: 10054,
  WSAECONNREFUSED: 10061,
  WSAEHOSTUNREACH: 10065,
  WSANOTINITIALISED: 10093,
} as const;

const names = new Map<number, string>(Object.entries(WsaError).map(([k, v]) => [v, k]));

/** The symbolic name of a Winsock error, or `error <n>`. */
export function wsaErrorName(code: number): string {
  return names.get(code) ?? `error ${code}`;
}

/** Writes an IPv4 `sockaddr_in` for `ip` (a u32, a.b.c.d = a<<24...) and `port` into `out`. */
export function encodeSockaddrIn(out: Uint8Array, ip: number, port: number): void {
  if (out.byteLength < SOCKADDR_IN_BYTES) throw new RangeError("sockaddr_in needs 16 bytes");
  if (!(port >= 0 && port <= 0xffff && Number.isInteger(port))) {
    throw new RangeError(`port ${port} out of range`);
  }
  const v = new DataView(out.buffer, out.byteOffset, SOCKADDR_IN_BYTES);
  v.setUint16(0, AF_INET, true); // sin_family: host order (little-endian on both targets)
  v.setUint16(2, port, false); // sin_port: network order
  v.setUint32(4, ip >>> 0, false); // sin_addr: network order
  out.fill(0, 8, SOCKADDR_IN_BYTES);
}

/** Reads an IPv4 `sockaddr_in`: its address (u32) and port, or undefined when not AF_INET. */
export function decodeSockaddrIn(b: Uint8Array): { ip: number; port: number } | undefined {
  if (b.byteLength < 8) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, 8);
  if (v.getUint16(0, true) !== AF_INET) return undefined;
  return { ip: v.getUint32(4, false), port: v.getUint16(2, false) };
}
