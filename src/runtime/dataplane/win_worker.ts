/**
 * The Windows client data path, a Worker: the same {@link DataPlaneLoop} and flow scheduler as
 * the Linux Worker (game packets first, fair queueing, CoDel, shaping, backpressure), over
 * Windows I/O by FFI: a Wintun session ({@link WintunBatchTun}), a Winsock UDP socket
 * ({@link WinsockBatchUdp}) and one synchronous WaitForMultipleObjects on [Wintun read event,
 * wake event, socket event (FD_READ | FD_WRITE)] with the next deadline as timeout
 * ({@link WinPoller}). No awaits and no thread hops while packets flow.
 *
 * Stop and commands come as on Linux: a flag in shared memory and SetEvent on the wake event;
 * the Worker then returns to its event loop to read the queued command message.
 *
 * What the Windows socket lacks (GSO, TOS/ECN both ways, the receive queue's depth) is listed
 * in `winsock_batch.ts`. IPv4 and one path only.
 *
 * On Linux it runs over the fake wintun library (a Linux TUN, POSIX sockets, eventfds behind
 * the same names); it has not run on real Windows.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { PacketBuf } from "../../core/packet.ts";
import { loadAead } from "../../crypto/aead.ts";
import { bestX25519 } from "../../crypto/x25519.ts";
import { WintunBatchTun } from "../../io/tun/wintun_batch.ts";
import { WinsockBatchUdp } from "../../io/udp/winsock_batch.ts";
import { WinPoller } from "../../io/win_poll.ts";
import { ClientAdapter, type CoreEvent } from "../engine.ts";
import { DataPlaneLoop, DEFAULT_SNDBUF_BYTES } from "./loop.ts";
import { warmUp } from "./warmup.ts";
import {
  CLIENT_POOL_PACKETS,
  driveLoop,
  numericServer,
  RECEIVE_BUFFER_BYTES,
  SLOT_BYTES,
} from "./drive.ts";
import type { WinInit } from "./win_messages.ts";
import { post, serveWorker } from "./worker_inbox.ts";

/** Datagrams per receive and send batch (a run of recvfrom/sendto calls). */
const BATCH = 64;

const nextCommand = serveWorker<WinInit>((init) => run(init));

async function run(init: WinInit): Promise<void> {
  const aead = await loadAead("auto");
  // Compile the packet path before the first real packet (warmup.ts says why).
  const t0 = performance.now();
  warmUp(aead);
  const warmMs = performance.now() - t0;
  const { ClientCore } = await import("../../core/client.ts");
  const client = new ClientCore({ ...init.params, aead, dh: bestX25519() });
  const core = new ClientAdapter(client, numericServer(init.server, true));

  const rx = Array.from({ length: BATCH }, () => PacketBuf.alloc(SLOT_BYTES));
  // One more send slot than a batch: the last carries control datagrams.
  const tx = Array.from({ length: BATCH + 1 }, () => PacketBuf.alloc(SLOT_BYTES));
  const openUdp = (port: number) =>
    WinsockBatchUdp.open({
      dll: init.winsock,
      host: init.bind,
      port,
      rxSlots: rx.map((s) => s.buf),
      txSlots: tx.map((s) => s.buf),
      sndbuf: DEFAULT_SNDBUF_BYTES,
      rcvbuf: RECEIVE_BUFFER_BYTES,
    });
  let udp: WinsockBatchUdp | undefined;
  let tun: WintunBatchTun | undefined;
  let poller: WinPoller | undefined;
  try {
    udp = openUdp(0);
    tun = new WintunBatchTun({
      name: init.tun.name,
      dll: init.tun.dll,
      kernel32: init.kernel32,
      // The main thread's session (win_messages.ts): it ends the session after we stopped.
      session: init.tun.session,
      readEvent: init.tun.readEvent,
      readBuffers: CLIENT_POOL_PACKETS,
      writeBuffers: BATCH,
      packetBytes: SLOT_BYTES,
      drops: core.drops,
    });
    poller = new WinPoller(3, init.kernel32);
    const t = tun;
    const isClosed = () => client.closed || t.gone;
    const loop = new DataPlaneLoop({
      core,
      tun,
      socks: [{ udp, rx, tx }],
      poller,
      // Auto-reset: the wait that reports it has consumed it; nothing to drain.
      wake: { fd: -1, handle: init.wake, drain: () => {} },
      control: new Int32Array(init.control),
      onEvents: (events: CoreEvent[]) => post({ type: "events", events }),
      isClosed,
      sched: init.sched,
    });
    client.start(performance.now(), Date.now());
    post({
      type: "ready",
      local: { hostname: udp.localHost, port: udp.localPort },
      aead: aead.name,
      gso: false,
      warmMs,
    });
    await driveLoop({
      loop,
      core,
      control: new Int32Array(init.control),
      nextCommand,
      isClosed,
      rebind: () => {
        // A fresh socket: new source port, fresh NAT mapping, fresh route lookup.
        const fresh = openUdp(0);
        udp!.close();
        udp = fresh;
        loop.setUdp(fresh);
      },
      toServer: (e) => numericServer(e, true),
    });
  } finally {
    udp?.close();
    tun?.close();
    poller?.close();
  }
}
