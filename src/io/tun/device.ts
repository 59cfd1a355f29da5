/**
 * The TUN device contract shared by the Linux implementation and the in-memory fake.
 *
 * The data path is built around a non-blocking fd: `read`/`write` are synchronous FFI calls
 * (tens of nanoseconds) that never block, and the only thread hop is `waitReadable`, which is
 * taken just when the device has run dry.
 *
 * @module
 */

/** An open layer-3 TUN device carrying raw IP packets (no packet-information header). */
export interface TunDevice {
  /** The actual kernel interface name (may differ from the requested one, e.g. `xvpn%d`). */
  readonly name: string;
  /** The file descriptor (-1 for devices that have none, such as the fake). */
  readonly fd: number;
  /** Every read and write carries a 10-byte `struct virtio_net_hdr` first (IFF_VNET_HDR). */
  readonly vnetHdr?: boolean;
  /** What the device is, for the startup log, when it is not a plain Linux TUN (a Wintun
   * adapter says so, with its driver version and LUID). */
  readonly description?: string;
  /**
   * Reads one packet into `buf`; returns its length, or 0 when none is waiting (EAGAIN). Never
   * blocks. Throws only on real errors (an ErrnoError naming the errno). A packet longer than
   * `buf` is truncated by the kernel, so pass a buffer of at least the MTU.
   */
  read(buf: Uint8Array): number;
  /**
   * Writes one IP packet (the first `len` bytes of `buf`); returns the bytes written, or -1 on
   * EAGAIN/ENOBUFS (the packet was dropped; the caller counts it). Other failures throw, e.g.
   * EINVAL for bytes that are not an IPv4/IPv6 packet.
   */
  write(buf: Uint8Array, len: number): number;
  /**
   * Resolves true when a packet can be read (or `read` would report an error), false on timeout
   * or after {@link wake} (a pending wake wins over a readable packet, so a wake is never
   * missed). A negative or non-finite timeout waits without limit. May resolve false
   * spuriously; callers loop.
   */
  waitReadable(timeoutMs: number): Promise<boolean>;
  /** Wakes a pending (or the next) `waitReadable`; safe to call from the same thread. */
  wake(): void;
  /**
   * Closes the device; idempotent. The kernel removes a non-persistent TUN device when its last
   * fd closes. A pending `waitReadable` resolves false.
   */
  close(): void;
}

/** Longest interface name Linux accepts (IFNAMSIZ 16 minus the NUL). */
export const MAX_IFNAME_BYTES = 15;

/**
 * Why `name` cannot be a network interface name, or undefined when it can. Mirrors the kernel's
 * `dev_valid_name()` so the user gets a readable message instead of a bare EINVAL.
 */
export function invalidIfnameReason(name: string): string | undefined {
  const bytes = new TextEncoder().encode(name).length;
  if (bytes === 0) return "the name is empty";
  if (bytes > MAX_IFNAME_BYTES) {
    return `the name is ${bytes} bytes long; Linux allows at most ${MAX_IFNAME_BYTES}`;
  }
  if (name === "." || name === "..") return `"${name}" is reserved`;
  if (/[\s/:]/.test(name)) return "the name must not contain whitespace, '/' or ':'";
  return undefined;
}
