/**
 * One set of session keys from one handshake: a send key with its counter, a receive key with
 * its replay window. Sealing and opening write into caller buffers (no allocation besides the
 * two short-lived views an AEAD call needs).
 *
 * @module
 */
import type { Aead } from "../crypto/aead.ts";
import type { PacketBuf } from "./packet.ts";
import { ReplayWindow } from "./replay.ts";
import { REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME_MS } from "./timers.ts";
import {
  type DropReason,
  HEADER_BYTES,
  readCounter,
  TAG_BYTES,
  writeHeader,
  writeNonce,
} from "./wire.ts";

/** Why {@link Keypair.open} refused a datagram (each a {@link DropReason}). */
export type OpenDrop = Extract<DropReason, "bad_counter" | "replay" | "bad_tag">;

/** Session keys of one direction pair. */
export class Keypair {
  /** Next counter to send. */
  sendCounter = 0;
  /** Replay state of the receive direction. */
  readonly replay = new ReplayWindow();
  readonly #nonce = new Uint8Array(12);

  /**
   * @param sendKey our sending key
   * @param recvKey our receiving key
   * @param epoch key epoch carried in byte 2 of every header sealed with these keys
   * @param remoteId receiver id to put in headers we send
   * @param createdMs when the handshake completed (monotonic ms)
   * @param localId receiver id the peer puts in headers it seals with these keys (fresh per
   *   handshake)
   */
  constructor(
    readonly sendKey: Uint8Array,
    readonly recvKey: Uint8Array,
    readonly epoch: number,
    readonly remoteId: number,
    readonly createdMs: number,
    readonly localId = 0,
  ) {}

  /** True when these keys may no longer be used (age or message count). */
  expired(now: number): boolean {
    return now - this.createdMs >= REJECT_AFTER_TIME_MS ||
      this.sendCounter >= REJECT_AFTER_MESSAGES;
  }

  /**
   * Seals `plain[0..plainLen)` as a message of `type` into `out` (header + ciphertext + tag)
   * and sets `out.len`. `out` needs `plainLen + 32` bytes. `flags` go into header byte 3.
   */
  seal(
    aead: Aead,
    type: number,
    plain: Uint8Array,
    plainLen: number,
    out: PacketBuf,
    flags = 0,
  ): void {
    const counter = this.sendCounter++;
    writeHeader(out.buf, type, this.epoch, this.remoteId, counter, flags);
    writeNonce(this.#nonce, counter);
    out.len = HEADER_BYTES +
      aead.seal(out.body, plain, out.header, this.#nonce, this.sendKey, plainLen);
  }

  /**
   * Opens datagram `d` into `out`. Returns the plaintext length, or why the datagram must be
   * dropped: `bad_counter` (malformed), `replay` (seen before or older than the window),
   * `bad_tag` (not authentic). The replay window only moves after the tag verified, so forged
   * packets cannot push it forward.
   */
  open(aead: Aead, d: PacketBuf, out: Uint8Array): number | OpenDrop {
    const counter = readCounter(d.buf);
    if (counter < 0 || counter >= REJECT_AFTER_MESSAGES) return "bad_counter";
    if (!this.replay.check(counter)) return "replay";
    writeNonce(this.#nonce, counter);
    const n = aead.open(out, d.body, d.header, this.#nonce, this.recvKey, d.len - HEADER_BYTES);
    if (n < 0) return "bad_tag";
    this.replay.accept(counter);
    return n;
  }
}

/** Bytes a sealed message adds to its plaintext. */
export const SEAL_OVERHEAD_BYTES = HEADER_BYTES + TAG_BYTES;
