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
import { AF_INET, AF_INET6 } from "../_libc.ts";

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

/**
 * `struct sockaddr_in6` (28 bytes): sin6_family u16 host order = 10, sin6_port u16 big-endian,
 * sin6_flowinfo u32, sin6_addr 16 bytes, sin6_scope_id u32. The slot size of every socket
 * address in the batch structs (an IPv4 one fits in its first 16 bytes).
 */
export const SOCKADDR_IN6_BYTES = 28;

/** The family (AF_INET or AF_INET6) of the socket address at `off`. */
export function sockaddrFamily(mem: Uint8Array, off: number): number {
  return mem[off]! | (mem[off + 1]! << 8);
}

/** Writes a complete sockaddr_in6 for `addr` (16 bytes from `addrOff`) and `port` at `off`. */
export function writeSockaddrIn6(
  mem: Uint8Array,
  off: number,
  addr: Uint8Array,
  addrOff: number,
  port: number,
): void {
  mem[off] = AF_INET6;
  mem[off + 1] = 0;
  mem[off + 2] = port >>> 8;
  mem[off + 3] = port;
  mem.fill(0, off + 4, off + 8);
  for (let i = 0; i < 16; i++) mem[off + 8 + i] = addr[addrOff + i]!;
  mem.fill(0, off + 24, off + SOCKADDR_IN6_BYTES);
}

/** Writes a sockaddr_in6 holding the IPv4-mapped address ::ffff:`ip` (an AF_INET6 socket's way
 * of reaching an IPv4 peer). */
export function writeSockaddrMapped(mem: Uint8Array, off: number, ip: number, port: number): void {
  mem[off] = AF_INET6;
  mem[off + 1] = 0;
  mem[off + 2] = port >>> 8;
  mem[off + 3] = port;
  mem.fill(0, off + 4, off + 18);
  mem[off + 18] = 0xff;
  mem[off + 19] = 0xff;
  mem[off + 20] = ip >>> 24;
  mem[off + 21] = ip >>> 16;
  mem[off + 22] = ip >>> 8;
  mem[off + 23] = ip;
  mem.fill(0, off + 24, off + SOCKADDR_IN6_BYTES);
}

/** True when the sockaddr_in6 at `off` holds an IPv4-mapped address (::ffff:a.b.c.d). */
export function sockaddr6IsMapped(mem: Uint8Array, off: number): boolean {
  for (let i = 8; i < 18; i++) if (mem[off + i] !== 0) return false;
  return mem[off + 18] === 0xff && mem[off + 19] === 0xff;
}

/** The IPv4 address (u32) inside a mapped sockaddr_in6 at `off`. */
export function sockaddr6MappedIp(mem: Uint8Array, off: number): number {
  return ((mem[off + 20]! << 24) | (mem[off + 21]! << 16) | (mem[off + 22]! << 8) |
    mem[off + 23]!) >>> 0;
}
