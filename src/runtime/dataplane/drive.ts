/**
 * What both data-path Workers share once their I/O is open (`worker.ts` over the Linux TUN
 * and recvmmsg sockets, `win_worker.ts` over Wintun and Winsock): the packet-slot and buffer
 * sizes, and the life of a running {@link DataPlaneLoop}: run it until a command or the stop
 * flag, take the command, run again; at the end say goodbye or that the core ended, and report
 * the drops and the scheduler's figures.
 *
 * @module
 */
import type { Endpoint } from "../../lib/endpoint.ts";
import { parseIPv4 } from "../../lib/ip.ts";
import { formatIPv6, parseIPv6 } from "../../lib/ip6.ts";
import type { DropCounters } from "../../core/wire.ts";
import type { CoreAdapter } from "../engine.ts";
import type { SchedulerReport } from "../stats.ts";
import type { DataPlaneLoop } from "./loop.ts";
import { type Command, CTRL_COMMAND, CTRL_STOP, type FromWorker } from "./messages.ts";
import { post as postToMain } from "./worker_inbox.ts";

/**
 * Bytes per packet slot: a jumbo inner packet (9000) plus our overhead, with room for MTU
 * probes up to 9216. Larger datagrams are truncated by the kernel and dropped (too_big); 64
 * slots each way of 64 KiB would cost 8 MB of RSS for packets that never come.
 */
export const SLOT_BYTES = 9216 + 64;
/**
 * A client's receive buffer: with the flow scheduler, bulk that arrives faster than this
 * process can open it is shed by us once the queue passes a fixed depth (`SHED_BASE_BYTES` in
 * loop.ts), so the kernel never drops a game packet at random; the room above that absorbs a
 * stall of the loop. 256 KiB was too little: a CPU-bound download (bench/game.ts, 1.1 Gbit/s)
 * still overflowed it 109 times in 20 s while the loop was held up (shed 13159), and once a game
 * packet was among them. (Linux doubles it; Windows takes it as given.)
 */
export const RECEIVE_BUFFER_BYTES = 1 << 20;
/** The flow scheduler's pool on a client: 1024 packets of up to 9 KiB, since its MTU arrives
 * after the Worker starts (pages are only touched when used). */
export const CLIENT_POOL_PACKETS = 1024;

/** How a Worker drives its loop: the parts a command touches. */
export interface DriveParts {
  loop: DataPlaneLoop;
  core: CoreAdapter;
  control: Int32Array;
  nextCommand: () => Promise<Command>;
  /** The core closed for good (or the TUN went away): no goodbye, an `ended` message. */
  isClosed: () => boolean;
  /** A fresh socket (or one per path) for `rebind`: new source port, NAT mapping, route. */
  rebind: () => void;
  /** The server endpoint as the loop's send path reads it (see {@link numericServer}). */
  toServer: (e: Endpoint) => Endpoint;
  /** Where messages go (default: the main thread, `worker_inbox.ts`). */
  post?: (msg: FromWorker) => void;
}

/** Runs the loop and its commands until the stop flag or the core's end; always reports. */
export async function driveLoop(p: DriveParts): Promise<void> {
  const { loop, core, control } = p;
  const post = p.post ?? postToMain;
  try {
    for (;;) {
      loop.run();
      if (Atomics.load(control, CTRL_STOP) !== 0 || p.isClosed()) break;
      // Left the wait for a command (CTRL_COMMAND counts those posted and not yet taken: the
      // loop runs again only when none is left).
      const cmd = await p.nextCommand();
      Atomics.sub(control, CTRL_COMMAND, 1);
      const now = performance.now();
      switch (cmd.type) {
        case "rebind":
          p.rebind();
          core.nudge?.(now);
          break;
        case "server":
          core.setServer?.(p.toServer(cmd.server));
          break;
        case "nudge":
          core.nudge?.(now);
          break;
        case "release": {
          const pkt = core.release?.(cmd.id, cmd.forget);
          if (pkt) loop.writeTun(pkt);
          break;
        }
        case "status":
          post({
            type: "status",
            id: cmd.id,
            status: { core: core.status(now), scheduler: schedulerReport(loop) },
          });
          break;
      }
    }
    if (p.isClosed()) post({ type: "ended" });
    else loop.stop();
  } finally {
    post({
      type: "stopped",
      drops: loop.dropsWithScheduler() as DropCounters,
      scheduler: schedulerReport(loop),
    });
  }
}

/** What the loop's flow scheduler did so far. */
export function schedulerReport(loop: DataPlaneLoop): SchedulerReport {
  const st = loop.stats;
  return {
    interactive: st.interactive,
    bulk: st.bulk,
    ce_marked: st.ce_marked,
    codel: st.codel,
    overflow: st.overflow,
    shed: st.shed,
    backpressure: st.backpressure,
  };
}

/**
 * The server's endpoint with its address in numbers (IPv4 `ip`, or IPv6 `ip6`), as the loop's
 * send path reads it, so nothing is parsed per packet. Throws for text that is no address, and
 * for IPv6 when `ipv4Only` (the Windows data path).
 */
export function numericServer(e: Endpoint, ipv4Only = false): Endpoint {
  const ip = parseIPv4(e.hostname);
  if (ip !== undefined) return { ...e, ip } as Endpoint;
  if (ipv4Only) {
    throw new Error(`the Windows data path speaks IPv4 only; server ${e.hostname} is not`);
  }
  const ip6 = parseIPv6(e.hostname);
  if (!ip6) throw new Error(`Server address ${e.hostname} is not an IPv4 or IPv6 address`);
  return { ...e, hostname: formatIPv6(ip6), ip: 0, ip6 } as Endpoint;
}
