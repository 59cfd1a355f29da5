/**
 * A diagnostic session with a running server, over a {@link PmtuSocket}: the Noise handshake of
 * a `diag` client core (no address, no config, does not disturb a tunnel using the same key),
 * then sealed MTU probes with DF set, each answered by a small acknowledgement. It is the real
 * {@link Prober} of the path-MTU search.
 *
 * @module
 */
import { ClientCore } from "../core/client.ts";
import { PacketBuf } from "../core/packet.ts";
import { type Endpoint, formatEndpoint } from "../lib/endpoint.ts";
import { loadAead } from "../crypto/aead.ts";
import { bestX25519 } from "../crypto/x25519.ts";
import { Errno, errnoName } from "../io/_libc.ts";
import { PmtuSocket, type ProbeSocket } from "../io/udp/pmtu.ts";
import { pathMtuOfPayload } from "../core/mtu.ts";
import type { ProbeOutcome, Prober } from "./search.ts";

/** The diagnosis could not measure at all (exit code 2): unreachable, no handshake, ... */
export class UnmeasurableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UnmeasurableError";
  }
}

/** Options of {@link DiagSession.open}. */
export interface DiagSessionOptions {
  /** The server; `hostname` must be an IPv4 literal (resolve names first). */
  server: Endpoint;
  /** The client's private key (a key the server accepts). */
  privateKey: Uint8Array;
  /** The server's public key. */
  serverPublicKey: Uint8Array;
  /** Give up on the handshake after this long (default 5000 ms). */
  handshakeTimeoutMs?: number;
  /** Wait this long for each probe's answer (default 400 ms). */
  probeTimeoutMs?: number;
  /** Opens the probe socket, connected to the server (default: Linux's {@link PmtuSocket} in
   * PROBE mode; on Windows, the Winsock one). */
  openSocket?: (host: string, port: number) => ProbeSocket;
}

/** Default wait for one probe's answer. */
export const DEFAULT_PROBE_TIMEOUT_MS = 400;
/** Default wait for the handshake (the core retries after 1 s and 3 s within it). */
const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
/** Largest datagram the session receives (answers are small; anything may arrive). */
const RX_BYTES = 65536;

/** A connected diagnostic session; see the module docs. Close it when done. */
export class DiagSession implements Prober {
  readonly #core: ClientCore;
  readonly #sock: ProbeSocket;
  readonly #server: Endpoint;
  readonly #probeTimeoutMs: number;
  readonly #rx = new Uint8Array(RX_BYTES);
  readonly #out = new Uint8Array(RX_BYTES);
  /** Probe sequence number -> its size, to match late answers. */
  readonly #sizes = new Map<number, number>();
  #seq = 0;
  /** Round trip of the handshake, ms. */
  handshakeMs = 0;

  /** IP + UDP header bytes on the way to the server: 28 (IPv4) or 48 (IPv6). */
  get headerBytes(): number {
    return this.#sock.headerBytes;
  }

  private constructor(core: ClientCore, sock: ProbeSocket, opts: DiagSessionOptions) {
    this.#core = core;
    this.#sock = sock;
    this.#server = opts.server;
    this.#probeTimeoutMs = opts.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  }

  /**
   * Opens the socket and completes the handshake. Throws {@link UnmeasurableError} when the
   * server does not answer in time or the network refuses.
   */
  static async open(opts: DiagSessionOptions): Promise<DiagSession> {
    const where = formatEndpoint(opts.server);
    let sock: ProbeSocket;
    try {
      // PROBE, not DO: DF is set all the same, but a path MTU the kernel cached from an earlier
      // ICMP (they live 10 minutes) does not stop a probe from going out, so every run measures
      // the path afresh. An ICMP "fragmentation needed" is still reported on the socket.
      const open = opts.openSocket ??
        ((host: string, port: number) => PmtuSocket.open(host, port, "probe"));
      sock = open(opts.server.hostname, opts.server.port);
    } catch (err) {
      throw new UnmeasurableError(
        `cannot open a UDP socket to ${where}: ${(err as Error).message}`,
        {
          cause: err,
        },
      );
    }
    const core = new ClientCore({
      privateKey: opts.privateKey,
      serverPublicKey: opts.serverPublicKey,
      aead: await loadAead("auto"),
      dh: bestX25519(),
      diag: true,
    });
    const s = new DiagSession(core, sock, opts);
    try {
      await s.#handshake(opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS);
    } catch (err) {
      sock.close();
      throw err;
    }
    return s;
  }

  async #handshake(timeoutMs: number): Promise<void> {
    const start = performance.now();
    const deadline = start + timeoutMs;
    this.#core.start(start, Date.now());
    this.#flush();
    while (!this.#core.ready) {
      const now = performance.now();
      if (now >= deadline) {
        throw new UnmeasurableError(
          `no answer to the diagnostic handshake from ${formatEndpoint(this.#server)} within ` +
            `${timeoutMs} ms: the server is down or unreachable, UDP is blocked on the way, or ` +
            `it does not accept this client's key or has another key than the one given ` +
            `(it stays silent to strangers)`,
        );
      }
      const r = await this.#sock.receive(this.#rx, Math.min(100, deadline - now));
      if (r.kind === "datagram") {
        this.#core.receive(performance.now(), this.#packet(r.length), this.#out);
      } else if (r.kind === "error") this.#socketError(r.errno, "during the handshake");
      this.#core.tick(performance.now(), Date.now());
      this.#flush();
      this.#core.events.splice(0);
    }
    this.handshakeMs = performance.now() - start;
  }

