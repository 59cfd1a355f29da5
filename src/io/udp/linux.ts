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
  Errno,
  ErrnoError,
  errnoName,
  errnoView,
  IP_RECVTOS,
  IP_TOS,
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
  SOL_SOCKET,
  SOL_UDP,
  strerror,
  UDP_SEGMENT,
} from "../_libc.ts";
import { formatIPv4, parseIPv4 } from "../../lib/ip.ts";
import { GSO_MAX_SEGMENTS, planGso, type SendBatch } from "./gso.ts";
import type { BatchUdp, SocketMemory } from "./batch.ts";
import {
  SOCKADDR_IN_BYTES,
  sockaddrIp,
  sockaddrPort,
  writeSockaddrDest,
  writeSockaddrIn,
} from "./sockaddr.ts";

/** Options for {@link LinuxUdpSocket.open}. */
export interface LinuxUdpOptions {
  /** IPv4 address to bind (`"0.0.0.0"` for all). */
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
/** CMSG_SPACE(sizeof(int)) for IP_TOS on send, and CMSG_LEN(sizeof(int)). */
const CMSG_TOS_SPACE = 24;
const CMSG_TOS_LEN = 20;
/** Per message on send: the GSO cmsg, then the TOS cmsg (either or both are used). */
const TX_CTL_BYTES = CMSG_GSO_SPACE + CMSG_TOS_SPACE;
/** Per entry on receive: room for the kernel's IP_TOS cmsg (CMSG_SPACE(1)). */
const RX_CTL_BYTES = 24;
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
 * A non-blocking, batching IPv4 UDP socket over libc FFI. Open with {@link LinuxUdpSocket.open};
 * use from one thread (the Worker that opened it: errno and the FFI handles are per isolate).
 */
export class LinuxUdpSocket implements BatchUdp {
  /** The socket's file descriptor (for poll()); -1 after close(). */
  get fd(): number {
    return this.#closed ? -1 : this.#fd;
  }
  /** The bound port (the kernel's choice when opened with port 0). */
  readonly localPort: number;
  /** The bound IPv4 address, dotted quad. */
  readonly localHost: string;
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
  /** Address halves of message k's control area, and of its TOS cmsg alone (+24). */
  readonly #ctlLo: Uint32Array;
  readonly #ctlHi: Uint32Array;
  readonly #tosCtlLo: Uint32Array;
  readonly #tosCtlHi: Uint32Array;

