/**
 * The one private FFI symbol table for libc (`libc.so.6`), shared by every module that makes
 * system calls (TUN devices, and the batched UDP socket of the data path: recvmmsg/sendmmsg).
 *
 * To add a call, add an entry to {@link LIBC_SYMBOLS}; the library is opened lazily, once per
 * isolate (a Worker gets its own copy, which is what the thread-local `errno` needs anyway).
 *
 * Conventions for entries, because they decide whether V8 can use its fast-call path
 * (20–60 ns instead of microseconds):
 * - 64-bit parameters (`size_t`, `unsigned long`, `nfds_t`) are `"usize"`/`"u64"` and must be
 *   passed as BigInt; passing a JS number makes Deno take the slow path.
 * - `ssize_t` results are declared `"i32"`: on x86_64 and aarch64 the callee fills the whole
 *   return register and reading its low 32 bits is exact for any count below 2 GiB (and keeps
 *   -1 as -1), while a 64-bit result would allocate a BigInt per call.
 * - Memory the kernel reads or writes is passed as `"buffer"` (a Uint8Array). A buffer whose
 *   address ends up inside a C struct, or that a `nonblocking` call uses, must stay referenced
 *   from JS until the call is over, or the GC may free it underneath the kernel.
 * - A `nonblocking: true` call runs on a helper thread (~35 µs per call), so `errno` set by it
 *   is that thread's and cannot be read afterwards; use such calls only where the result alone
 *   is enough (poll). Variants share a C function through `name` (see `poll_wait`).
 *
 * Variadic C functions (open, ioctl, fcntl) are declared with their fixed arity; on the
 * System V x86_64 and AAPCS64 ABIs integer/pointer varargs are passed exactly like fixed ones.
 *
 * @module
 */

