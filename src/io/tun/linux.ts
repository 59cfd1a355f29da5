/**
 * Linux TUN devices through `/dev/net/tun`, driven by libc over FFI.
 *
 * The fd is opened `O_NONBLOCK`, so `read`/`write` are plain synchronous calls that return at
 * once. Waiting is a single `poll()` on the TUN fd plus an eventfd, run on a helper thread as
 * one awaited non-blocking FFI call; writing the eventfd (`wake`) ends the wait early.
 *
 * Link configuration (addresses, MTU, routes) is not done here but with `ip` through a
 * CommandRunner; see `src/io/route/`.
 *
 * @module
 */
import {
  cString,
  EFD_CLOEXEC,
  EFD_NONBLOCK,
  Errno,
  errno,
  ErrnoError,
  errnoName,
  type Libc,
  libc,
  O_CLOEXEC,
  O_NONBLOCK,
  O_RDWR,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLNVAL,
  strerror,
} from "../_libc.ts";
import { invalidIfnameReason, type TunDevice } from "./device.ts";
import { bigLen } from "../_bigint.ts";
import { tunErrorMessage } from "./errors.ts";

/** `_IOW('T', 202, int)` from linux/if_tun.h; BigInt because the parameter is unsigned long. */
const TUNSETIFF = 0x400454can;
/** Layer-3 device (IP packets, no Ethernet header). */
const IFF_TUN = 0x0001;
/** No 4-byte packet-information header before each packet. */
const IFF_NO_PI = 0x1000;
/** A `struct virtio_net_hdr` before each packet: lets us write GSO (coalesced) packets. */
const IFF_VNET_HDR = 0x4000;
/** `_IOW('T', 208, unsigned int)` from linux/if_tun.h. */
const TUNSETOFFLOAD = 0x400454d0n;
/** Offload flags (linux/if_tun.h): partial checksums, TCPv4 segmentation. */
const TUN_F_CSUM = 0x01;
const TUN_F_TSO4 = 0x02;
/** sizeof(struct ifreq) on 64-bit Linux: 16-byte name + 24-byte union. */
const IFREQ_BYTES = 40;
/** Offset of `ifr_flags` (the union starts after the 16-byte name). */
const IFR_FLAGS_OFFSET = 16;
/** IFNAMSIZ, including the terminating NUL. */
const IFNAMSIZ = 16;
/** sizeof(struct pollfd): int fd; short events; short revents. */
const POLLFD_BYTES = 8;
/** poll() takes an int timeout in milliseconds. */
const MAX_POLL_TIMEOUT_MS = 0x7fffffff;

/**
 * Opens a TUN device on Linux (`IFF_TUN | IFF_NO_PI`, non-blocking, close-on-exec). `name` may
 * contain `%d` for the kernel to number it; the returned device carries the actual name. Errors
 * name the failing call, the errno and what to do (see {@link tunErrorMessage}).
 */
export function openLinuxTun(
  name: string,
  opts: { vnetHdr?: boolean; offload?: boolean } = {},
): TunDevice {
  const invalid = invalidIfnameReason(name);
  if (invalid) throw new Error(`cannot create TUN device "${name}": ${invalid}`);
  const c = libc();

  const path = cString("/dev/net/tun");
  const fd = c.open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC, 0);
  if (fd < 0) {
    const e = errno();
    throw new ErrnoError(tunErrorMessage(name, "open", e, strerror), e);
  }

  // struct ifreq { char ifr_name[16]; union { short ifr_flags; ... } } — little-endian, as
  // on every platform this runs on (x86_64, aarch64).
  const ifr = new Uint8Array(IFREQ_BYTES);
  ifr.set(new TextEncoder().encode(name));
  const flags = IFF_TUN | IFF_NO_PI | (opts.vnetHdr ? IFF_VNET_HDR : 0);
  new DataView(ifr.buffer).setUint16(IFR_FLAGS_OFFSET, flags, true);
  if (c.ioctl(fd, TUNSETIFF, ifr) < 0) {
    const e = errno(); // read before close(), which may overwrite it
    c.close(fd);
    throw new ErrnoError(tunErrorMessage(name, "ioctl", e, strerror), e);
  }
  if (opts.vnetHdr && opts.offload) {
    // Let the kernel hand us TCPv4 super-packets and unfinished checksums (we finish them):
    // it then skips segmenting and checksumming every packet on its way to the TUN.
    if (c.ioctl_int(fd, TUNSETOFFLOAD, BigInt(TUN_F_CSUM | TUN_F_TSO4)) < 0) {
      const e = errno();
      c.close(fd);
      throw new ErrnoError(
        `cannot set offloads on TUN device "${name}": ioctl TUNSETOFFLOAD failed: ${errnoName(e)}`,
        e,
      );
    }
  }
  const nul = ifr.indexOf(0);
  const actual = new TextDecoder().decode(
    ifr.subarray(0, nul < 0 || nul > IFNAMSIZ ? IFNAMSIZ : nul),
  );

  const efd = c.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (efd < 0) {
    const e = errno();
    c.close(fd);
    throw new ErrnoError(
      `cannot create TUN device "${name}": eventfd failed: ${errnoName(e)} (${strerror(e)})`,
      e,
    );
  }
  return new LinuxTun(c, actual, fd, efd, opts.vnetHdr === true);
}

