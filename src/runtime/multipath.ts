/**
 * The client runtime's side of multipath (dual channel): turning the `paths` config into
 * sockets for either data path, and the per-path log lines (`Path 1 (wlan0): rtt 12.3 ms, loss
 * 2.0%`) from the core's `paths` events.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import { pathName, type PathSpec } from "../config/paths.ts";
import type { ClientEvent } from "../core/client.ts";
import type { PathReport } from "../core/paths.ts";
import { DenoUdpSocket, type UdpSocket } from "../io/udp/socket.ts";
import type { PathSocket } from "./dataplane/messages.ts";

/** A `paths` event of the client core. */
export type PathsEvent = Extract<ClientEvent, { type: "paths" }>;

/** The fast data path's socket per path: a device to bind to, or a source address. */
export function fastPathSockets(paths: PathSpec[]): PathSocket[] {
  return paths.map((p) =>
    "interface" in p ? { host: "0.0.0.0", device: p.interface } : { host: p.source }
  );
}

/**
 * Opens the portable data path's socket for `path`: bound to its source address. Binding to an
 * interface needs SO_BINDTODEVICE, which `Deno.listenDatagram` cannot set: refused with a
 * message that says what to do instead.
 */
export function openPortablePathSocket(paths: PathSpec[], path: number): UdpSocket {
  const p = paths[path]!;
  if ("interface" in p) {
    throw new Error(
      `paths[${path}]: interface ${p.interface} needs the fast data path (SO_BINDTODEVICE); ` +
        `use data_path: auto or fast, or give this path as source: <its IPv4 address>`,
    );
  }
  return new DenoUdpSocket(p.source, 0);
}

/** Opens every path's portable socket (closing those already open if one fails). */
export function openPortablePathSockets(paths: PathSpec[]): UdpSocket[] {
  const out: UdpSocket[] = [];
  try {
    for (let i = 0; i < paths.length; i++) out.push(openPortablePathSocket(paths, i));
  } catch (err) {
    for (const s of out) s.close();
    throw err;
  }
  return out;
}

/** `Path 1 (wlan0)`: 1-based, as people count, with the configured interface or address. */
export function describePathIndex(paths: PathSpec[], i: number): string {
  const p = paths[i];
  return p ? `Path ${i + 1} (${pathName(p)})` : `Path ${i + 1}`;
}

/** One path's figures: `rtt 12.3 ms, loss 2.0%` (or that nothing came back yet). */
export function formatPathReport(r: PathReport): string {
  const rtt = r.rttMs < 0 ? "rtt unknown" : `rtt ${r.rttMs.toFixed(1)} ms`;
  return `${rtt}, loss ${r.lossPct.toFixed(1)}%${r.up ? "" : ", down"}`;
}

/** Logs a `paths` event: what changed (nothing, for the periodic report), then every path's
 * RTT and loss. */
export function logPathsEvent(
  log: Logger,
  e: PathsEvent,
  paths: PathSpec[],
  mode: string,
): void {
  const name = (i: number) => describePathIndex(paths, i);
  for (const c of e.changes) {
    switch (c.kind) {
      case "down":
        log.warning("{path} is down ({reason})", { path: name(c.path), reason: c.reason });
        break;
      case "up":
        log.info("{path} is up again", { path: name(c.path) });
        break;
      case "switch":
        log.warning(
          mode === "failover" ? "Traffic moved to {path}" : "{path} is now the active path",
          { path: name(c.path) },
        );
        break;
    }
  }
  for (const r of e.paths) {
    log.info("{path}: {figures}", { path: name(r.index), figures: formatPathReport(r) });
  }
}
