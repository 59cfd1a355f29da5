/**
 * One factory for the data path, for the server and the client alike: the fast path (a Linux
 * Worker, see `dataplane/`) or the portable one (`Deno.listenDatagram` on the main thread,
 * `portable.ts`), chosen by the `data_path` setting, over the same core settings. The runtimes
 * above only say what they want (role, TUN, addresses, core settings) and get an
 * {@link Engine} back.
 *
 * @module
 */
import type { ClientParams } from "../core/client.ts";
import type { ServerParams } from "../core/server.ts";
import { type Endpoint, formatEndpoint } from "../lib/endpoint.ts";
import type { TunDevice } from "../io/tun/device.ts";
import type { UdpSocket } from "../io/udp/socket.ts";
import type { CoreEvent } from "./engine.ts";
import type { Engine } from "./portable.ts";
import { startFast } from "./dataplane/host.ts";
import { WintunTun } from "../io/tun/wintun.ts";
import type { PathSocket } from "./dataplane/messages.ts";
import type { SchedParams } from "./dataplane/loop.ts";

/** What to start. */
export type DataPathSpec =
  | {
    role: "server";
    /** The fast Worker path (Linux), or the portable one. */
    fast: boolean;
    tun: TunDevice;
    /** Where to listen. */
    bind: Endpoint;
    params: ServerParams;
    /** The flow scheduler (fast path only). */
    sched: SchedParams;
  }
  | {
    role: "client";
    fast: boolean;
    tun: TunDevice;
    /** The server's address. */
    server: Endpoint;
    params: ClientParams;
    /** The flow scheduler (the fast path and the Windows Worker). */
    sched: SchedParams;
    /** Multipath: the fast path's socket per path (`paths` in the config). */
    fastPaths?: PathSocket[];
    /** Multipath: the portable path's socket per path, and how to open a fresh one. */
    portablePaths?: { open(path: number): UdpSocket; count: number };
    /** A Wintun adapter (Windows, or the fake here): the Windows Worker (Winsock by FFI, one
     * WaitForMultipleObjects) instead of the portable path, when the server is IPv4 and one
     * path is used. */
    windowsWorker?: boolean;
  };

/** Starts the data path `spec` asks for; `onEvents` gets the core's events. */
export async function startDataPath(
  spec: DataPathSpec,
  onEvents: (events: CoreEvent[]) => void,
): Promise<Engine> {
  const { tun } = spec;
  if (
    spec.role === "client" && spec.windowsWorker && !spec.fast && !spec.portablePaths &&
    !spec.server.hostname.includes(":") && tun instanceof WintunTun
  ) {
    const { startWindowsWorker } = await import("./dataplane/win_host.ts");
    const lent = tun.lend();
    const { dll, kernel32 } = tun.libraries;
    return await startWindowsWorker({
      tun: { name: tun.name, dll, ...lent },
      kernel32,
      // The fake wintun stands in for ws2_32 too (tests/support/fakewintun/).
      winsock: Deno.build.os === "windows" ? "ws2_32.dll" : dll,
      bind: "0.0.0.0",
      params: spec.params,
      server: spec.server,
      sched: spec.sched,
    }, onEvents);
  }
  if (spec.fast) {
    const common = { tunFd: tun.fd, vnetHdr: tun.vnetHdr === true, tunName: tun.name };
    if (spec.role === "server") {
      return await startFast(
        { role: "server", ...common, bind: spec.bind, params: spec.params, sched: spec.sched },
        onEvents,
      );
    }
    return await startFast({
      role: "client",
      ...common,
      // An IPv6 server needs an IPv6 socket (a wildcard one, which takes IPv4 as well).
      bind: { hostname: spec.server.hostname.includes(":") ? "::" : "0.0.0.0", port: 0 },
      server: spec.server,
      params: spec.params,
      sched: spec.sched,
      paths: spec.fastPaths,
    }, onEvents);
  }
  // The portable path and its core load only when used: the fast path runs them in the
  // Worker, and every module the main thread loads stays resident for the process's life.
  const { loadAead } = await import("../crypto/aead.ts");
  const { DenoUdpSocket } = await import("../io/udp/socket.ts");
  const { startPortable } = await import("./portable.ts");
  const aead = await loadAead("auto");
  const { bestX25519 } = await import("../crypto/x25519.ts");
  let engine: Engine;
  let socks: UdpSocket[];
  if (spec.role === "server") {
    const { ServerCore } = await import("../core/server.ts");
    const { ServerAdapter } = await import("./engine.ts");
    socks = [new DenoUdpSocket(spec.bind.hostname, spec.bind.port)];
    const core = new ServerCore({ ...spec.params, aead, dh: bestX25519() });
    engine = startPortable(new ServerAdapter(core), tun, socks[0]!, onEvents);
  } else {
    const { ClientCore } = await import("../core/client.ts");
    const { ClientAdapter } = await import("./engine.ts");
    const core = new ClientCore({ ...spec.params, aead, dh: bestX25519() });
    const paths = spec.portablePaths;
    const any = spec.server.hostname.includes(":") ? "::" : "0.0.0.0";
    const open = (path: number) => paths ? paths.open(path) : new DenoUdpSocket(any, 0);
    socks = [];
    try {
      for (let i = 0; i < (paths?.count ?? 1); i++) socks.push(open(i));
    } catch (err) {
      for (const s of socks) s.close(); // a path that cannot be opened: none stays open
      throw err;
    }
    core.start(performance.now(), Date.now());
    engine = startPortable(
      new ClientAdapter(core, spec.server),
      tun,
      socks,
      onEvents,
      () => core.closed,
      open,
    );
  }
  return {
    ...engine,
    description: `${engine.description}, AEAD ${aead.name}, UDP ${
      socks.map((u) => formatEndpoint(u.local)).join(" + ")
    }${tun.description ? `, TUN ${tun.description}` : ""}`,
  };
}
