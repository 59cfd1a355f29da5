/**
 * The batch UDP contract of the fast data path (wireguard-go's `conn.Bind` with `ReceiveBatch`
 * and `Send(bufs)`), implemented by {@link LinuxUdpSocket} (recvmmsg/sendmmsg, UDP GSO) and by
 * the in-memory {@link ChannelUdp} twin.
 *
 * Slots: the caller owns the packet buffers ("slots") and gives them at open time; a receive
 * fills rx slots in order, a send reads tx slots. Per-datagram results and parameters travel
 * through typed arrays, never through objects, so nothing is allocated per datagram. An IPv4
 * address is a u32 in host order (`rxIp`/`txIp`); an IPv6 one is 16 bytes per slot in
 * `rxIp6`/`txIp6`, flagged by `rxV6`/`txV6` (an AF_INET6 socket's IPv4-mapped peers come out as
 * IPv4). The local address a datagram came to (IP_PKTINFO) is an index into `locals`, and a
 * reply names the same index, so it leaves from the address the client sent to.
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

/** A local address of the socket (a datagram came to it; a reply can leave from it). */
export interface LocalAddress {
  /** IPv6 (then `ip6`), else IPv4 (`ip`). */
  v6: boolean;
  /** IPv4 address, host order. */
  ip: number;
  /** IPv6 address bytes. */
  ip6: Uint8Array;
  /** As text, for logs. */
  text: string;
}

/** The "unknown" local address at index 0 of every socket's `locals`. */
export const NO_LOCAL: LocalAddress = { v6: false, ip: 0, ip6: new Uint8Array(16), text: "" };

/** Most local addresses a socket tells apart (index 1..31; 0 is "let the kernel choose"). */
export const MAX_LOCALS = 31;

/** A bound UDP socket received from and sent on in batches. */
export interface BatchUdp {
  /** The file descriptor to poll (-1 for the in-memory twin); -1 after close(). */
  readonly fd: number;
  /** The bound address (dotted quad, or IPv6 text such as `::`). */
  readonly localHost: string;
  /** The socket's family: 6 takes IPv4 too (as mapped addresses) when bound to `::`. */
  readonly family: 4 | 6;
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
  /** Per rx slot after {@link recv}: 1 when the source is IPv6 (then in `rxIp6`). */
  readonly rxV6: Uint8Array;
  /** Per rx slot after {@link recv}: the IPv6 source, 16 bytes from 16 * slot. */
  readonly rxIp6: Uint8Array;
  /** Per rx slot after {@link recv}: the local address it came to, an index into `locals`
   * (0: unknown, e.g. without PKTINFO). */
  readonly rxLocal: Uint8Array;
  /** Per tx slot, set by the caller: 1 when the destination is IPv6 (in `txIp6`). */
  readonly txV6: Uint8Array;
  /** Per tx slot, set by the caller: the IPv6 destination, 16 bytes from 16 * slot. */
  readonly txIp6: Uint8Array;
  /** Per tx slot, set by the caller: the local address to send from (index into `locals`;
   * 0: the kernel chooses, by the route). */
  readonly txLocal: Uint8Array;
  /** The local addresses seen so far; index 0 is a placeholder for "unknown". */
  readonly locals: readonly LocalAddress[];
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
  /** Datagrams {@link send} refused for good and skipped since the socket opened (no route, a
   * firewall, too big); the loop counts them as `send_failed`. Absent: never. */
  readonly txDropped?: number;
  /** Most datagrams one GSO send may merge (writable). */
  gsoSegments: number;
  /** Resizes the send buffer; returns the effective size (0 if it cannot). */
  setSendBuffer(bytes: number): number;
  /** Fills `out` with the socket's memory counters; false when they cannot be read. */
  memory(out: SocketMemory): boolean;
  /** Closes the socket; idempotent. */
  close(): void;
}