  /** The path MTU the kernel knows for the server now (`IP_MTU`). */
  kernelPathMtu(): number {
    return this.#sock.pathMtu();
  }

  /** See {@link Prober.probe}. */
  async probe(size: number): Promise<ProbeOutcome> {
    const seq = ++this.#seq;
    const datagram = this.#core.probe(seq, size);
    if (!datagram) throw new UnmeasurableError("the diagnostic session lost its keys");
    this.#sizes.set(seq, size);
    const start = performance.now();
    const e = this.#sock.send(datagram);
    if (e === Errno.EMSGSIZE) {
      return { kind: "too_big", pmtu: this.#sock.pathMtu(), via: "emsgsize" };
    }
    // EAGAIN/ENOBUFS (a full queue) are loss as far as the search cares: wait out the timeout.
    if (e !== 0 && e !== Errno.EAGAIN && e !== Errno.ENOBUFS) this.#socketError(e, "sending");
    const deadline = start + this.#probeTimeoutMs;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return { kind: "timeout" };
      const r = await this.#sock.receive(this.#rx, left);
      if (r.kind === "timeout") return { kind: "timeout" };
      if (r.kind === "error") {
        if (r.errno !== Errno.EMSGSIZE) this.#socketError(r.errno, "waiting for a probe answer");
        // An ICMP "fragmentation needed" arrived; the kernel has lowered its path MTU.
        const pmtu = this.#sock.pathMtu();
        if (pathMtuOfPayload(size, this.headerBytes) > pmtu) {
          return { kind: "too_big", pmtu, via: "icmp" };
        }
        continue; // about an earlier, larger probe: keep waiting for this one's answer
      }
      const now = performance.now();
      this.#core.receive(now, this.#packet(r.length), this.#out);
      this.#flush();
      for (const ev of this.#core.events.splice(0)) {
        if (ev.type !== "probe_ack") continue;
        const acked = this.#sizes.get(ev.seq);
        // A late answer to an equal or larger probe proves this size as well.
        if (acked !== undefined && acked >= size) {
          return {
            kind: "ack",
            received: ev.received,
            serverMtu: ev.serverMtu,
            rttMs: now - start,
          };
        }
      }
    }
  }

  /** Says goodbye to the server (one sealed disconnect) and closes the socket. */
  close(): void {
    try {
      this.#core.close();
      this.#flush();
    } finally {
      this.#sock.close();
    }
  }

  #packet(length: number): PacketBuf {
    return new PacketBuf(this.#rx.subarray(0, length), length);
  }

  #flush(): void {
    for (const d of this.#core.outbox.splice(0)) {
      const e = this.#sock.send(d);
      if (e === Errno.ECONNREFUSED) this.#socketError(e, "sending");
    }
  }

  #socketError(e: number, when: string): never {
    const where = formatEndpoint(this.#server);
    if (e === Errno.ECONNREFUSED) {
      throw new UnmeasurableError(
        `nothing listens on UDP ${where}: an ICMP "port unreachable" came back ${when}`,
      );
    }
    if (e === Errno.EHOSTUNREACH || e === Errno.ENETUNREACH) {
      throw new UnmeasurableError(`${where} is unreachable (${errnoName(e)} ${when})`);
    }
    throw new UnmeasurableError(
      `UDP to ${where} failed ${when}: ${this.#sock.describe(e)}`,
    );
  }
}
