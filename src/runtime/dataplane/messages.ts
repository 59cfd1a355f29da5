/**
 * Messages between the main thread and the data-plane Worker. Everything here is structured-
 * cloneable. Stopping does not use a message (the Worker sits in a blocking poll() and reads no
 * messages): the main thread sets a flag in shared memory and writes the wake eventfd.
 *
 * @module
 */
import type { Endpoint } from "../../lib/endpoint.ts";
import type { ServerParams } from "../../core/server.ts";
import type { ClientParams } from "../../core/client.ts";
import type { SchedParams } from "./loop.ts";
import type { EngineStatus, SchedulerReport } from "../stats.ts";
import type { DropCounters } from "../../core/wire.ts";
import type { CoreEvent } from "../engine.ts";
import type { FollowAddress } from "../../core/follow.ts";

/** Index of the stop flag in the shared control words. */
export const CTRL_STOP = 0;
/** Index of the count of command messages posted and not yet taken: while it is not 0 the
 * Worker leaves poll() to read them. */
export const CTRL_COMMAND = 1;
/** Shared control words (Int32). */
export const CTRL_WORDS = 4;

/** Fields both roles share. */
interface InitCommon {
  type: "init";
  /** TUN fd opened by the main thread (owned by it). */
  tunFd: number;
  /** TUN device name. */
  tunName: string;
  /** The TUN fd carries virtio-net headers (IFF_VNET_HDR): writes may be coalesced. */
  vnetHdr: boolean;
  /** eventfd the main thread writes to wake the Worker's poll(). */
  wakeFd: number;
  /** Shared control words (see CTRL_*). */
  control: SharedArrayBuffer;
  /** UDP address to bind. */
  bind: Endpoint;
  /** Datagrams per recvmmsg/sendmmsg batch. */
  batch: number;
  /** The flow scheduler's settings. */
  sched: SchedParams;
}

/** Starts a server data plane. */
export interface ServerInit extends InitCommon {
  role: "server";
  /** The core's settings, as the portable path gets them too. */
  params: ServerParams;
}

/** Starts a client data plane. */
export interface ClientInit extends InitCommon {
  role: "client";
  /** The core's settings, as the portable path gets them too. */
  params: ClientParams;
  server: Endpoint;
  /** Multipath: one socket per path, in preference order (then `bind` is not used). */
  paths?: PathSocket[];
}

/** How to open one path's socket. */
export interface PathSocket {
  /** Local IPv4 address to bind (`0.0.0.0`: any). */
  host: string;
  /** Network device to bind to (SO_BINDTODEVICE), if any. */
  device?: string;
}

/** A command to a running Worker (sent with postMessage, announced with CTRL_COMMAND). */
export type Command =
  | { type: "rebind" }
  | { type: "server"; server: Endpoint }
  | { type: "nudge" }
  /** Asks for an {@link EngineStatus}, answered with a `status` message of the same `id`. */
  | { type: "status"; id: number }
  /** Domain following: the routes of held answer `id` are in; write it to the TUN. */
  | { type: "release"; id: number; forget?: FollowAddress[] };

/** Main thread to Worker. */
export type ToWorker = ServerInit | ClientInit | Command;

/** Worker to main thread. */
export type FromWorker =
  | {
    type: "ready";
    local: Endpoint;
    aead: string;
    gso: boolean;
    paths?: Endpoint[];
    /** How long the JIT warm-up took (ms). */
    warmMs: number;
  }
  | { type: "events"; events: CoreEvent[] }
  | { type: "ended" }
  | { type: "stopped"; drops: DropCounters; scheduler: SchedulerReport }
  | { type: "error"; message: string }
  | { type: "status"; id: number; status: EngineStatus };

/** Fields the host fills in itself. */
type HostFields = "type" | "wakeFd" | "control" | "batch";

/** What a caller of startFast() gives. */

/** What a caller of startFast() gives: an init message without the host's own fields. */
export type StartArgs =
  | (Omit<ServerInit, HostFields> & { batch?: number })
  | (Omit<ClientInit, HostFields> & { batch?: number });
