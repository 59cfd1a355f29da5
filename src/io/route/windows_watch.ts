/**
 * Following network changes on Windows, which has no `ip monitor`: the runtime asks
 * `Find-NetRoute` for the server every {@link WINDOWS_POLL_MS} and hands each answer to a
 * {@link PathPoller}, which says when the way to the server changed (interface, next hop or
 * source address: what `runtime/netwatch.ts` compares on Linux). Only the comparison lives
 * here; it is pure, so it is tested without Windows.
 *
 * Polling is the fallback: each poll starts a PowerShell (a few hundred ms of CPU), so the
 * interval is long, and the core's liveness probes still notice a dead path within a second.
 * The event-driven way is `NotifyRouteChange2`/`NotifyIpInterfaceChange` from iphlpapi.dll by
 * FFI, which wireguard-windows uses (tunnel/winipcfg/route_change_handler.go and
 * interface_change_handler.go, driven from tunnel/mtumonitor.go and interfacewatcher.go).
 *
 * @module
 */
import type { FoundRoute } from "./windows_lookup.ts";

/** How often to ask Windows for the way to the server, ms. */
export const WINDOWS_POLL_MS = 5000;

/** One poll: the route found, `undefined` for "no route at all", or `"error"` when the
 * lookup itself failed (PowerShell did not start, timed out, printed something else). */
export type PollSample = FoundRoute | undefined | "error";

/** A change of the way to the server, as {@link PathPoller.observe} reports it. */
export interface PathChange {
  /** The way before (undefined: there was none). */
  before: FoundRoute | undefined;
  /** The way now (undefined: there is none). */
  after: FoundRoute | undefined;
  /**
   * The way now is the tunnel adapter itself: the host route to the server went with the
   * interface it was on (Windows drops an interface's routes when it goes down), so the
   * /1 halves catch the server's traffic. The host route must be made again on the new path,
   * which the tunnel's routes now hide: the runtime must take them down to look it up.
   */
  throughTunnel: boolean;
}

/** True when `a` and `b` are the same way to the server (the alias alone does not count: a
 * renamed adapter is the same interface). */
export function samePath(a: FoundRoute | undefined, b: FoundRoute | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return a.ifIndex === b.ifIndex && a.nextHop === b.nextHop && a.source === b.source;
}

/** Compares each poll with the last known way to the server. */
export class PathPoller {
  #current: FoundRoute | undefined;
  #known: boolean;

  /**
   * Starts from `initial`, the way found before the tunnel came up (nothing known when it was
   * not looked up: the first good sample then only sets it). `ifname` is the tunnel adapter.
   */
  constructor(private readonly ifname: string, initial?: FoundRoute) {
    this.#current = initial;
    this.#known = initial !== undefined;
  }

  /** The last known way to the server. */
  get current(): FoundRoute | undefined {
    return this.#current;
  }

  /**
   * Takes one poll; returns the change when the way differs from the last one. A failed lookup
   * changes nothing (a slow PowerShell is not a network change), and neither does the first
   * answer when nothing was known yet.
   */
  observe(sample: PollSample): PathChange | undefined {
    if (sample === "error") return undefined;
    if (!this.#known) {
      this.#known = true;
      this.#current = sample;
      return undefined;
    }
    if (samePath(this.#current, sample)) {
      this.#current = sample; // keep the newest alias
      return undefined;
    }
    const before = this.#current;
    this.#current = sample;
    return { before, after: sample, throughTunnel: sample?.alias === this.ifname };
  }
}