  /**
   * Opens `socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC)`, sets the buffer sizes,
   * binds `host:port` and builds the batch structs over the slots. Errors name `host:port`, the
   * failing call and the errno (ErrnoError for system call failures, with a hint such as
   * "another process uses that port" for EADDRINUSE); bad options throw a TypeError/RangeError.
   */
  static open(o: LinuxUdpOptions): LinuxUdpSocket {
    const where = `UDP ${o.host}:${o.port}`;
    const ip = parseIPv4(o.host);
    if (ip === undefined) {
      throw new TypeError(`cannot open ${where}: "${o.host}" is not an IPv4 address`);
    }
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
      throw new RangeError(`cannot open ${where}: port must be an integer 0..65535`);
    }
    checkSlots(where, "rxSlots", o.rxSlots, 1);
    checkSlots(where, "txSlots", o.txSlots, 0);
    const c = libc();
    const err = errnoView(); // read inline right after each call, see errnoView()
    const fd = c.socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw sysError(`cannot open ${where}: socket() failed`, err[0]!);
    try {
      const sndbuf = setBuffer(c, fd, where, SO_SNDBUFFORCE, SO_SNDBUF, o.sndbuf);
      const rcvbuf = setBuffer(c, fd, where, SO_RCVBUFFORCE, SO_RCVBUF, o.rcvbuf);
      if (o.device !== undefined) bindToDevice(c, fd, where, o.device);
      const addr = new Uint8Array(SOCKADDR_IN_BYTES);
      writeSockaddrIn(addr, 0, ip, o.port);
      if (c.bind(fd, addr, SOCKADDR_IN_BYTES) < 0) {
        const e = err[0]!;
        throw sysError(`cannot open ${where}: bind() failed`, e, bindHint(e));
      }
      const len = new Uint32Array([SOCKADDR_IN_BYTES]);
      if (c.getsockname(fd, addr, new Uint8Array(len.buffer)) < 0) {
        throw sysError(`cannot open ${where}: getsockname() failed`, err[0]!);
      }
      // Probe UDP_SEGMENT with size 0 (= no socket-wide GSO; we set it per message): kernels
      // before 4.18 answer ENOPROTOOPT. Devices that cannot do it show up later, as EIO on send.
      const gso = o.gso === true && setInt(c, fd, SOL_UDP, UDP_SEGMENT, 0) === 0;
      if (o.tos) {
        const e = setInt(c, fd, SOL_IP, IP_RECVTOS, 1);
        if (e !== 0) throw sysError(`cannot open ${where}: setsockopt(IP_RECVTOS) failed`, e);
      }
      return new LinuxUdpSocket(c, fd, o, {
        host: formatIPv4(sockaddrIp(addr, 0)),
        port: sockaddrPort(addr, 0),
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
    bound: { host: string; port: number; gso: boolean; sndbuf: number; rcvbuf: number },
  ) {
    this.#c = c;
    this.#fd = fd;
    this.localHost = bound.host;
    this.localPort = bound.port;
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
    this.#tos = o.tos === true;

    // Receive side: entry i uses iovec i and sockaddr i, pointing at slot i, for good.
    const rxIovOff = n * MMSGHDR_BYTES;
    this.#rxNameOff = rxIovOff + n * IOVEC_BYTES;
    this.#rxCtlOff = this.#rxNameOff + n * SOCKADDR_IN_BYTES;
    this.#rxMem = new Uint8Array(this.#rxCtlOff + (this.#tos ? n * RX_CTL_BYTES : 0));
    this.#rxU32 = new Uint32Array(this.#rxMem.buffer);
    const rxBase = addressOf(this.#rxMem);
    for (let i = 0; i < n; i++) {
      const slot = this.#rxSlots[i]!;
      const msg = i * MSG_U32;
      const iov = (rxIovOff + i * IOVEC_BYTES) / 4;
      put64(this.#rxU32, iov, addressOf(slot));
      put64(this.#rxU32, iov + 2, BigInt(slot.byteLength));
      put64(this.#rxU32, msg + NAME, rxBase + BigInt(this.#rxNameOff + i * SOCKADDR_IN_BYTES));
      this.#rxU32[msg + NAMELEN] = SOCKADDR_IN_BYTES;
      put64(this.#rxU32, msg + IOV, rxBase + BigInt(rxIovOff + i * IOVEC_BYTES));
      put64(this.#rxU32, msg + IOVLEN, 1n);
      if (this.#tos) {
        put64(this.#rxU32, msg + CONTROL, rxBase + BigInt(this.#rxCtlOff + i * RX_CTL_BYTES));
        this.#rxU32[msg + CONTROLLEN] = RX_CTL_BYTES;
      }
      // Without `tos`, msg_control stays NULL with msg_controllen 0: no ancillary data.
    }

    // Send side: iovec j and sockaddr j belong to slot j; message k (k <= j) is pointed at a
    // run of slots per send(); cmsg k is message k's GSO size, wired in once here.
    this.#txIovOff = m * MMSGHDR_BYTES;
    this.#txNameOff = this.#txIovOff + m * IOVEC_BYTES;
    this.#txCmsgOff = this.#txNameOff + m * SOCKADDR_IN_BYTES;
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
    this.#batch = this.#tos
      ? { len: this.txLen, ip: this.txIp, port: this.txPort, tos: this.txTos }
      : { len: this.txLen, ip: this.txIp, port: this.txPort };
    this.#ctlLo = new Uint32Array(m);
    this.#ctlHi = new Uint32Array(m);
    this.#tosCtlLo = new Uint32Array(m);
    this.#tosCtlHi = new Uint32Array(m);
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
      const nameByte = this.#txNameOff + j * SOCKADDR_IN_BYTES;
      writeSockaddrIn(this.#txMem, nameByte, 0, 0);
      const nameAddr = txBase + BigInt(nameByte);
      this.#txNameLo[j] = Number(nameAddr & 0xffffffffn);
      this.#txNameHi[j] = Number(nameAddr >> 32n);
      // Message j's control area: the GSO cmsg, then the TOS cmsg; headers written once.
      const cmsgByte = this.#txCmsgOff + j * TX_CTL_BYTES;
      put64(this.#txU32, cmsgByte / 4, BigInt(CMSG_GSO_LEN));
      this.#txU32[cmsgByte / 4 + 2] = SOL_UDP;
      this.#txU32[cmsgByte / 4 + 3] = UDP_SEGMENT;
      const tosByte = cmsgByte + CMSG_GSO_SPACE;
      put64(this.#txU32, tosByte / 4, BigInt(CMSG_TOS_LEN));
      this.#txU32[tosByte / 4 + 2] = SOL_IP;
      this.#txU32[tosByte / 4 + 3] = IP_TOS;
      const ctl = txBase + BigInt(cmsgByte), tosCtl = txBase + BigInt(tosByte);
      this.#ctlLo[j] = Number(ctl & 0xffffffffn);
      this.#ctlHi[j] = Number(ctl >> 32n);
      this.#tosCtlLo[j] = Number(tosCtl & 0xffffffffn);
      this.#tosCtlHi[j] = Number(tosCtl >> 32n);
      const msg = j * MSG_U32;
      this.#txU32[msg + NAMELEN] = SOCKADDR_IN_BYTES;
      put64(this.#txU32, msg + CONTROL, ctl);
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
    for (let i = 0; i < this.#rxDirty; i++) {
      u32[i * MSG_U32 + NAMELEN] = SOCKADDR_IN_BYTES;
      // ...and msg_controllen with what it received: give back the whole control area.
      if (this.#tos) u32[i * MSG_U32 + CONTROLLEN] = RX_CTL_BYTES;
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
      const name = this.#rxNameOff + i * SOCKADDR_IN_BYTES;
      this.rxIp[i] = sockaddrIp(mem, name);
      this.rxPort[i] = sockaddrPort(mem, name);
      if (this.#tos) {
        // One IP_TOS cmsg of one byte, when the kernel gave it (cmsg_len 17).
        const ctl = (this.#rxCtlOff + i * RX_CTL_BYTES) / 4;
        const ok = u32[msg + CONTROLLEN]! >= 17 && u32[ctl + 2] === SOL_IP &&
          u32[ctl + 3] === IP_TOS;
        this.rxTos[i] = ok ? mem[this.#rxCtlOff + i * RX_CTL_BYTES + 16]! : 0;
      }
    }
    return got;
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
      writeSockaddrDest(
        mem,
        this.#txNameOff + j * SOCKADDR_IN_BYTES,
        this.txIp[j]!,
        this.txPort[j]!,
      );
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
      const tos = this.#tos ? this.txTos[j]! : 0;
      const ctl = this.#txCmsgOff + k * TX_CTL_BYTES;
      if (tos !== 0) {
        this.#txMem[ctl + CMSG_GSO_SPACE + 16] = tos; // the int's low byte (little endian)
        this.#txMem[ctl + CMSG_GSO_SPACE + 17] = 0;
        this.#txMem[ctl + CMSG_GSO_SPACE + 18] = 0;
        this.#txMem[ctl + CMSG_GSO_SPACE + 19] = 0;
      }
      if (n > 1) {
        // The GSO cmsg's data is a u16 gso_size right after the 16-byte cmsghdr.
        const size = this.txLen[j]!;
        this.#txMem[ctl + 16] = size;
        this.#txMem[ctl + 17] = size >>> 8;
        u32[msg + CONTROL] = this.#ctlLo[k]!;
        u32[msg + CONTROL + 1] = this.#ctlHi[k]!;
        u32[msg + CONTROLLEN] = tos !== 0 ? TX_CTL_BYTES : CMSG_GSO_SPACE;
      } else if (tos !== 0) {
        u32[msg + CONTROL] = this.#tosCtlLo[k]!;
        u32[msg + CONTROL + 1] = this.#tosCtlHi[k]!;
        u32[msg + CONTROLLEN] = CMSG_TOS_SPACE;
      } else {
        u32[msg + CONTROLLEN] = 0;
      }
    }
    return msgs;
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
