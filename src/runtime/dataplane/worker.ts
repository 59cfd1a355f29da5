/**
 * Entry point of the data-plane Worker: builds the core and the fast I/O from the init message,
 * then runs {@link DataPlaneLoop} until the main thread sets the stop flag.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { ClientCore } from "../../core/client.ts";
import { PacketBuf } from "../../core/packet.ts";
import { ServerCore } from "../../core/server.ts";
import { parseIPv4 } from "../../core/ip.ts";
import { createAead } from "../../crypto/aead.ts";
import { libc } from "../../io/_libc.ts";
import { adoptLinuxTun } from "../../io/tun/linux.ts";
import { LinuxUdpSocket } from "../../io/udp/linux.ts";
import { ClientAdapter, type CoreAdapter, type CoreEvent, ServerAdapter } from "../engine.ts";
import { DataPlaneLoop } from "./loop.ts";
import type { FromWorker, ToWorker } from "./messages.ts";

/** Largest datagram a slot holds: an IPv4 packet of 65535 plus our overhead fits in 65536+64. */
const SLOT_BYTES = 65536 + 64;

function post(msg: FromWorker): void {
  self.postMessage(msg);
}

self.onmessage = (e: MessageEvent<ToWorker>) => {
  const init = e.data;
  try {
    run(init);
  } catch (err) {
    post({ type: "error", message: (err as Error).message });
  }
  self.close();
};

function run(init: ToWorker): void {
  const aead = createAead("auto");
  let core: CoreAdapter;
  let isClosed = () => false;
  if (init.role === "server") {
    core = new ServerAdapter(
      new ServerCore({
        privateKey: init.privateKey,
        clients: init.clients,
        pool: init.pool,
        mtu: init.mtu,
        routes: init.routes,
        dns: init.dns,
        keepaliveMs: init.keepaliveMs,
        sessionTimeoutMs: init.sessionTimeoutMs,
        mssClamp: init.mssClamp,
        aead,
      }),
    );
  } else {
    const client = new ClientCore({
      privateKey: init.privateKey,
      serverPublicKey: init.serverPublicKey,
      aead,
      keepaliveMs: init.keepaliveMs,
      mssClamp: init.mssClamp,
    });
    const ip = parseIPv4(init.server.hostname);
    if (ip === undefined) throw new Error(`Server address ${init.server.hostname} is not IPv4`);
    core = new ClientAdapter(client, { ...init.server, ip } as typeof init.server);
    client.start(performance.now(), Date.now());
    isClosed = () => client.closed;
  }
  // Slots: each its own buffer, views made once; the socket's C structs point at them for its
  // whole life, and these arrays keep them referenced.
  const rx = Array.from({ length: init.batch }, () => PacketBuf.alloc(SLOT_BYTES));
  const tx = Array.from({ length: init.batch }, () => PacketBuf.alloc(SLOT_BYTES));
  const udp = LinuxUdpSocket.open({
    host: init.bind.hostname,
    port: init.bind.port,
    rxSlots: rx.map((s) => s.buf),
    txSlots: tx.map((s) => s.buf),
    gso: true,
    sndbuf: 4 << 20,
    rcvbuf: 4 << 20,
  });
  const tun = adoptLinuxTun(init.tunFd, init.tunName);
  const loop = new DataPlaneLoop({
    c: libc(),
    core,
    tun,
    udp,
    rx,
    tx,
    wakeFd: init.wakeFd,
    control: new Int32Array(init.control),
    onEvents: (events: CoreEvent[]) => post({ type: "events", events }),
    isClosed,
  });
  post({
    type: "ready",
    local: { hostname: udp.localHost, port: udp.localPort },
    aead: aead.name,
    gso: udp.gsoEnabled,
  });
  try {
    loop.run();
    if (isClosed()) post({ type: "ended" });
    else loop.stop();
  } finally {
    post({ type: "stopped", drops: core.drops });
    udp.close();
    tun.close();
  }
}
