/**
 * The server side of redundant multipath (dual channel, beside the client's `paths.ts`): a
 * redundant session sends each packet to every client endpoint it heard an authenticated
 * datagram from within {@link REDUNDANT_ENDPOINT_MS}, at most {@link MAX_REDUNDANT_ENDPOINTS}
 * of them. Bookkeeping per datagram is a short scan; nothing is allocated per packet.
 *
 * @module
 */
import { type Endpoint, sameEndpoint } from "../lib/endpoint.ts";
import type { PacketResult } from "./result.ts";
import { MAX_REDUNDANT_ENDPOINTS, REDUNDANT_ENDPOINT_MS } from "./timers.ts";

/** A client endpoint and when it was last heard from. */
export interface RecentEndpoint {
  endpoint: Endpoint;
  lastMs: number;
}

/** What a session keeps for redundant sending. */
export interface RedundantState {
  /** Where its traffic goes first (the last authenticated endpoint). */
  endpoint: Endpoint;
  redundant?: boolean;
  recent?: RecentEndpoint[];
  extra?: Endpoint[];
}

/** Turns redundant sending on or off for a session (each handshake says which it wants). */
export function setRedundant(s: RedundantState, on: boolean, from: Endpoint, now: number): void {
  s.redundant = on;
  if (!on) {
    s.recent = s.extra = undefined;
    return;
  }
  s.recent ??= [];
  s.extra ??= [];
  noteEndpoint(s.recent, from, now);
}

/** Remembers that `from` was just heard from; the stalest entry makes room when full. */
export function noteEndpoint(recent: RecentEndpoint[], from: Endpoint, now: number): void {
  let oldest = 0;
  for (let i = 0; i < recent.length; i++) {
    const e = recent[i]!;
    if (e.endpoint === from || sameEndpoint(e.endpoint, from)) {
      e.endpoint = from;
      e.lastMs = now;
      return;
    }
    if (e.lastMs < recent[oldest]!.lastMs) oldest = i;
  }
  if (recent.length < MAX_REDUNDANT_ENDPOINTS) recent.push({ endpoint: from, lastMs: now });
  else recent[oldest] = { endpoint: from, lastMs: now };
}

/** Fills the session's reused extra-destination array with its other live endpoints (no
 * allocation per packet) and points `r.extra` at it; returns how many. */
export function fillExtra(s: RedundantState, now: number, r: PacketResult): number {
  const recent = s.recent!;
  const extra = s.extra!;
  let k = 0;
  for (let i = 0; i < recent.length; i++) {
    const e = recent[i]!;
    if (now - e.lastMs > REDUNDANT_ENDPOINT_MS) continue;
    if (e.endpoint === s.endpoint || sameEndpoint(e.endpoint, s.endpoint)) continue;
    extra[k++] = e.endpoint;
  }
  r.extra = extra;
  return k;
}
