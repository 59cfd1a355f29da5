/**
 * Entry point of the data-plane Worker: builds the core and the fast I/O from the init message,
 * then runs {@link DataPlaneLoop} until the main thread sets the stop flag.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { PacketBuf } from "../../core/packet.ts";
import { loadAead } from "../../crypto/aead.ts";
import { bestX25519 } from "../../crypto/x25519.ts";
import { libc } from "../../io/_libc.ts";
import { adoptLinuxBatchTun } from "../../io/tun/linux_batch.ts";
import { LinuxPoller } from "../../io/poll.ts";
import { LinuxUdpSocket } from "../../io/udp/linux.ts";
import { ClientAdapter, type CoreAdapter, type CoreEvent, ServerAdapter } from "../engine.ts";
import { DataPlaneLoop, DEFAULT_SNDBUF_BYTES, type UdpSlots } from "./loop.ts";
import { warmUp } from "./warmup.ts";
import {
  CLIENT_POOL_PACKETS,
  driveLoop,
  numericServer,
  RECEIVE_BUFFER_BYTES,
  SLOT_BYTES,
} from "./drive.ts";
import type { ClientInit, PathSocket, ServerInit } from "./messages.ts";
import { post, serveWorker } from "./worker_inbox.ts";

/**
 * Socket buffers: a few batches, not a queue. Whatever waits in them waits in front of a game
 * packet. Measured with the tunnel benchmark (one TCP flow saturating the tunnel, pings beside
 * it): 4 MiB gave a loaded RTT p99 of ~36 ms, 512 KiB 9.6 ms, 128 KiB 7.4 ms, 64 KiB 5.5 ms, at
 * the same throughput (the kernel doubles the value for its bookkeeping).
 */
const SOCKET_BUFFER_BYTES = DEFAULT_SNDBUF_BYTES;
/**
 * A server's receive buffer is shared by every client: 4x, so that a stall of the loop (a
 * scheduling hiccup on a shared vCPU, a major GC) with 1000 clients' game packets arriving does
 * not overflow it; bulk is still shed at a client's depth (`SHED_BASE_BYTES` in loop.ts).
 */
const SERVER_RECEIVE_BUFFER_BYTES = 1 << 20;
/** The flow scheduler's pool (packets queued over every session): the memory bound. A server
 * holds at most 4096 MTU-sized packets (about 6 MB at MTU 1420); a client CLIENT_POOL_PACKETS. */
const SERVER_POOL_PACKETS = 4096;

const nextCommand = serveWorker<ServerInit | ClientInit>((init) => run(init));

async function run(init: ServerInit | ClientInit): Promise<void> {
  const aead = await loadAead("auto");
  // Compile the packet path before the first real packet (warmup.ts says why).
  const t0 = performance.now();
  warmUp(aead);
  const warmMs = performance.now() - t0;
  let core: CoreAdapter;
  let isClosed = () => false;
  if (init.role === "server") {
    // Each role loads only its own core (a Worker's RSS counts against the process).
    const { ServerCore } = await import("../../core/server.ts");
    core = new ServerAdapter(new ServerCore({ ...init.params, aead, dh: bestX25519() }));
  } else {
    const { ClientCore } = await import("../../core/client.ts");
    const client = new ClientCore({ ...init.params, aead, dh: bestX25519() });
    core = new ClientAdapter(client, numericServer(init.server));
    client.start(performance.now(), Date.now());
    isClosed = () => client.closed;
  }
  // Slots: each its own buffer, views made once; the socket's C structs point at them for its
  // whole life, and these arrays keep them referenced.
  // Multipath: one socket per path, each with slots of its own; path 1's is `udp`.
  const specs: PathSocket[] = (init.role === "client" ? init.paths : undefined) ??
    [{ host: init.bind.hostname }];
  const slots = specs.map(() => ({
    rx: Array.from({ length: init.batch }, () => PacketBuf.alloc(SLOT_BYTES)),
    // One more send slot than a batch: the last carries control datagrams.
    tx: Array.from({ length: init.batch + 1 }, () => PacketBuf.alloc(SLOT_BYTES)),
  }));
  const { rx, tx } = slots[0]!;
  const openUdp = (port: number, path = 0) =>
    LinuxUdpSocket.open({
      host: specs[path]!.host,
      port,
      device: specs[path]!.device,
      rxSlots: slots[path]!.rx.map((s) => s.buf),
      txSlots: slots[path]!.tx.map((s) => s.buf),
      gso: true,
      tos: true,
      // The server answers from the address each datagram came to (a floating or second
      // address of its host); the client sends from whatever its route says.
      pktinfo: init.role === "server",
      sndbuf: SOCKET_BUFFER_BYTES,
      rcvbuf: init.role === "server" ? SERVER_RECEIVE_BUFFER_BYTES : RECEIVE_BUFFER_BYTES,
    });
  let udp = openUdp(init.bind.port);
  const more: UdpSlots[] = [];
  try {
    for (let k = 1; k < specs.length; k++) more.push({ udp: openUdp(0, k), ...slots[k]! });
  } catch (err) {
    for (const s of [udp, ...more.map((m) => m.udp)]) s.close();
    throw err;
  }
  /** Multipath rebind: a fresh socket per path; a path whose socket cannot be opened now (its
   * address is gone) keeps the old one, which works again if the address comes back. */
  const reopenPaths = () => {
    socks.forEach((s, k) => {
      try {
        const fresh = openUdp(0, k);
        s.udp.close();
        if (k === 0) udp = fresh;
        loop.setUdp(fresh, k);
      } catch {
        // keep the old socket
      }
    });
  };
  const server = init.role === "server";
  const tun = adoptLinuxBatchTun(init.tunFd, init.tunName, {
    vnetHdr: init.vnetHdr,
    readBuffers: server ? SERVER_POOL_PACKETS : CLIENT_POOL_PACKETS,
    writeBuffers: init.batch,
    // The server knows its MTU; a decrypted packet larger than the buffer is dropped (too_big).
    packetBytes: server ? init.params.mtu + 64 : SLOT_BYTES,
    drops: core.drops,
  });
  const c = libc();
  const drain = new Uint8Array(8);
  const socks: UdpSlots[] = [{ udp, rx, tx }, ...more];
  const loop = new DataPlaneLoop({
    core,
    tun,
    socks,
    poller: new LinuxPoller(2 + socks.length),
    wake: { fd: init.wakeFd, drain: () => void c.read(init.wakeFd, drain, 8n) },
    control: new Int32Array(init.control),
    onEvents: (events: CoreEvent[]) => post({ type: "events", events }),
    isClosed,
    sched: init.sched,
  });
  post({
    type: "ready",
    local: { hostname: udp.localHost, port: udp.localPort },
    aead: aead.name,
    warmMs,
    gso: udp.gsoEnabled,
    paths: more.length
      ? [udp, ...more.map((m) => m.udp)].map((u) => ({ hostname: u.localHost, port: u.localPort }))
      : undefined,
  });
  try {
    await driveLoop({
      loop,
      core,
      control: new Int32Array(init.control),
      nextCommand,
      isClosed,
      rebind: () => {
        if (more.length) return reopenPaths();
        // A fresh socket: new source port, fresh NAT mapping, fresh route lookup.
        udp.close();
        udp = openUdp(0);
        loop.setUdp(udp);
      },
      toServer: (e) => numericServer(e),
    });
  } finally {
    for (const s of socks) s.udp.close();
    tun.close();
  }
}
