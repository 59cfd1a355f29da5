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
  /**
   * Server fast path: the local address the datagrams came to (an index into the socket's
   * `locals`, IP_PKTINFO), which replies leave from. Part of the address: a client that
   * reaches the server at another of its addresses is somewhere else.
   */
  local?: number;
}

/** Two endpoints name the same socket address. */
export function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return a.port === b.port && a.hostname === b.hostname && (a.local ?? 0) === (b.local ?? 0);
}

/** `host:port` text of an endpoint (IPv6 in brackets). */
export function formatEndpoint(e: Endpoint): string {
  return e.hostname.includes(":") ? `[${e.hostname}]:${e.port}` : `${e.hostname}:${e.port}`;
}
