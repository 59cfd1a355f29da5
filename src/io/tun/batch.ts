/**
 * The batch TUN contract of the fast data path (wireguard-go's `tun.Device`: `Read(bufs, sizes,
 * offset)`, `Write(bufs, offset)`, `BatchSize()`), with the Linux device and an in-memory twin
 * behind it. Offloads (TSO reads cut into segments, GRO writes joined into one) live inside the
 * Linux device: callers only ever see plain IP packets.
 *
 * Buffers: the device hands out its own read and write buffers, made once, in one arena with
 * its scratch space, so that it can move bytes with `copyWithin` instead of making a view per
 * packet. Callers may pass other Uint8Arrays too (then the device copies the slow way).
 *
 * @module
 */

/** Counters a batch TUN adds to (the data path passes its drop counters). */
export interface TunDropSink {
  /** Writes the kernel refused because the device queue was full (EAGAIN/ENOBUFS). */
  tun_full: number;
  /** Writes that failed otherwise (EINVAL for a malformed packet, EIO). */
  tun_error: number;
  /** Reads that held nothing we can forward (an unknown offload type, a truncated header). */
  bad_inner_packet: number;
}

/** What the offloads did (an offloading Linux TUN only). */
export interface OffloadStats {
  /** TSO super-packets read, and the segments they were cut into. */
  superReads: number;
  segments: number;
  /** GRO writes of two or more segments, and the segments they carried. */
  joinedWrites: number;
  joinedSegments: number;
}

/** A layer-3 TUN device read and written in batches. */
export interface BatchTun {
  /** The kernel interface name. */
  readonly name: string;
  /** The file descriptor to poll for reading (-1 for the in-memory twin). */
  readonly fd: number;
  /**
   * Bytes in front of each packet in a write buffer that belong to the device (the virtio-net
   * header on an offloading Linux TUN, 0 otherwise): the caller puts packet `i` at
   * `bufs[i][headroom..]`.
   */
  readonly headroom: number;
  /** Buffers to read into (each at least the largest packet). */
  readonly readBuffers: readonly Uint8Array[];
  /** Buffers to write from (each `headroom` + the largest packet). */
  readonly writeBuffers: readonly Uint8Array[];
  /** The same write buffers without their headroom: where the caller puts each packet. */
  readonly writePackets: readonly Uint8Array[];
  /**
   * True when packets are waiting inside the device (the rest of a super-packet): read again
   * without waiting for the fd to become readable.
   */
  readonly buffered: boolean;
  /**
   * Reads up to `max` packets into `bufs[0..]`, their lengths into `sizes`; returns how many,
   * 0 when none is waiting. Never blocks. Unusable reads are dropped and counted.
   */
  read(bufs: readonly Uint8Array[], sizes: Int32Array, max: number): number;
  /**
   * Writes packets `i < count`, each `sizes[i]` bytes at `bufs[i][headroom..]` (consecutive TCP
   * segments of one flow may go to the kernel as one). Returns how many the kernel accepted; the
   * others were dropped and counted (a full queue, a malformed packet).
   */
  write(bufs: readonly Uint8Array[], sizes: Int32Array, count: number): number;
  /** Offload counters, when the device offloads. */
  readonly offload?: OffloadStats;
  /** Closes the device (or this thread's handle of it); idempotent. */
  close(): void;
}
