/**
 * The UDP socket the runtime uses, behind a small interface so that the portable
 * `Deno.listenDatagram` path and a faster Linux path can stand in for each other.
 *
 * @module
 */
import type { Endpoint } from "../../lib/endpoint.ts";

/** A bound UDP socket. */
export interface UdpSocket {
  /** The local address actually bound (port 0 becomes a real port). */
  readonly local: Endpoint;
  /**
   * Receives one datagram. Each call returns a buffer of its own, never reused by a later
   * receive: a packet that waits in a queue keeps its bytes (field notes, trap 1).
   */
  receive(): Promise<[Uint8Array, Endpoint]>;
  /** Sends one datagram; resolves when the kernel took it (the buffer may then be reused). */
  send(data: Uint8Array, to: Endpoint): Promise<void>;
  /** Closes the socket; a pending receive rejects. Idempotent. */
  close(): void;
}

/** `Deno.listenDatagram`-based socket (needs `unstable: ["net"]`). */
export class DenoUdpSocket implements UdpSocket {
  readonly #conn: Deno.DatagramConn;
  #closed = false;
  /** The bound address. */
  readonly local: Endpoint;

  constructor(hostname: string, port: number) {
    try {
      this.#conn = Deno.listenDatagram({ transport: "udp", hostname, port });
    } catch (err) {
      const e = err as Error;
      const hint = e.name === "AddrInUse" ? " (another process uses that port)" : "";
      throw new Error(`Cannot listen on UDP ${hostname}:${port}: ${e.message}${hint}`, {
        cause: err,
      });
    }
    const a = this.#conn.addr as Deno.NetAddr;
    this.local = { hostname: a.hostname, port: a.port };
  }

  /** See {@link UdpSocket.receive}. */
  async receive(): Promise<[Uint8Array, Endpoint]> {
    const [data, addr] = await this.#conn.receive();
    return [data, addr as Deno.NetAddr];
  }

  /** See {@link UdpSocket.send}. */
  async send(data: Uint8Array, to: Endpoint): Promise<void> {
    await this.#conn.send(data, { transport: "udp", hostname: to.hostname, port: to.port });
  }

  /** See {@link UdpSocket.close}. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed by the runtime
    }
  }
}
