/**
 * Formatting of counters for logs.
 *
 * @module
 */
import type { DropCounters } from "../core/wire.ts";

/** `bad_mac1=3 replay=1`, only the non-zero counters; empty when nothing was dropped. */
export function formatDrops(d: DropCounters): string {
  return Object.entries(d)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k}=${n}`)
    .join(" ");
}
