/**
 * The data path's answer to one packet, as a single mutable object owned by a core instance and
 * reused for every call: the hot path allocates no result objects. Read it before the next call.
 *
 * @module
 */
import type { DropReason } from "./wire.ts";
import type { Endpoint } from "../lib/endpoint.ts";

/** What to do with the bytes the core wrote into the caller's `out` buffer. */
export const Verdict = {
  /** Nothing to do (the message was consumed by the control path). */
  None: 0,
  /** Write `out[0..length)` to the TUN device. */
  Tun: 1,
  /** Send `out[0..length)` as a datagram to `to`. */
  Net: 2,
  /** The input was dropped for `reason` (already counted). */
  Drop: 3,
} as const;

/** The reusable result of a data-path call. */
export class PacketResult {
  /** One of {@link Verdict}. */
  verdict: number = Verdict.None;
  /** Bytes written to `out`. */
  length = 0;
  /** Destination for {@link Verdict.Net}. */
  to: Endpoint | undefined = undefined;
  /** Reason for {@link Verdict.Drop}. */
  reason: DropReason | undefined = undefined;
  /**
   * {@link Verdict.Net} only: `extra[0..extraCount)` are further destinations for the same
   * datagram (redundant multipath: the server's other client endpoints, or the client's other
   * paths). The array belongs to the core and is reused, so nothing is allocated per packet;
   * `extraCount` is 0 for the common single destination.
   */
  extra: Endpoint[] | undefined = undefined;
  /** How many entries of `extra` are in use. */
  extraCount = 0;
}

/** A control-path datagram to send (handshake, config push, pong, disconnect). */
export interface Outgoing {
  /** Bytes (owned by the receiver of this object). */
  data: Uint8Array;
  /** Destination; `to.via` picks the socket of a multipath client (default: the first). */
  to: Endpoint;
}