/** The libc functions xvpn calls, as a `Deno.dlopen` symbol table. Extend here, nowhere else. */
export const LIBC_SYMBOLS = {
  /** int open(const char *path, int flags, mode_t mode) */
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  /** int flock(int fd, int operation) */
  flock: { parameters: ["i32", "i32"], result: "i32" },
  /** int close(int fd) */
  close: { parameters: ["i32"], result: "i32" },
  /** ssize_t read(int fd, void *buf, size_t count) — result truncated to i32, see above. */
  read: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  /** ssize_t write(int fd, const void *buf, size_t count) — result truncated to i32. */
  write: { parameters: ["i32", "buffer", "usize"], result: "i32" },
  /** int ioctl(int fd, unsigned long request, void *arg) */
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  /** The same ioctl with an integer argument (e.g. TUNSETOFFLOAD's flags). */
  ioctl_int: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  /** int fcntl(int fd, int cmd, int arg) */
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** int poll(struct pollfd *fds, nfds_t nfds, int timeout) — synchronous; use timeout 0. */
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  /** poll() on a helper thread, for waiting without blocking the event loop. errno is lost. */
  poll_wait: {
    name: "poll",
    parameters: ["buffer", "u64", "i32"],
    result: "i32",
    nonblocking: true,
  },
  /** int eventfd(unsigned int initval, int flags) */
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  /** int socket(int domain, int type, int protocol) */
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  /** int bind(int fd, const struct sockaddr *addr, socklen_t addrlen) */
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** int getsockname(int fd, struct sockaddr *addr, socklen_t *addrlen) — addrlen is in/out. */
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  /** int setsockopt(int fd, int level, int optname, const void *optval, socklen_t optlen) */
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  /** int getsockopt(int fd, int level, int optname, void *optval, socklen_t *optlen) */
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  /**
   * int recvmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags,
   * struct timespec *timeout) — the timeout pointer is declared `usize` so that callers pass
   * `0n` (NULL; xvpn only uses MSG_DONTWAIT) and stay on the fast-call path.
   */
  recvmmsg: { parameters: ["i32", "buffer", "u32", "i32", "usize"], result: "i32" },
  /** int sendmmsg(int fd, struct mmsghdr *msgvec, unsigned int vlen, int flags) */
  sendmmsg: { parameters: ["i32", "buffer", "u32", "i32"], result: "i32" },
  /** int connect(int fd, const struct sockaddr *addr, socklen_t addrlen) */
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  /** ssize_t send(int fd, const void *buf, size_t len, int flags) — result truncated to i32. */
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  /** ssize_t recv(int fd, void *buf, size_t len, int flags) — result truncated to i32. */
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "i32" },
  /** int *__errno_location(void) — glibc's address of the calling thread's errno. */
  __errno_location: { parameters: [], result: "pointer" },
  /** char *strerror(int errnum) */
  strerror: { parameters: ["i32"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The callable symbols of libc. */
export type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>["symbols"];

/** Flags and constants from the Linux x86_64/aarch64 UAPI headers that the FFI callers use. */
export const O_RDWR = 0o2;
/** Open in non-blocking mode. */
export const O_NONBLOCK = 0o4000;
/** Close the fd across exec (so spawned `ip`/`nft` processes do not inherit the TUN fd). */
export const O_CLOEXEC = 0o2000000;
/** eventfd: non-blocking. */
export const EFD_NONBLOCK = O_NONBLOCK;
/** eventfd: close on exec. */
export const EFD_CLOEXEC = O_CLOEXEC;
/** poll: data to read. */
export const POLLIN = 0x001;
/** poll: writing will not block. */
export const POLLOUT = 0x004;
/** poll: error condition. */
export const POLLERR = 0x008;
/** poll: hang up. */
export const POLLHUP = 0x010;
/** poll: fd not open. */
export const POLLNVAL = 0x020;

/** Socket address family IPv4 (linux/socket.h). */
export const AF_INET = 2;
/** Socket address family IPv6 (linux/socket.h). */
export const AF_INET6 = 10;
/** Datagram socket type (linux/net.h). */
export const SOCK_DGRAM = 2;
/** socket(): create non-blocking; same bit as O_NONBLOCK (linux/net.h). */
export const SOCK_NONBLOCK = O_NONBLOCK;
/** socket(): create close-on-exec; same bit as O_CLOEXEC. */
export const SOCK_CLOEXEC = O_CLOEXEC;
/** setsockopt level for socket options (asm-generic/socket.h). */
export const SOL_SOCKET = 1;
/** Send buffer size; the kernel doubles the value and caps it at net.core.wmem_max. */
export const SO_SNDBUF = 7;
/** Receive buffer size; the kernel doubles the value and caps it at net.core.rmem_max. */
export const SO_RCVBUF = 8;
/** As SO_SNDBUF but ignores wmem_max; needs CAP_NET_ADMIN. */
export const SO_SNDBUFFORCE = 32;
/** As SO_RCVBUF but ignores rmem_max; needs CAP_NET_ADMIN. */
export const SO_RCVBUFFORCE = 33;
/** getsockopt: the socket's memory counters, u32[SK_MEMINFO_VARS] (linux/sock_diag.h). */
export const SO_MEMINFO = 55;
/** Binds a socket to one network device (value: its name); needs CAP_NET_RAW (socket(7)). */
export const SO_BINDTODEVICE = 25;
/** setsockopt/cmsg level for UDP options (IPPROTO_UDP, netinet/in.h). */
export const SOL_UDP = 17;
/** UDP generic segmentation offload: segment size, socket-wide or per message (linux/udp.h). */
export const UDP_SEGMENT = 103;
/** recv/send flag: do not block this call (linux/socket.h). */
export const MSG_DONTWAIT = 0x40;
/** msg_flags on receive: the datagram was longer than the buffer and was cut (linux/socket.h). */
export const MSG_TRUNC = 0x20;

/** setsockopt level for IPv4 options (SOL_IP = IPPROTO_IP, linux/in.h). */
export const SOL_IP = 0;
/** IPv4 path-MTU discovery mode of a socket: one of the IP_PMTUDISC_* values (linux/in.h). */
export const IP_MTU_DISCOVER = 10;
/** getsockopt: the path MTU the kernel knows for a connected socket's destination (linux/in.h). */
export const IP_MTU = 14;
/** The TOS byte of outgoing packets; as a cmsg on send, per datagram (linux/in.h). */
export const IP_TOS = 1;
/** Deliver each datagram's TOS byte as an IP_TOS cmsg on receive (linux/in.h). */
export const IP_RECVTOS = 13;
/** Receive (IP_PKTINFO cmsg: the local address a datagram came to) and send from a chosen
 * source address (struct in_pktinfo: ifindex, spec_dst, addr) (linux/in.h). */
export const IP_PKTINFO = 8;
/** setsockopt level for IPv6 options (SOL_IPV6 = IPPROTO_IPV6, linux/in6.h). */
export const SOL_IPV6 = 41;
/** 0: an AF_INET6 socket also takes IPv4, as ::ffff:a.b.c.d (linux/in6.h). */
export const IPV6_V6ONLY = 26;
/** IPv6 path-MTU discovery mode (IPV6_PMTUDISC_* = IP_PMTUDISC_* values) (linux/in6.h). */
export const IPV6_MTU_DISCOVER = 23;
/** getsockopt: the path MTU of a connected IPv6 socket (linux/in6.h). */
export const IPV6_MTU = 24;
/** Deliver the traffic class of each datagram as an IPV6_TCLASS cmsg (linux/in6.h). */
export const IPV6_RECVTCLASS = 66;
/** The traffic class (DSCP and ECN) of outgoing packets; per datagram as a cmsg (int). */
export const IPV6_TCLASS = 67;
/** Deliver struct in6_pktinfo (local address, ifindex) as an IPV6_PKTINFO cmsg (linux/in6.h). */
export const IPV6_RECVPKTINFO = 49;
/** cmsg type of struct in6_pktinfo, on receive and to choose the source address on send. */
export const IPV6_PKTINFO = 50;
/** Set DF; a send larger than the known path MTU fails with EMSGSIZE (linux/in.h). */
export const IP_PMTUDISC_DO = 2;
/** Set DF but ignore the known path MTU (only the device MTU limits a send) (linux/in.h). */
export const IP_PMTUDISC_PROBE = 3;

let lib: Deno.DynamicLibrary<typeof LIBC_SYMBOLS> | undefined;
let errnoCell: Int32Array | undefined;

/**
 * The libc symbols, opening `libc.so.6` on first use (Linux/glibc only; needs `--allow-ffi`).
 * Throws a plain Error naming the platform when called anywhere else.
 */
export function libc(): Libc {
  if (lib) return lib.symbols;
  if (Deno.build.os !== "linux") {
    throw new Error(`libc FFI is only wired up for Linux, not ${Deno.build.os}`);
  }
  lib = Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
  return lib.symbols;
}

/**
 * The calling thread's errno. Call it right after the failing synchronous FFI call: no other
 * libc call may run in between. The thread-local errno cell is mapped once as an Int32Array, so
 * reading it is a plain memory load (~1 ns) rather than an FFI call; that is sound because this
 * isolate always runs on the same OS thread (a Worker has its own module instance and cell).
 */
export function errno(): number {
  if (!errnoCell) {
    const p = libc().__errno_location();
    if (p === null) throw new Error("__errno_location() returned NULL");
    errnoCell = new Int32Array(Deno.UnsafePointerView.getArrayBuffer(p, 4));
  }
  return errnoCell[0]!;
}

/**
 * The calling thread's errno cell itself (see {@link errno}), for hot paths that read it inline,
 * with no function call between the failing FFI call and the read: V8 may service interrupts
 * (garbage collection, installing optimized code) on entry to a function, and runtime code run
 * there can overwrite errno. Valid for this isolate's thread only.
 */
export function errnoView(): Int32Array {
  if (!errnoCell) errno();
  return errnoCell!;
}

/** Linux errno numbers by name (the ones worth naming in messages and branching on). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENFILE: 23,
  EMFILE: 24,
  ENOTTY: 25,
  ENOSPC: 28,
  EPIPE: 32,
  ERANGE: 34,
  ENOSYS: 38,
  EBADFD: 77,
  ENOTSOCK: 88,
  EMSGSIZE: 90,
  ENOPROTOOPT: 92,
  EPROTONOSUPPORT: 93,
  EOPNOTSUPP: 95,
  EAFNOSUPPORT: 97,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ENETDOWN: 100,
  ENETUNREACH: 101,
  ECONNRESET: 104,
  ENOBUFS: 105,
  ETIMEDOUT: 110,
  ECONNREFUSED: 111,
  EHOSTUNREACH: 113,
} as const;

const errnoNames = new Map<number, string>(Object.entries(Errno).map(([k, v]) => [v, k]));

/** The symbolic name of an errno value (`EPERM`), or `errno <n>` for ones not in {@link Errno}. */
export function errnoName(n: number): string {
  return errnoNames.get(n) ?? `errno ${n}`;
}

/** libc's description of an errno value ("Operation not permitted"). */
export function strerror(n: number): string {
  const p = libc().strerror(n);
  return p === null ? `errno ${n}` : Deno.UnsafePointerView.getCString(p);
}

/** A failed system call, carrying its errno; `code` is the symbolic name (`EPERM`). */
export class ErrnoError extends Error {
  /** Numeric errno. */
  readonly errno: number;
  /** Symbolic errno name, e.g. `EAGAIN`. */
  readonly code: string;
  constructor(message: string, errnoValue: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "ErrnoError";
    this.errno = errnoValue;
    this.code = errnoName(errnoValue);
  }
}

/** A NUL-terminated copy of `s` for passing a path to C (keep it referenced during the call). */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}
