/**
 * A Linux UDP socket for the fast data path: synchronous, non-blocking, batched with
 * recvmmsg(2)/sendmmsg(2), optionally with UDP GSO (`UDP_SEGMENT`), and allocation-free per
 * datagram once opened.
 *
 * The caller (a data-plane Worker that waits in poll()) owns the packet buffers, "slots". At
 * open time the socket builds every C struct once, in one ArrayBuffer per direction, with iovecs
 * pointing straight at the slots; a receive or send only rewrites a few integers in that memory
 * and makes one FFI call. Per-datagram results and parameters travel through typed arrays
 * (`rxLen`/`rxIp`/`rxPort`, `txLen`/`txIp`/`txPort`), never through objects.
 *
 * Memory safety: the kernel writes into the slots through raw addresses, so the slots must stay
 * alive and attached for the socket's lifetime. The socket keeps references to them (and to its
 * struct memory); the caller must never transfer (`postMessage` transfer list) or otherwise
 * detach a slot's ArrayBuffer while the socket is open.
 *
 * Struct layouts on x86_64/aarch64 Linux (man 2 recvmmsg, man 3type iovec, linux/socket.h):
 *
 * ```text
 * struct iovec   { void *iov_base; size_t iov_len; }                             16 bytes
 * struct msghdr  { void *msg_name; socklen_t msg_namelen; (pad 4)
 *                  struct iovec *msg_iov; size_t msg_iovlen;
 *                  void *msg_control; size_t msg_controllen; int msg_flags; (pad 4) }  56 bytes
 * struct mmsghdr { struct msghdr msg_hdr; unsigned int msg_len; (pad 4) }           64 bytes
 * struct cmsghdr { size_t cmsg_len; int cmsg_level; int cmsg_type; data... }       16 + data
 * ```
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
  IP_PKTINFO,
  IP_RECVTOS,
  IP_TOS,
  IPV6_PKTINFO,
  IPV6_RECVPKTINFO,
  IPV6_RECVTCLASS,
  IPV6_TCLASS,
  IPV6_V6ONLY,
  type Libc,
  libc,
  MSG_DONTWAIT,
  MSG_TRUNC,
  SO_BINDTODEVICE,
  SO_MEMINFO,
  SO_RCVBUF,
  SO_RCVBUFFORCE,
  SO_SNDBUF,
  SO_SNDBUFFORCE,
  SOCK_CLOEXEC,
  SOCK_DGRAM,
  SOCK_NONBLOCK,
  SOL_IP,
  SOL_IPV6,
  SOL_SOCKET,
  SOL_UDP,
  strerror,
  UDP_SEGMENT,
} from "../_libc.ts";
import { formatIPv4, parseIPv4 } from "../../lib/ip.ts";
import { formatIPv6, parseIPv6 } from "../../lib/ip6.ts";
import { GSO_MAX_SEGMENTS, planGso, type SendBatch } from "./gso.ts";
import {
  type BatchUdp,
  type LocalAddress,
  MAX_LOCALS,
  NO_LOCAL,
  type SocketMemory,
} from "./batch.ts";
import {
  sockaddr6IsMapped,
  sockaddr6MappedIp,
  SOCKADDR_IN6_BYTES,
  SOCKADDR_IN_BYTES,
  sockaddrFamily,
  sockaddrIp,
  sockaddrPort,
  writeSockaddrDest,
  writeSockaddrIn,
  writeSockaddrIn6,
  writeSockaddrMapped,
} from "./sockaddr.ts";

/** Options for {@link LinuxUdpSocket.open}. */
export interface LinuxUdpOptions {
  /**
   * Address to bind: IPv4 (`"0.0.0.0"` for all), or IPv6 (`"::"` for all, IPv4 included as
   * mapped addresses: dual stack).
   */
  host: string;
  /** Port to bind; 0 lets the kernel pick one (see {@link LinuxUdpSocket.localPort}). */
  port: number;
  /**
   * Receive buffers, 1..1024 of them, each non-empty; each its own ArrayBuffer or distinct,
   * non-overlapping regions of one. {@link LinuxUdpSocket.recv} fills them in order.
   */
  rxSlots: Uint8Array[];
  /** Send buffers, 0..1024 of them; the caller writes datagrams into them before `send()`. */
  txSlots: Uint8Array[];
  /**
   * Try UDP GSO (`UDP_SEGMENT`) on send; {@link LinuxUdpSocket.gsoEnabled} reports whether the
   * kernel accepts it.
   */
  gso?: boolean;
  /** SO_SNDBUF in bytes (tries SO_SNDBUFFORCE first, which ignores `net.core.wmem_max` as root). */
  sndbuf?: number;
  /** SO_RCVBUF in bytes (tries SO_RCVBUFFORCE first, which ignores `net.core.rmem_max` as root). */
  rcvbuf?: number;
  /**
   * Per-datagram TOS: receive each datagram's TOS byte (`rxTos`, IP_RECVTOS) and send each with
   * its own (`txTos`, an IP_TOS cmsg): DSCP marks for the game and ECN across the tunnel.
   */
  tos?: boolean;
  /**
   * Learn the local address each datagram came to (IP_PKTINFO / IPV6_PKTINFO, `rxLocal`) and
   * send each from the one its `txLocal` names: a server reached at a second address of its
   * host (a floating or service address) answers from that address, as wireguard-go's sticky
   * sockets do, instead of from the route's primary one, which the client would drop.
   */
  pktinfo?: boolean;
  /**
   * Bind to this network device (SO_BINDTODEVICE): datagrams leave through it whatever the
   * routing table prefers, and only datagrams that arrived on it are received. Multipath uses
   * this to keep one socket per interface (Wi-Fi, mobile). Needs CAP_NET_RAW.
   */
  device?: string;
}

