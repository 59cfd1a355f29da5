/**
 * UDP peer addresses, as every layer passes them around: shaped like `Deno.NetAddr`, so runtime
 * addresses pass through as they are.
 *
 * @module
 */

/** A UDP peer address, shaped like `Deno.NetAddr` so runtime addresses pass through as-is. */
export interface Endpoint {
  /** IP address text. */
  hostname: string;
  /** UDP port. */
  port: number;
  /**
   * Client multipath only: the index of the path (local socket) to send from; absent means the
   * first (or only) socket. Not part of the address: {@link sameEndpoint} ignores it.
   */
  via?: number;
}

/** Two endpoints name the same socket address. */
export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.hostname === b.hostname;
}

/** `host:port` text of an endpoint (IPv6 in brackets). */
export function formatEndpoint(e: Endpoint): string {
  return e.hostname.includes(":") ? `[${e.hostname}]:${e.port}` : `${e.hostname}:${e.port}`;
}
