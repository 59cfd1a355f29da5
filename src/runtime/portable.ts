/**
 * The portable data path: `Deno.listenDatagram` and the TUN fd driven from the main thread.
 *
 * Two loops share the core (JavaScript runs them on one thread, so the core needs no locks):
 *   - net loop: each `receive()` returns a buffer of its own; the decrypted packet goes to the
 *     TUN synchronously before the next receive, so nothing waits in a queue on a shared
 *     buffer (field notes, trap 1);
 *   - TUN loop: drains the non-blocking TUN fd with synchronous reads, sealing each packet into
 *     the loop's own output buffer and awaiting the send before that buffer is reused; when
 *     the fd runs dry it waits in one awaited poll().
 * A timer runs the core's timers and flushes control-path output.
 *
 * @module
 */
import { PacketBuf } from "../core/packet.ts";
import { type Endpoint, Verdict } from "../core/result.ts";
import type { DropCounters } from "../core/wire.ts";
import type { TunDevice } from "../io/tun/device.ts";
import type { UdpSocket } from "../io/udp/socket.ts";
import { logger } from "../log.ts";
import type { CoreAdapter, CoreEvent } from "./engine.ts";
import { writeTun } from "./tunwrite.ts";

const log = logger("datapath");
/** Largest datagram or packet handled (IPv4 maximum). */
const MAX_PACKET_BYTES = 65535;
/** How often the core's timers run on this path. */
const TICK_MS = 100;

/** A running data path. */
export interface Engine {
  /** What moves the packets, for the startup log line. */
  readonly description: string;
  /** Says goodbye to the peer(s), ends the loops, and resolves with the drop counters. */
  stop(): Promise<DropCounters>;
  /** Resolves when the engine ended by itself (the core closed for good). */
  readonly ended: Promise<void>;
  /** Client only: a fresh UDP socket (new source port and route lookup), then a probe. */
  rebind?(): Promise<void>;
  /** Client only: the server's address changed (re-resolved host name). */
  setServer?(server: Endpoint): void;
  /** Client only: the local network changed; probe the path now. */
  nudge?(): void;
}

/** Starts the portable data path over `tun` and `udp` for `core`. */
export function startPortable(
  core: CoreAdapter,
  tun: TunDevice,
  firstUdp: UdpSocket,
  onEvents: (events: CoreEvent[]) => void,
  isClosed: () => boolean = () => false,
  newUdp?: () => UdpSocket,
): Engine {
  let udp = firstUdp;
  let running = true;
  let endedResolve!: () => void;
  const ended = new Promise<void>((r) => (endedResolve = r));

  const flush = () => {
    for (const o of core.takeOutbox()) {
      udp.send(o.data, o.to).catch((err) => log.debug("Send failed: {err}", { err: String(err) }));
    }
    const events = core.takeEvents();
    if (events.length) onEvents(events);
    if (isClosed()) endedResolve();
  };

  const netLoop = async () => {
    const out = new Uint8Array(MAX_PACKET_BYTES);
    while (running) {
      let d: Uint8Array, from;
      try {
        [d, from] = await udp.receive();
      } catch (err) {
        if (!running) return;
        log.warning("UDP receive failed: {err}", { err: String(err) });
        continue;
      }
      const r = core.receive(performance.now(), new PacketBuf(d), from, out);
      if (r.verdict === Verdict.Tun) writeTun(tun, out, r.length, core.drops);
      if (core.pending) flush();
    }
  };
  const tunLoop = async () => {
    const buf = new Uint8Array(MAX_PACKET_BYTES);
    const out = PacketBuf.alloc(MAX_PACKET_BYTES + 64);
    while (running) {
      const n = tun.read(buf);
      if (n === 0) {
        await tun.waitReadable(1000);
        continue;
      }
      const r = core.fromTun(performance.now(), buf, n, out);
      if (r.verdict === Verdict.Net) {
        try {
          await udp.send(out.bytes(), r.to!);
        } catch (err) {
          if (!running) return;
          log.debug("Send failed: {err}", { err: String(err) });
        }
      }
      if (core.pending) flush();
    }
  };
  const timer = setInterval(() => {
    core.tick(performance.now(), Date.now());
    flush();
  }, TICK_MS);
  core.tick(performance.now(), Date.now());
  flush();
  const loops = Promise.all([netLoop(), tunLoop()]);

  return {
    description: "portable (Deno.listenDatagram on the main thread)",
    ended,
    rebind: newUdp
      ? () => {
        const old = udp;
        udp = newUdp(); // the net loop picks it up after the old socket's receive fails
        old.close();
        core.nudge?.(performance.now());
        flush();
        return Promise.resolve();
      }
      : undefined,
    setServer: (server: Endpoint) => core.setServer?.(server),
    nudge: () => {
      core.nudge?.(performance.now());
      flush();
    },
    async stop() {
      clearInterval(timer);
      core.stop();
      // The goodbye leaves on the live socket, so the peer sees our usual address.
      await Promise.allSettled(core.takeOutbox().map((o) => udp.send(o.data, o.to)));
      const events = core.takeEvents();
      if (events.length) onEvents(events);
      running = false;
      tun.wake();
      udp.close();
      await loops;
      return core.drops;
    },
  };
}