/** sizeof(struct mmsghdr) on 64-bit Linux. */
const MMSGHDR_BYTES = 64;
/** sizeof(struct iovec) on 64-bit Linux. */
const IOVEC_BYTES = 16;
/** CMSG_SPACE(sizeof(uint16_t)): 16-byte cmsghdr + 2 data bytes, padded to 8 (man 3 cmsg). */
const CMSG_GSO_SPACE = 24;
/** CMSG_LEN(sizeof(uint16_t)): what cmsg_len holds for the GSO size. */
const CMSG_GSO_LEN = 18;
/** CMSG_SPACE(sizeof(int)) for IP_TOS / IPV6_TCLASS on send, and CMSG_LEN(sizeof(int)). */
const CMSG_TOS_SPACE = 24;
const CMSG_TOS_LEN = 20;
/** struct in_pktinfo (ifindex, spec_dst, addr: 12 bytes): CMSG_SPACE and CMSG_LEN. */
const CMSG_PKTINFO_SPACE = 32;
const CMSG_PKTINFO_LEN = 28;
/** struct in6_pktinfo (addr 16, ifindex 4): CMSG_SPACE and CMSG_LEN. */
const CMSG_PKTINFO6_SPACE = 40;
const CMSG_PKTINFO6_LEN = 36;
/** Per message on send: GSO, TOS (or traffic class), source address; each when used. */
const TX_CTL_BYTES = CMSG_GSO_SPACE + CMSG_TOS_SPACE + CMSG_PKTINFO6_SPACE;
/** Per entry on receive: room for the TOS (or traffic class) and PKTINFO cmsgs, both families
 * (a dual-stack socket gets IPv4 ones for mapped peers). */
const RX_CTL_BYTES = 128;
/** Every socket address slot is a sockaddr_in6 (an IPv4 one uses its first 16 bytes). */
const NAME_BYTES = SOCKADDR_IN6_BYTES;
/** SO_MEMINFO: SK_MEMINFO_VARS (9) u32 counters. */
const MEMINFO_BYTES = 36;
/** The u32-index stride of one mmsghdr in the struct memory. */
const MSG_U32 = MMSGHDR_BYTES / 4;
/** u32 indexes of mmsghdr fields (byte offset / 4; pointers and size_t are lo/hi pairs). */
const NAME = 0, NAMELEN = 2, IOV = 4, IOVLEN = 6, CONTROL = 8, CONTROLLEN = 10, FLAGS = 12;
/** u32 index of msg_len, right after the 56-byte msghdr. */
const MSG_LEN = 14;
/** recvmmsg/sendmmsg clamp vlen to UIO_MAXIOV (linux/uio.h); more slots would sit unused. */
const MAX_SLOTS = 1024;
/**
 * send() errors that mean "the socket or device queue is full right now": send() stops and
 * reports what went out, and the caller retries the rest later (after POLLOUT) or drops it.
 * For an unconnected UDP socket without IP_RECVERR the kernel already hides ENOBUFS from a full
 * qdisc (udp_send_skb), so in practice this is EAGAIN from a full SO_SNDBUF.
 */
function isBackpressure(e: number): boolean {
  return e === Errno.EAGAIN || e === Errno.ENOBUFS || e === Errno.ENOMEM;
}

/** Errors that mean the socket itself is unusable (or our struct memory is wrong): throw. */
function isFatal(e: number): boolean {
  return e === Errno.EBADF || e === Errno.ENOTSOCK || e === Errno.EFAULT;
}

/** Address of a buffer's first byte (including a subarray's byteOffset), as a BigInt. */
function addressOf(buf: Uint8Array): bigint {
  const p = Deno.UnsafePointer.of(buf);
  return p === null ? 0n : BigInt(Deno.UnsafePointer.value(p));
}

/** Stores a 64-bit pointer/size as two u32 halves (little-endian) at u32 index `i`. */
function put64(u32: Uint32Array, i: number, v: bigint): void {
  u32[i] = Number(v & 0xffffffffn);
  u32[i + 1] = Number(v >> 32n);
}

/** Why `host:port` cannot be bound, as the end of an error message. */
function bindHint(e: number): string {
  switch (e) {
    case Errno.EADDRINUSE:
      return ": another process uses that port";
    case Errno.EADDRNOTAVAIL:
      return ": no local interface has that address";
    case Errno.EACCES:
      return ": ports below 1024 need root or CAP_NET_BIND_SERVICE";
    default:
      return "";
  }
}

/**
 * A non-blocking, batching UDP socket (IPv4, or IPv6 with IPv4 as mapped addresses) over libc FFI. Open with {@link LinuxUdpSocket.open};
 * use from one thread (the Worker that opened it: errno and the FFI handles are per isolate).
 */
export class LinuxUdpSocket implements BatchUdp {
  /** The socket's file descriptor (for poll()); -1 after close(). */
  get fd(): number {
    return this.#closed ? -1 : this.#fd;
  }
  /** The bound port (the kernel's choice when opened with port 0). */
  readonly localPort: number;
  /** The bound address (dotted quad, or IPv6 text). */
  readonly localHost: string;
  /** 4 for an AF_INET socket, 6 for AF_INET6 (bound to `::`, it also takes IPv4). */
  readonly family: 4 | 6;
  /** The effective SO_SNDBUF in bytes, as the kernel reports it (it doubles what was asked). */
  readonly sndbuf: number;
  /** The effective SO_RCVBUF in bytes, as the kernel reports it (it doubles what was asked). */
  readonly rcvbuf: number;

