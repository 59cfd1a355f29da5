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
 * One setTimeout runs the core's timers at its next deadline, asked again after every packet
 * (a send can arm a timer, such as the client's liveness probe). A multipath client has one
 * socket (and one net loop) per path; a datagram goes out on the socket its destination names
 * (`via`), and a redundant packet on each of its destinations' sockets.
 *
 * @module
 */
import { PacketBuf } from "../core/packet.ts";
import { Verdict } from "../core/result.ts";
import { type Endpoint } from "../lib/endpoint.ts";
import type { DropCounters } from "../core/wire.ts";
import type { EngineStatus, StopReport } from "./stats.ts";
import type { TunDevice } from "../io/tun/device.ts";
import type { UdpSocket } from "../io/udp/socket.ts";
import { logger } from "../log.ts";
import type { CoreAdapter, CoreEvent } from "./engine.ts";
import type { FollowAddress } from "../core/follow.ts";

const log = logger("datapath");
/** Largest datagram or packet handled (IPv4 maximum). */
const MAX_PACKET_BYTES = 65535;
/** Longest wait before the timer looks again even with nothing due (a safety net, not a tick). */
const MAX_TIMER_MS = 60_000;

/** A running data path. */
export interface Engine {
  /** What moves the packets, for the startup log line. */
  readonly description: string;
  /** Says goodbye to the peer(s), ends the loops, and resolves with what it counted. */
  stop(): Promise<StopReport>;
  /** Resolves when the engine ended by itself (the core closed for good). */
  readonly ended: Promise<void>;
  /** Client only: a fresh UDP socket (new source port and route lookup), then a probe. */
  rebind?(): Promise<void>;
  /** Client only: the server's address changed (re-resolved host name). */
  setServer?(server: Endpoint): void;
  /** Client only: the local network changed; probe the path now. */
  nudge?(): void;
  /** The figures for `xvpn status`. */
  status(): Promise<EngineStatus>;
  /** Client only: domain following's held answer `id` may go to the TUN now. */
  release?(id: number, forget?: FollowAddress[]): void;
}

/**
 * Starts the portable data path over `tun` and `udp` for `core`. `udp` is one socket per path
 * for a multipath client; `newUdp(path)` opens a fresh one for a rebind.
 */
export function startPortable(
  core: CoreAdapter,
  tun: TunDevice,
  firstUdp: UdpSocket | UdpSocket[],
  onEvents: (events: CoreEvent[]) => void,
  isClosed: () => boolean = () => false,
  newUdp?: (path: number) => UdpSocket,
): Engine {
  const socks = Array.isArray(firstUdp) ? [...firstUdp] : [firstUdp];
  const sockFor = (to: Endpoint) => socks[to.via ?? 0] ?? socks[0]!;
  let running = true;
  let stopped: Promise<StopReport> | undefined;
  let endedResolve!: () => void;
  const ended = new Promise<void>((r) => (endedResolve = r));

  // The core's timers: one setTimeout at the earliest deadline, moved earlier when a packet
  // armed an earlier one.
  let timer: ReturnType<typeof setTimeout> | undefined;
  let timerAt = Infinity;
  const onTimer = () => {
    timer = undefined;
    timerAt = Infinity;
    core.tick(performance.now(), Date.now());
    flush();
  };
  let stopping = false;
  const schedule = () => {
    if (stopping) return;
    const at = core.deadline();
    if (at >= timerAt) return;
    if (timer !== undefined) clearTimeout(timer);
    timerAt = at;
    const delay = Math.min(MAX_TIMER_MS, Math.max(0, at - performance.now()));
    timer = setTimeout(onTimer, delay);
  };

  const flush = () => {
    for (const o of core.takeOutbox()) {
      sockFor(o.to).send(o.data, o.to).catch((err) =>
        log.debug("Send failed: {err}", { err: String(err) })
      );
    }
    const events = core.takeEvents();
    if (events.length) onEvents(events);
    if (isClosed()) endedResolve();
    schedule();
  };

  const netLoop = async (path: number) => {
    const out = new Uint8Array(MAX_PACKET_BYTES);
    while (running) {
      let d: Uint8Array, from;
      try {
        [d, from] = await socks[path]!.receive();
      } catch (err) {
        if (!running) return;
        log.warning("UDP receive failed: {err}", { err: String(err) });
        continue;
      }
      const r = core.receive(performance.now(), new PacketBuf(d), from, out);
      if (r.verdict === Verdict.Tun) writeTun(tun, out, r.length, core.drops);
      if (core.pending) flush();
      else schedule();
    }
  };
  const tunLoop = async () => {
    const buf = new Uint8Array(MAX_PACKET_BYTES);
    const out = PacketBuf.alloc(MAX_PACKET_BYTES + 64);
    while (running) {
      const n = tun.read(buf);
      if (n === 0) {
        await tun.waitReadable(-1); // stop() wakes it
        continue;
      }
      const r = core.fromTun(performance.now(), buf, n, out);
      if (r.verdict === Verdict.Net) {
        try {
          if (r.extraCount === 0) await sockFor(r.to!).send(out.bytes(), r.to!);
          else {
            // Copied out first: the core's result object changes while we await.
            const dests = [r.to!, ...r.extra!.slice(0, r.extraCount)];
            await Promise.all(dests.map((to) => sockFor(to).send(out.bytes(), to)));
          }
        } catch (err) {
          if (!running) return;
          log.debug("Send failed: {err}", { err: String(err) });
        }
      }
      if (core.pending) flush();
      else schedule();
    }
  };
  core.tick(performance.now(), Date.now());
  flush();
  const loops = Promise.all([...socks.map((_, path) => netLoop(path)), tunLoop()]);

  return {
    description: "portable (Deno.listenDatagram on the main thread)",
    ended,
    rebind: newUdp
      ? () => {
        socks.forEach((old, path) => {
          let fresh: UdpSocket;
          try {
            fresh = newUdp(path);
          } catch (err) {
            // A path whose address is gone keeps its socket; it works again if it comes back.
            log.debug("Cannot reopen path {path}: {err}", { path: path + 1, err: String(err) });
            return;
          }
          socks[path] = fresh; // the net loop picks it up after the old socket's receive fails
          old.close();
        });
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
    status: () => Promise.resolve({ core: core.status(performance.now()) }),
    release: (id: number, forget?: FollowAddress[]) => {
      const pkt = core.release?.(id, forget);
      if (pkt) writeTun(tun, pkt, pkt.length, core.drops);
    },
    stop() {
      // Once: the runtime's loop and its cleanup may both ask.
      return stopped ??= (async () => {
        stopping = true;
        if (timer !== undefined) clearTimeout(timer);
        core.stop();
        // The goodbye leaves on the live socket, so the peer sees our usual address.
        await Promise.allSettled(core.takeOutbox().map((o) => sockFor(o.to).send(o.data, o.to)));
        const events = core.takeEvents();
        if (events.length) onEvents(events);
        running = false;
        tun.wake();
        for (const s of socks) s.close();
        await loops;
        return { drops: core.drops };
      })();
    },
  };
}

/** Writes one packet to the TUN; a full queue or a refused packet is a counted drop. */
function writeTun(tun: TunDevice, buf: Uint8Array, len: number, drops: DropCounters): void {
  try {
    if (tun.write(buf, len) < 0) drops.tun_full++;
  } catch {
    drops.tun_error++;
  }
}