/** Converts a millisecond timeout to poll()'s int: negative means wait forever. */
function pollTimeout(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) return -1;
  return Math.min(Math.ceil(ms), MAX_POLL_TIMEOUT_MS);
}

class LinuxTun implements TunDevice {
  readonly #c: Libc;
  readonly #efd: number;
  #closed = false;
  #efdClosed = false;
  /** waitReadable calls whose poll() is still running on a helper thread. */
  #waiting = 0;
  /** The u64 value 1, written to the eventfd to wake a poll. */
  readonly #one = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
  /** Scratch space for draining the eventfd counter. */
  readonly #drain = new Uint8Array(8);

  constructor(
    c: Libc,
    readonly name: string,
    readonly fd: number,
    efd: number,
    readonly vnetHdr = false,
  ) {
    this.#c = c;
    this.#efd = efd;
  }

  read(buf: Uint8Array): number {
    if (this.#closed) throw new Error(`TUN device "${this.name}" is closed`);
    const n = this.#c.read(this.fd, buf, bigLen(buf.byteLength));
    if (n >= 0) return n;
    const e = errno();
    if (e === Errno.EAGAIN || e === Errno.EINTR) return 0;
    throw new ErrnoError(
      `read from TUN device "${this.name}" failed: ${errnoName(e)} (${strerror(e)})`,
      e,
    );
  }

  write(buf: Uint8Array, len: number): number {
    if (this.#closed) throw new Error(`TUN device "${this.name}" is closed`);
    if (!(len >= 0 && len <= buf.byteLength)) {
      throw new RangeError(`write length ${len} outside buffer of ${buf.byteLength} bytes`);
    }
    const n = this.#c.write(this.fd, buf, bigLen(len));
    if (n >= 0) return n;
    const e = errno();
    if (e === Errno.EAGAIN || e === Errno.ENOBUFS || e === Errno.EINTR) return -1;
    throw new ErrnoError(
      `write to TUN device "${this.name}" failed: ${errnoName(e)} (${strerror(e)})`,
      e,
    );
  }

  async waitReadable(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return false;
    // A fresh pollfd array per call: it is referenced below after the await, so it outlives
    // the helper thread's use of it, and concurrent waits do not share one.
    const fds = new Uint8Array(2 * POLLFD_BYTES);
    const view = new DataView(fds.buffer);
    view.setInt32(0, this.fd, true);
    view.setInt16(4, POLLIN, true);
    view.setInt32(POLLFD_BYTES, this.#efd, true);
    view.setInt16(POLLFD_BYTES + 4, POLLIN, true);
    this.#waiting++;
    let ready: number;
    try {
      ready = await this.#c.poll_wait(fds, 2n, pollTimeout(timeoutMs));
    } finally {
      this.#waiting--;
      if (this.#closed && this.#waiting === 0) this.#closeEventFd();
    }
    // 0 is a timeout; -1 is EINTR or similar, whose errno is on the helper thread and out of
    // reach — either way report "nothing yet" and let the caller loop.
    if (this.#closed || ready <= 0) return false;
    if (view.getInt16(POLLFD_BYTES + 6, true) & POLLIN) {
      this.#c.read(this.#efd, this.#drain, 8n); // reset the counter; EAGAIN if another waiter did
      return false;
    }
    return (view.getInt16(6, true) & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) !== 0;
  }

  wake(): void {
    // EAGAIN only happens when the counter is saturated, i.e. a wake is already pending.
    if (!this.#efdClosed) this.#c.write(this.#efd, this.#one, 8n);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Wake a poll() in flight first: closing an fd does not wake a thread polling it, and the
    // poll holds a reference to the TUN file (delaying the device's removal) until it returns.
    this.wake();
    this.#c.close(this.fd);
    // The eventfd must outlive any poll still using it, or its number could be reused.
    if (this.#waiting === 0) this.#closeEventFd();
  }

  #closeEventFd(): void {
    if (this.#efdClosed) return;
    this.#efdClosed = true;
    this.#c.close(this.#efd);
  }
}