  /** Per-slot results of the last {@link recv}: bytes received, or -1 when truncated. */
  readonly rxLen: Int32Array;
  /** Per-slot source IPv4 address of the last {@link recv} (u32, host order). */
  readonly rxIp: Uint32Array;
  /** Per-slot source port of the last {@link recv}. */
  readonly rxPort: Uint16Array;
  /** Per-slot datagram length for {@link send}, 0..slot length; set by the caller. */
  readonly txLen: Int32Array;
  /** Per-slot destination IPv4 address for {@link send} (u32, host order); set by the caller. */
  readonly txIp: Uint32Array;
  /** Per-slot destination port for {@link send}; set by the caller. */
  readonly txPort: Uint16Array;
  /** Most datagrams merged into one GSO send (a socket behind a slow link keeps bursts small). */
  gsoSegments = GSO_MAX_SEGMENTS;
  /** Per-slot TOS byte of the last {@link recv} (0 unless opened with `tos`). */
  readonly rxTos: Uint8Array;
  /** Per-slot TOS byte for {@link send} (used when opened with `tos`); set by the caller. */
  readonly txTos: Uint8Array;
  /** Per-slot: the source of the last {@link recv} is IPv6 (in {@link rxIp6}). */
  readonly rxV6: Uint8Array;
  /** Per-slot IPv6 source of the last {@link recv}, 16 bytes from 16 * slot. */
  readonly rxIp6: Uint8Array;
  /** Per-slot local address of the last {@link recv} (index into {@link locals}; 0 unknown). */
  readonly rxLocal: Uint8Array;
  /** Per-slot: the destination for {@link send} is IPv6 (in {@link txIp6}); set by the caller. */
  readonly txV6: Uint8Array;
  /** Per-slot IPv6 destination for {@link send}, 16 bytes from 16 * slot. */
  readonly txIp6: Uint8Array;
  /** Per-slot local address to send from (index into {@link locals}; 0: the kernel picks). */
  readonly txLocal: Uint8Array;
  /** Local addresses datagrams came to (with `pktinfo`), by index; [0] is "unknown". */
  readonly locals: LocalAddress[] = [NO_LOCAL];

  readonly #c: Libc;
  /** This thread's errno, read inline right after a failed call (see errnoView()). */
  readonly #errno: Int32Array = errnoView();
  readonly #fd: number;
  #closed = false;
  #gso: boolean;
  #txDropped = 0;
  #lastTxErrno = 0;
  #rxErrors = 0;
  #lastRxErrno = 0;
  /** SO_MEMINFO's u32[9] and its length, made once. */
  readonly #mem = new Uint32Array(MEMINFO_BYTES / 4);
  readonly #memBytes = new Uint8Array(this.#mem.buffer);
  readonly #memLen = new Uint32Array(1);
  readonly #memLenBytes = new Uint8Array(this.#memLen.buffer);

  // Everything below is referenced for the socket's lifetime: the kernel reaches it by address.
  readonly #rxSlots: readonly Uint8Array[];
  readonly #txSlots: readonly Uint8Array[];
  /** rx: mmsghdr[n] | iovec[n] | sockaddr_in[n] | control[n] (with `tos`). */
  readonly #rxMem: Uint8Array;
  readonly #rxU32: Uint32Array;
  readonly #rxNameOff: number;
  readonly #rxCtlOff: number;
  readonly #tos: boolean;
  readonly #pktinfo: boolean;
  /** msg_namelen of this family's socket address. */
  readonly #nameLen: number;
  /** How many rx entries the kernel overwrote last time (their msg_namelen needs a reset). */
  #rxDirty = 0;
  /** tx: mmsghdr[m] | iovec[m] | sockaddr_in[m] | cmsg[m]; iovec/sockaddr per slot, cmsg per message. */
  readonly #txMem: Uint8Array;
  readonly #txU32: Uint32Array;
  readonly #txIovOff: number;
  readonly #txNameOff: number;
  readonly #txCmsgOff: number;
  /** `#txMem` from message k on, one view per k, so sendmmsg can resume mid-batch. */
  readonly #txMsgAt: Uint8Array[];
  /** Slot lengths, so send() validates txLen without touching the slot objects. */
  readonly #txCap: Int32Array;
  /** Address halves of each slot's sockaddr and iovec, for pointing a message at a slot. */
  readonly #txNameLo: Uint32Array;
  readonly #txNameHi: Uint32Array;
  readonly #txIovLo: Uint32Array;
  readonly #txIovHi: Uint32Array;
  /** Per message of the current send: its first slot and how many datagrams it carries. */
  readonly #msgFirst: Int32Array;
  readonly #msgCount: Int32Array;
  /** The tx arrays as planGso() reads them. */
  readonly #batch: SendBatch;
  /** Address halves of message k's control area. */
  readonly #ctlLo: Uint32Array;
  readonly #ctlHi: Uint32Array;

