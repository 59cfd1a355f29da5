/**
 * A datagram buffer with its header and body views made once, so that sealing and opening a
 * packet creates no typed-array views per packet. The data path keeps a fixed set of these
 * (one owner at a time); the control path may wrap fresh bytes.
 *
 * @module
 */
import { HEADER_BYTES } from "./wire.ts";

/** One datagram: `buf[0..len)`, with `header` = `buf[0..16)` and `body` = `buf[16..)`. */
export class PacketBuf {
  /** The whole buffer. */
  readonly buf: Uint8Array;
  /** The 16-byte header (a view of `buf`). */
  readonly header: Uint8Array;
  /** Everything after the header (a view of `buf`). */
  readonly body: Uint8Array;
  /** Bytes in use. */
  len = 0;

  /** Wraps `buf` (not copied); `len` defaults to its whole length. */
  constructor(buf: Uint8Array, len = buf.length) {
    if (buf.length < HEADER_BYTES) {
      // Short datagrams still get valid (short) views; classify() rejects them by length.
      this.buf = buf;
      this.header = buf;
      this.body = buf.subarray(buf.length);
    } else {
      this.buf = buf;
      this.header = buf.subarray(0, HEADER_BYTES);
      this.body = buf.subarray(HEADER_BYTES);
    }
    this.len = len;
  }

  /** A new buffer of `size` bytes, empty. */
  static alloc(size: number): PacketBuf {
    return new PacketBuf(new Uint8Array(size), 0);
  }

  /** The bytes in use, as a view (allocates; for the control path and tests). */
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}
