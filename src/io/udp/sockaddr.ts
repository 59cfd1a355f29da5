/**
 * `struct sockaddr_in` (IPv4 socket address) read and written in place, for the FFI socket in
 * `linux.ts`. Layout from linux/in.h and man 7 ip, 16 bytes:
 *
 * | offset | field      | encoding                                   |
 * | ------ | ---------- | ------------------------------------------ |
 * | 0      | sin_family | u16, host order (little-endian here) = 2   |
 * | 2      | sin_port   | u16, network order (big-endian)            |
 * | 4      | sin_addr   | u32, network order (big-endian)            |
 * | 8      | sin_zero   | 8 bytes, zero                              |
 *
 * Addresses are u32 numbers in host order (`127.0.0.1` is `0x7f000001`), as in `src/core/ip.ts`.
 * The readers and writers work byte by byte on a Uint8Array at an offset, so the data path can
 * use them on its preallocated struct memory without allocating.
 *
 * @module
 */
import { AF_INET } from "../_libc.ts";

/** sizeof(struct sockaddr_in). */
export const SOCKADDR_IN_BYTES = 16;

/** Writes a complete sockaddr_in (family, port, address, zero padding) at `off`. */
export function writeSockaddrIn(mem: Uint8Array, off: number, ip: number, port: number): void {
  // sin_family is host order; every platform this runs on (x86_64, aarch64) is little-endian.
  mem[off] = AF_INET;
  mem[off + 1] = 0;
  writeSockaddrDest(mem, off, ip, port);
  mem.fill(0, off + 8, off + SOCKADDR_IN_BYTES);
}

/**
 * Writes only port and address (both big-endian) of a sockaddr_in at `off`, leaving family and
 * padding as they are: what the send path changes per datagram.
 */
export function writeSockaddrDest(mem: Uint8Array, off: number, ip: number, port: number): void {
  mem[off + 2] = port >>> 8;
  mem[off + 3] = port;
  mem[off + 4] = ip >>> 24;
  mem[off + 5] = ip >>> 16;
  mem[off + 6] = ip >>> 8;
  mem[off + 7] = ip;
}

/** The port (host order) of the sockaddr_in at `off`. */
export function sockaddrPort(mem: Uint8Array, off: number): number {
  return (mem[off + 2]! << 8) | mem[off + 3]!;
}

/** The IPv4 address (u32, host order) of the sockaddr_in at `off`. */
export function sockaddrIp(mem: Uint8Array, off: number): number {
  return ((mem[off + 4]! << 24) | (mem[off + 5]! << 16) | (mem[off + 6]! << 8) | mem[off + 7]!) >>>
    0;
}