  /**
   * Opens `socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC)`, sets the buffer sizes,
   * binds `host:port` and builds the batch structs over the slots. Errors name `host:port`, the
   * failing call and the errno (ErrnoError for system call failures, with a hint such as
   * "another process uses that port" for EADDRINUSE); bad options throw a TypeError/RangeError.
   */
  static open(o: LinuxUdpOptions): LinuxUdpSocket {
    const where = `UDP ${o.host.includes(":") ? `[${o.host}]` : o.host}:${o.port}`;
    const ip = parseIPv4(o.host);
    const ip6 = ip === undefined ? parseIPv6(o.host) : undefined;
    if (ip === undefined && ip6 === undefined) {
      throw new TypeError(`cannot open ${where}: "${o.host}" is not an IPv4 or IPv6 address`);
    }
    const v6 = ip6 !== undefined;
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
      throw new RangeError(`cannot open ${where}: port must be an integer 0..65535`);
    }
    checkSlots(where, "rxSlots", o.rxSlots, 1);
    checkSlots(where, "txSlots", o.txSlots, 0);
    const c = libc();
    const err = errnoView(); // read inline right after each call, see errnoView()
    const fd = c.socket(v6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw sysError(`cannot open ${where}: socket() failed`, err[0]!);
    try {
      const sndbuf = setBuffer(c, fd, where, SO_SNDBUFFORCE, SO_SNDBUF, o.sndbuf);
      const rcvbuf = setBuffer(c, fd, where, SO_RCVBUFFORCE, SO_RCVBUF, o.rcvbuf);
      if (o.device !== undefined) bindToDevice(c, fd, where, o.device);
      // `::` takes IPv4 too (as ::ffff:a.b.c.d), whatever net.ipv6.bindv6only says.
      if (v6) {
        const any = ip6!.every((x) => x === 0);
        const e = setInt(c, fd, SOL_IPV6, IPV6_V6ONLY, any ? 0 : 1);
        if (e !== 0) throw sysError(`cannot open ${where}: setsockopt(IPV6_V6ONLY) failed`, e);
      }
      const addr = new Uint8Array(NAME_BYTES);
      const nameLen = v6 ? SOCKADDR_IN6_BYTES : SOCKADDR_IN_BYTES;
      if (v6) writeSockaddrIn6(addr, 0, ip6!, 0, o.port);
      else writeSockaddrIn(addr, 0, ip!, o.port);
      if (c.bind(fd, addr, nameLen) < 0) {
        const e = err[0]!;
        throw sysError(`cannot open ${where}: bind() failed`, e, bindHint(e));
      }
      const len = new Uint32Array([NAME_BYTES]);
      if (c.getsockname(fd, addr, new Uint8Array(len.buffer)) < 0) {
        throw sysError(`cannot open ${where}: getsockname() failed`, err[0]!);
      }
      // Probe UDP_SEGMENT with size 0 (= no socket-wide GSO; we set it per message): kernels
      // before 4.18 answer ENOPROTOOPT. Devices that cannot do it show up later, as EIO on send.
      const gso = o.gso === true && setInt(c, fd, SOL_UDP, UDP_SEGMENT, 0) === 0;
      // The IPv4 options work on an AF_INET6 socket too, for its mapped (IPv4) peers.
      const opts: [boolean | undefined, number, number, string][] = [
        [o.tos, SOL_IP, IP_RECVTOS, "IP_RECVTOS"],
        [o.tos && v6, SOL_IPV6, IPV6_RECVTCLASS, "IPV6_RECVTCLASS"],
        [o.pktinfo, SOL_IP, IP_PKTINFO, "IP_PKTINFO"],
        [o.pktinfo && v6, SOL_IPV6, IPV6_RECVPKTINFO, "IPV6_RECVPKTINFO"],
      ];
      for (const [on, level, name, text] of opts) {
        if (!on) continue;
        const e = setInt(c, fd, level, name, 1);
        if (e !== 0) throw sysError(`cannot open ${where}: setsockopt(${text}) failed`, e);
      }
      return new LinuxUdpSocket(c, fd, o, {
        host: v6 ? formatIPv6(addr.subarray(8, 24)) : formatIPv4(sockaddrIp(addr, 0)),
        port: sockaddrPort(addr, 0),
        family: v6 ? 6 : 4,
        gso,
        sndbuf,
        rcvbuf,
      });
    } catch (err) {
      c.close(fd);
      throw err;
    }
  }

