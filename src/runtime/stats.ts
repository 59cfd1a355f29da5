/**
 * Formatting of counters for logs.
 *
 * @module
 */
import type { DropCounters } from "../core/wire.ts";
import type { ClientStatus } from "../core/client.ts";
import type { ServerStatus } from "../core/server.ts";

/** What a running data path tells `xvpn status`: its core's figures, and its scheduler's. */
export interface EngineStatus {
  core: ClientStatus | ServerStatus;
  /** The flow scheduler so far (the fast path; absent on the portable one). */
  scheduler?: SchedulerReport;
}

/** What the flow scheduler did over a run (the fast path's loop). */
export interface SchedulerReport {
  interactive: number;
  bulk: number;
  ce_marked: number;
  codel: number;
  overflow: number;
  shed: number;
  backpressure: number;
}

/** What a data path reports when it stops. */
export interface StopReport {
  drops: DropCounters;
  /** Absent on the portable path (it has no scheduler). */
  scheduler?: SchedulerReport;
}

/** `sent 120 interactive / 9800 bulk, CE marked 31, CoDel drops 0, ...` for the exit log. */
export function formatScheduler(s: SchedulerReport): string {
  return `sent ${s.interactive} interactive / ${s.bulk} bulk; CE marked ${s.ce_marked}, ` +
    `CoDel drops ${s.codel}, overflow drops ${s.overflow}, shed ${s.shed}, ` +
    `waited for the socket ${s.backpressure} times`;
}

/** `bad_mac1=3 replay=1`, only the non-zero counters; empty when nothing was dropped. */
export function formatDrops(d: DropCounters): string {
  return Object.entries(d)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k}=${n}`)
    .join(" ");
}
