/**
 * The batch UDP contract of the fast data path (wireguard-go's `conn.Bind` with `ReceiveBatch`
 * and `Send(bufs)`), implemented by {@link LinuxUdpSocket} (recvmmsg/sendmmsg, UDP GSO) and by
 * the in-memory {@link ChannelUdp} twin.
 *
 * Slots: the caller owns the packet buffers ("slots") and gives them at open time; a receive
 * fills rx slots in order, a send reads tx slots. Per-datagram results and parameters travel
 * through typed arrays, never through objects, so nothing is allocated per datagram. Addresses
 * are IPv4, host order.
 *
 * @module
 */

/** A socket's memory counters (Linux SO_MEMINFO), in bytes and datagrams. */
export interface SocketMemory {
  /** Bytes waiting in the receive queue (truesize, so about 1.5x the datagrams' bytes). */
  rxQueued: number;
  /** The receive buffer's limit (as the kernel reports it). */
  rxLimit: number;
  /** Bytes sent and not yet freed by the qdisc or device below. */
  txQueued: number;
  /** The send buffer's limit. */
  txLimit: number;
  /** Datagrams the kernel dropped because the receive queue was full (since the socket opened). */
  rxDrops: number;
}

/** A bound UDP socket received from and sent on in batches. */
export interface BatchUdp {
  /** The file descriptor to poll (-1 for the in-memory twin); -1 after close(). */
  readonly fd: number;
  /** The bound address, dotted quad. */
  readonly localHost: string;
  /** The bound port. */
  readonly localPort: number;
  /** Whether sends merge runs into UDP GSO messages. */
  readonly gsoEnabled: boolean;
  /** Per rx slot after {@link recv}: bytes received, or -1 when truncated (drop it). */
  readonly rxLen: Int32Array;
  /** Per rx slot after {@link recv}: the source IPv4 address. */
  readonly rxIp: Uint32Array;
  /** Per rx slot after {@link recv}: the source port. */
  readonly rxPort: Uint16Array;
  /** Per tx slot, set by the caller before {@link send}: the datagram's length. */
  readonly txLen: Int32Array;
  /** Per tx slot, set by the caller: the destination IPv4 address. */
  readonly txIp: Uint32Array;
  /** Per tx slot, set by the caller: the destination port. */
  readonly txPort: Uint16Array;
  /** Per rx slot after {@link recv}: the TOS byte the datagram arrived with (0 if unknown). */
  readonly rxTos: Uint8Array;
  /** Per tx slot, set by the caller: the TOS byte to send it with (DSCP and ECN). */
  readonly txTos: Uint8Array;
  /** Receives up to one batch into the rx slots without blocking; returns how many (0: none). */
  recv(): number;
  /**
   * Sends tx slots `[first, first + count)`; returns how many leading datagrams are done with
   * (sent, or refused for good and counted). Fewer than `count` means backpressure: the socket
   * buffer is full, the rest can be sent again later.
   */
  send(count: number, first?: number): number;
  /** Most datagrams one GSO send may merge (writable). */
  gsoSegments: number;
  /** Resizes the send buffer; returns the effective size (0 if it cannot). */
  setSendBuffer(bytes: number): number;
  /** Fills `out` with the socket's memory counters; false when they cannot be read. */
  memory(out: SocketMemory): boolean;
  /** Closes the socket; idempotent. */
  close(): void;
}