  private constructor(
    c: Libc,
    fd: number,
    o: LinuxUdpOptions,
    bound: {
      host: string;
      port: number;
      family: 4 | 6;
      gso: boolean;
      sndbuf: number;
      rcvbuf: number;
    },
  ) {
    this.#c = c;
    this.#fd = fd;
    this.localHost = bound.host;
    this.localPort = bound.port;
    this.family = bound.family;
    this.#nameLen = bound.family === 6 ? SOCKADDR_IN6_BYTES : SOCKADDR_IN_BYTES;
    this.#gso = bound.gso;
    this.sndbuf = bound.sndbuf;
    this.rcvbuf = bound.rcvbuf;
    this.#rxSlots = [...o.rxSlots];
    this.#txSlots = [...o.txSlots];
    const n = this.#rxSlots.length;
    const m = this.#txSlots.length;
    this.rxLen = new Int32Array(n);
    this.rxIp = new Uint32Array(n);
    this.rxPort = new Uint16Array(n);
    this.txLen = new Int32Array(m);
    this.txIp = new Uint32Array(m);
    this.txPort = new Uint16Array(m);
    this.rxTos = new Uint8Array(n);
    this.txTos = new Uint8Array(m);
    this.rxV6 = new Uint8Array(n);
    this.rxIp6 = new Uint8Array(16 * n);
    this.rxLocal = new Uint8Array(n);
    this.txV6 = new Uint8Array(m);
    this.txIp6 = new Uint8Array(16 * m);
    this.txLocal = new Uint8Array(m);
    this.#tos = o.tos === true;
    this.#pktinfo = o.pktinfo === true;
    const ctl = this.#tos || this.#pktinfo;

    // Receive side: entry i uses iovec i and sockaddr i, pointing at slot i, for good.
    const rxIovOff = n * MMSGHDR_BYTES;
    this.#rxNameOff = rxIovOff + n * IOVEC_BYTES;
    this.#rxCtlOff = this.#rxNameOff + n * NAME_BYTES;
    this.#rxMem = new Uint8Array(this.#rxCtlOff + (ctl ? n * RX_CTL_BYTES : 0));
    this.#rxU32 = new Uint32Array(this.#rxMem.buffer);
    const rxBase = addressOf(this.#rxMem);
    for (let i = 0; i < n; i++) {
      const slot = this.#rxSlots[i]!;
      const msg = i * MSG_U32;
      const iov = (rxIovOff + i * IOVEC_BYTES) / 4;
      put64(this.#rxU32, iov, addressOf(slot));
      put64(this.#rxU32, iov + 2, BigInt(slot.byteLength));
      put64(this.#rxU32, msg + NAME, rxBase + BigInt(this.#rxNameOff + i * NAME_BYTES));
      this.#rxU32[msg + NAMELEN] = NAME_BYTES;
      put64(this.#rxU32, msg + IOV, rxBase + BigInt(rxIovOff + i * IOVEC_BYTES));
      put64(this.#rxU32, msg + IOVLEN, 1n);
      if (ctl) {
        put64(this.#rxU32, msg + CONTROL, rxBase + BigInt(this.#rxCtlOff + i * RX_CTL_BYTES));
        this.#rxU32[msg + CONTROLLEN] = RX_CTL_BYTES;
      }
      // Without `tos` or `pktinfo`, msg_control stays NULL (msg_controllen 0): no ancillary data.
    }

    // Send side: iovec j and sockaddr j belong to slot j; message k (k <= j) is pointed at a
    // run of slots per send(); cmsg k is message k's GSO size, wired in once here.
    this.#txIovOff = m * MMSGHDR_BYTES;
    this.#txNameOff = this.#txIovOff + m * IOVEC_BYTES;
    this.#txCmsgOff = this.#txNameOff + m * NAME_BYTES;
    this.#txMem = new Uint8Array(this.#txCmsgOff + m * TX_CTL_BYTES);
    this.#txU32 = new Uint32Array(this.#txMem.buffer);
    this.#txMsgAt = [];
    this.#txCap = new Int32Array(m);
    this.#txNameLo = new Uint32Array(m);
    this.#txNameHi = new Uint32Array(m);
    this.#txIovLo = new Uint32Array(m);
    this.#txIovHi = new Uint32Array(m);
    this.#msgFirst = new Int32Array(m);
    this.#msgCount = new Int32Array(m);
    this.#batch = {
      len: this.txLen,
      ip: this.txIp,
      port: this.txPort,
      tos: this.#tos ? this.txTos : undefined,
      v6: this.txV6,
      ip6: this.txIp6,
      local: this.txLocal,
    };
    this.#ctlLo = new Uint32Array(m);
    this.#ctlHi = new Uint32Array(m);
    const txBase = addressOf(this.#txMem);
    for (let j = 0; j < m; j++) {
      const slot = this.#txSlots[j]!;
      this.#txCap[j] = slot.byteLength;
      this.#txMsgAt.push(this.#txMem.subarray(j * MMSGHDR_BYTES));
      const iovByte = this.#txIovOff + j * IOVEC_BYTES;
      put64(this.#txU32, iovByte / 4, addressOf(slot));
      const iovAddr = txBase + BigInt(iovByte);
      this.#txIovLo[j] = Number(iovAddr & 0xffffffffn);
      this.#txIovHi[j] = Number(iovAddr >> 32n);
      const nameByte = this.#txNameOff + j * NAME_BYTES;
      if (this.family === 4) writeSockaddrIn(this.#txMem, nameByte, 0, 0);
      else writeSockaddrMapped(this.#txMem, nameByte, 0, 0);
      const nameAddr = txBase + BigInt(nameByte);
      this.#txNameLo[j] = Number(nameAddr & 0xffffffffn);
      this.#txNameHi[j] = Number(nameAddr >> 32n);
      // Message j's control area: its cmsgs are written per send (#build), as each needs.
      const cmsgByte = this.#txCmsgOff + j * TX_CTL_BYTES;
      const ctlAddr = txBase + BigInt(cmsgByte);
      this.#ctlLo[j] = Number(ctlAddr & 0xffffffffn);
      this.#ctlHi[j] = Number(ctlAddr >> 32n);
      const msg = j * MSG_U32;
      this.#txU32[msg + NAMELEN] = this.#nameLen;
      put64(this.#txU32, msg + CONTROL, ctlAddr);
    }
  }

  /**
   * Whether send() merges runs into UDP GSO messages: asked for, accepted by the kernel at open,
   * and not since refused by a device (EIO), after which it stays off for this socket.
   */
  get gsoEnabled(): boolean {
    return this.#gso;
  }

  /**
   * Datagrams send() skipped because the kernel refused that one datagram for good (no route,
   * firewall EPERM, EMSGSIZE, EINVAL for port 0, ...); see {@link lastTxErrno}.
   */
  get txDropped(): number {
    return this.#txDropped;
  }

  /** errno of the last datagram counted in {@link txDropped} (0: none yet). */
  get lastTxErrno(): number {
    return this.#lastTxErrno;
  }

  /** recv() calls that failed with an unexpected, non-fatal errno (see {@link lastRxErrno}). */
  get rxErrors(): number {
    return this.#rxErrors;
  }

  /** errno of the last failure counted in {@link rxErrors} (0: none yet). */
  get lastRxErrno(): number {
    return this.#lastRxErrno;
  }

  /**
   * Receives up to `rxSlots.length` datagrams with one recvmmsg(MSG_DONTWAIT) and returns how
   * many arrived (0 when none is waiting, or on EINTR). Datagram i is in `rxSlots[i]`, its
   * length in `rxLen[i]` (-1 if it was longer than the slot: MSG_TRUNC, drop it) and its
   * source in `rxIp[i]`/`rxPort[i]`. EBADF, ENOTSOCK, EFAULT and EINVAL (a broken socket or
   * struct memory) throw an ErrnoError; any other error is counted in {@link rxErrors} and
   * reported as 0, so one odd failure does not stop the data path.
   */
  recv(): number {
    if (this.#closed) throw this.#closedError("recv");
    const u32 = this.#rxU32;
    // The kernel overwrites msg_namelen with the source address length; restore the buffer
    // size on the entries it used, so every entry offers the full 16 bytes again.
    const ctl = this.#tos || this.#pktinfo;
    for (let i = 0; i < this.#rxDirty; i++) {
      u32[i * MSG_U32 + NAMELEN] = NAME_BYTES;
      // ...and msg_controllen with what it received: give back the whole control area.
      if (ctl) u32[i * MSG_U32 + CONTROLLEN] = RX_CTL_BYTES;
    }
    this.#rxDirty = 0;
    const got = this.#c.recvmmsg(this.#fd, this.#rxMem, this.#rxSlots.length, MSG_DONTWAIT, 0n);
    if (got < 0) {
      const e = this.#errno[0]!;
      if (e === Errno.EAGAIN || e === Errno.EINTR) return 0;
      if (isFatal(e) || e === Errno.EINVAL) {
        throw sysError(`recvmmsg on UDP ${this.localHost}:${this.localPort} failed`, e);
      }
      this.#rxErrors++;
      this.#lastRxErrno = e;
      return 0;
    }
    this.#rxDirty = got;
    const mem = this.#rxMem;
    for (let i = 0; i < got; i++) {
      const msg = i * MSG_U32;
      this.rxLen[i] = (u32[msg + FLAGS]! & MSG_TRUNC) !== 0 ? -1 : u32[msg + MSG_LEN]!;
      const name = this.#rxNameOff + i * NAME_BYTES;
      this.rxPort[i] = sockaddrPort(mem, name);
      if (sockaddrFamily(mem, name) !== AF_INET6) {
        this.rxV6[i] = 0;
        this.rxIp[i] = sockaddrIp(mem, name);
      } else if (sockaddr6IsMapped(mem, name)) {
        this.rxV6[i] = 0; // an IPv4 peer of a dual-stack socket: the same as on an IPv4 one
        this.rxIp[i] = sockaddr6MappedIp(mem, name);
      } else {
        this.rxV6[i] = 1;
        this.rxIp[i] = 0;
        const at = 16 * i; // a plain copy: a subarray would be an allocation per datagram
        for (let b = 0; b < 16; b++) this.rxIp6[at + b] = mem[name + 8 + b]!;
      }
      this.rxTos[i] = 0;
      this.rxLocal[i] = 0;
      if (ctl) this.#readControl(i, u32[msg + CONTROLLEN]!);
    }
    return got;
  }

  /** Reads entry i's cmsgs: the TOS byte (or traffic class) and the local address. */
  #readControl(i: number, len: number): void {
    const mem = this.#rxMem, u32 = this.#rxU32;
    const base = this.#rxCtlOff + i * RX_CTL_BYTES;
    const end = base + Math.min(len, RX_CTL_BYTES);
    for (let off = base; off + 16 <= end;) {
      const cmsgLen = u32[off / 4]!; // a size_t; the high half is 0 for anything this small
      if (cmsgLen < 16 || off + cmsgLen > end) break;
      const level = u32[off / 4 + 2]!, type = u32[off / 4 + 3]!, data = off + 16;
      if (level === SOL_IP && type === IP_TOS) this.rxTos[i] = mem[data]!;
      else if (level === SOL_IPV6 && type === IPV6_TCLASS) this.rxTos[i] = mem[data]!;
      else if (level === SOL_IP && type === IP_PKTINFO) {
        // struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr }: addr is the
        // header's destination, the address the peer sent to.
        const ip = ((mem[data + 8]! << 24) | (mem[data + 9]! << 16) | (mem[data + 10]! << 8) |
          mem[data + 11]!) >>> 0;
        this.rxLocal[i] = this.#localIndex(false, ip, mem, data);
      } else if (level === SOL_IPV6 && type === IPV6_PKTINFO) {
        this.rxLocal[i] = this.#localIndex(true, 0, mem, data); // in6_pktinfo: addr first
      }
      off += (cmsgLen + 7) & ~7; // CMSG_ALIGN
    }
  }

  /** The index of a local address in {@link locals}, added when new (0 when the table is full). */
  #localIndex(v6: boolean, ip: number, mem: Uint8Array, at: number): number {
    const ls = this.locals;
    for (let k = 1; k < ls.length; k++) {
      const l = ls[k]!;
      if (l.v6 !== v6) continue;
      if (!v6) {
        if (l.ip === ip) return k;
        continue;
      }
      let same = true;
      for (let b = 0; b < 16 && same; b++) same = l.ip6[b] === mem[at + b];
      if (same) return k;
    }
    if (ls.length > MAX_LOCALS) return 0;
    const ip6 = v6 ? mem.slice(at, at + 16) : new Uint8Array(16);
    ls.push({ v6, ip, ip6, text: v6 ? formatIPv6(ip6) : formatIPv4(ip) });
    return ls.length - 1;
  }

  /**
   * Sends `txSlots[first, first + count)`, datagram j being `txLen[j]` bytes of `txSlots[j]` to
   * `txIp[j]:txPort[j]`, with one sendmmsg. With GSO, each run of consecutive datagrams to the
   * same destination whose lengths are equal except a shorter (non-empty) last one becomes one
   * UDP_SEGMENT message over several iovecs (no copying), up to 64 datagrams and 65507 bytes.
   *
   * Returns how many leading datagrams are done with: sent, or skipped because the kernel
   * refused that datagram for good (counted in {@link txDropped}; the rest of the batch is then
   * sent by a further sendmmsg). A result below `count` means backpressure: EAGAIN (SO_SNDBUF
   * full), ENOBUFS or ENOMEM stopped the batch; the caller retries the rest (e.g. after POLLOUT)
   * or drops it. EINTR is retried. A GSO message the kernel refuses is resent as single
   * datagrams; EIO (device without GSO checksum support) also turns GSO off for good. EBADF,
   * ENOTSOCK and EFAULT throw an ErrnoError; a `txLen` outside its slot throws a RangeError.
   */
  send(count: number, first = 0): number {
    if (this.#closed) throw this.#closedError("send");
    const end = first + count;
    if (
      !(first >= 0 && count >= 0 && end <= this.#txSlots.length) ||
      (first | 0) !== first || (count | 0) !== count
    ) {
      throw new RangeError(
        `send(${count}, ${first}) outside the ${this.#txSlots.length} tx slots`,
      );
    }
    const u32 = this.#txU32;
    const mem = this.#txMem;
    for (let j = first; j < end; j++) {
      const len = this.txLen[j]!;
      if (!(len >= 0 && len <= this.#txCap[j]!)) {
        throw new RangeError(`txLen[${j}] = ${len} outside its ${this.#txCap[j]}-byte slot`);
      }
      u32[(this.#txIovOff + j * IOVEC_BYTES) / 4 + 2] = len; // iov_len (high half stays 0)
      const name = this.#txNameOff + j * NAME_BYTES;
      if (this.family === 4) {
        // An IPv6 destination on an IPv4 socket: port 0 makes the kernel refuse it (counted).
        writeSockaddrDest(mem, name, this.txIp[j]!, this.txV6[j] ? 0 : this.txPort[j]!);
      } else if (this.txV6[j]) {
        writeSockaddrIn6(mem, name, this.txIp6, 16 * j, this.txPort[j]!);
      } else {
        writeSockaddrMapped(mem, name, this.txIp[j]!, this.txPort[j]!);
      }
    }
    let done = 0;
    let msgs = this.#build(first, end, first);
    let k = 0;
    while (k < msgs) {
      const sent = this.#c.sendmmsg(this.#fd, this.#txMsgAt[k]!, msgs - k, MSG_DONTWAIT);
      if (sent > 0) {
        for (let i = k; i < k + sent; i++) done += this.#msgCount[i]!;
        k += sent;
        continue;
      }
      if (sent === 0) break; // not expected for vlen > 0; never spin on it
      const e = this.#errno[0]!;
      if (e === Errno.EINTR) continue;
      if (isBackpressure(e)) break;
      if (isFatal(e)) {
        throw sysError(`sendmmsg on UDP ${this.localHost}:${this.localPort} failed`, e);
      }
      const slot = this.#msgFirst[k]!;
      const n = this.#msgCount[k]!;
      if (n > 1) {
        // A GSO message refused (EIO: device lacks checksum offload on older kernels, or an
        // IPsec route; EMSGSIZE: segment larger than the path MTU, where single datagrams
        // would be fragmented instead): resend this run one datagram per message.
        if (e === Errno.EIO) this.#gso = false;
        msgs = this.#build(slot, end, slot + n);
        k = 0;
        continue;
      }
      this.#txDropped++;
      this.#lastTxErrno = e;
      done++;
      k++;
    }
    return done;
  }

  /**
   * Points messages 0.. at slots [from, end): one message per datagram, or with GSO one per
   * mergeable run ({@link planGso}; slots before `plainUntil` always go alone). Returns the
   * message count.
   */
  #build(from: number, end: number, plainUntil: number): number {
    const batch = this.#batch;
    const msgs = planGso(
      batch,
      from,
      end,
      this.#gso,
      plainUntil,
      this.#msgFirst,
      this.#msgCount,
      this.gsoSegments,
    );
    const u32 = this.#txU32;
    for (let k = 0; k < msgs; k++) {
      const j = this.#msgFirst[k]!;
      const n = this.#msgCount[k]!;
      const msg = k * MSG_U32;
      u32[msg + NAME] = this.#txNameLo[j]!;
      u32[msg + NAME + 1] = this.#txNameHi[j]!;
      u32[msg + IOV] = this.#txIovLo[j]!;
      u32[msg + IOV + 1] = this.#txIovHi[j]!;
      u32[msg + IOVLEN] = n;
      // The control area: GSO size, TOS (traffic class for IPv6), source address; as needed.
      const base = this.#txCmsgOff + k * TX_CTL_BYTES;
      let off = base;
      const v6 = this.family === 6 && this.txV6[j] === 1;
      if (n > 1) {
        off = this.#cmsg(off, CMSG_GSO_LEN, SOL_UDP, UDP_SEGMENT);
        const size = this.txLen[j]!; // the GSO cmsg's data is a u16 gso_size
        this.#txMem[off - CMSG_GSO_SPACE + 16] = size;
        this.#txMem[off - CMSG_GSO_SPACE + 17] = size >>> 8;
      }
      const tos = this.#tos ? this.txTos[j]! : 0;
      if (tos !== 0) {
        off = this.#cmsg(off, CMSG_TOS_LEN, v6 ? SOL_IPV6 : SOL_IP, v6 ? IPV6_TCLASS : IP_TOS);
        u32[(off - CMSG_TOS_SPACE + 16) / 4] = tos; // an int: the byte, little-endian
      }
      const local = this.#pktinfo ? this.txLocal[j]! : 0;
      const l = local !== 0 ? this.locals[local] : undefined;
      if (l && l.v6 === v6) {
        const mem = this.#txMem;
        if (v6) {
          off = this.#cmsg(off, CMSG_PKTINFO6_LEN, SOL_IPV6, IPV6_PKTINFO);
          const d = off - CMSG_PKTINFO6_SPACE + 16;
          mem.set(l.ip6, d); // in6_pktinfo: the source address, then ifindex 0 (any)
          u32[(d + 16) / 4] = 0;
        } else {
          off = this.#cmsg(off, CMSG_PKTINFO_LEN, SOL_IP, IP_PKTINFO);
          const d = off - CMSG_PKTINFO_SPACE + 16;
          u32[d / 4] = 0; // in_pktinfo: ifindex 0, spec_dst = the source address, addr unused
          mem[d + 4] = l.ip >>> 24;
          mem[d + 5] = l.ip >>> 16;
          mem[d + 6] = l.ip >>> 8;
          mem[d + 7] = l.ip;
          u32[(d + 8) / 4] = 0;
        }
      }
      if (off > base) {
        u32[msg + CONTROL] = this.#ctlLo[k]!;
        u32[msg + CONTROL + 1] = this.#ctlHi[k]!;
        u32[msg + CONTROLLEN] = off - base;
      } else {
        u32[msg + CONTROLLEN] = 0;
      }
    }
    return msgs;
  }

  /** Writes a cmsghdr (len, level, type) at byte `off` of the tx memory; returns the offset
   * after its CMSG_SPACE (data length rounded up to 8). */
  #cmsg(off: number, len: number, level: number, type: number): number {
    const u32 = this.#txU32;
    u32[off / 4] = len;
    u32[off / 4 + 1] = 0;
    u32[off / 4 + 2] = level;
    u32[off / 4 + 3] = type;
    return off + ((len + 7) & ~7);
  }

  /**
   * Resizes the send buffer (SO_SNDBUF, as at open: FORCE first); returns the effective size
   * (the kernel doubles the value). The data path keeps it small behind a slow link, so that
   * the queue lives in its own scheduler rather than in a qdisc below.
   */
  setSendBuffer(bytes: number): number {
    if (this.#closed) return 0;
    return setBuffer(
      this.#c,
      this.#fd,
      `UDP ${this.localHost}:${this.localPort}`,
      SO_SNDBUFFORCE,
      SO_SNDBUF,
      bytes,
    );
  }

  /**
   * The socket's memory counters (getsockopt SO_MEMINFO: rmem_alloc, rcvbuf, wmem_alloc, sndbuf,
   * ..., drops): how much waits in the receive queue, how much sent data the qdisc still holds,
   * and how many datagrams the kernel dropped for a full receive queue. One system call.
   */
  memory(out: SocketMemory): boolean {
    if (this.#closed) return false;
    const len = this.#memLen;
    len[0] = MEMINFO_BYTES;
    if (
      this.#c.getsockopt(this.#fd, SOL_SOCKET, SO_MEMINFO, this.#memBytes, this.#memLenBytes) < 0
    ) {
      return false;
    }
    const m = this.#mem;
    out.rxQueued = m[0]!;
    out.rxLimit = m[1]!;
    out.txQueued = m[2]!;
    out.txLimit = m[3]!;
    out.rxDrops = m[8]!;
    return true;
  }

  /** Closes the socket. Idempotent; recv() and send() then throw. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#c.close(this.#fd);
  }

  #closedError(op: string): Error {
    return new Error(`${op}() on closed UDP socket ${this.localHost}:${this.localPort}`);
  }
}

/** Validates a slot list: count within limits, every slot a non-empty Uint8Array. */
function checkSlots(where: string, name: string, slots: Uint8Array[], min: number): void {
  if (!Array.isArray(slots) || slots.length < min || slots.length > MAX_SLOTS) {
    throw new RangeError(`cannot open ${where}: ${name} must hold ${min}..${MAX_SLOTS} buffers`);
  }
  slots.forEach((s, i) => {
    if (!(s instanceof Uint8Array) || s.byteLength === 0) {
      throw new TypeError(`cannot open ${where}: ${name}[${i}] must be a non-empty Uint8Array`);
    }
  });
}

/** An ErrnoError whose message is `what: ENAME (description)` plus an optional hint. */
function sysError(what: string, e: number, hint = ""): ErrnoError {
  return new ErrnoError(`${what}: ${errnoName(e)} (${strerror(e)})${hint}`, e);
}

/** setsockopt(fd, level, name, &int, 4); returns 0 or the errno. */
function setInt(c: Libc, fd: number, level: number, name: number, value: number): number {
  const v = new Int32Array([value]);
  const err = errnoView();
  return c.setsockopt(fd, level, name, new Uint8Array(v.buffer), 4) < 0 ? err[0]! : 0;
}

/** setsockopt(SO_BINDTODEVICE) with the device name (before bind, so the route lookup of every
 * send is made for that device). */
function bindToDevice(c: Libc, fd: number, where: string, device: string): void {
  const name = new TextEncoder().encode(device);
  if (name.length === 0 || name.length > 15 || name.includes(0)) {
    throw new TypeError(`cannot open ${where}: "${device}" is not a network device name`);
  }
  const err = errnoView();
  if (c.setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, name.length) < 0) {
    const e = err[0]!;
    const hint = e === Errno.ENODEV
      ? ": no such network device"
      : e === Errno.EPERM
      ? ": binding to a device needs root or CAP_NET_RAW"
      : "";
    throw sysError(`cannot open ${where}: setsockopt(SO_BINDTODEVICE, ${device}) failed`, e, hint);
  }
}

/**
 * Sets a socket buffer size when asked (the FORCE option first, which needs CAP_NET_ADMIN; the
 * plain one, capped by net.core.[rw]mem_max, on EPERM) and returns the effective size.
 */
function setBuffer(
  c: Libc,
  fd: number,
  where: string,
  force: number,
  plain: number,
  bytes: number | undefined,
): number {
  const name = plain === SO_SNDBUF ? "SO_SNDBUF" : "SO_RCVBUF";
  if (bytes !== undefined) {
    if (!Number.isInteger(bytes) || bytes <= 0 || bytes > 0x7fffffff) {
      throw new RangeError(`cannot open ${where}: ${name} must be a positive int, not ${bytes}`);
    }
    let e = setInt(c, fd, SOL_SOCKET, force, bytes);
    if (e === Errno.EPERM) e = setInt(c, fd, SOL_SOCKET, plain, bytes);
    if (e !== 0) throw sysError(`cannot open ${where}: setsockopt(${name}) failed`, e);
  }
  const v = new Int32Array(1);
  const len = new Uint32Array([4]);
  const err = errnoView();
  if (
    c.getsockopt(fd, SOL_SOCKET, plain, new Uint8Array(v.buffer), new Uint8Array(len.buffer)) < 0
  ) {
    throw sysError(`cannot open ${where}: getsockopt(${name}) failed`, err[0]!);
  }
  return v[0]!;
}
