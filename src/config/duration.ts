/**
 * Durations in config files: a bare number of seconds, or text such as `10s`, `1500ms`, `2m`,
 * `1h` or `1m30s`.
 *
 * @module
 */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Parses a YAML duration value into whole milliseconds. Returns undefined unless it is a positive
 * number of seconds or unit-suffixed text that comes to at least 1 ms. Bare numeric text such as
 * `"10"` is refused: quoting suggests the unit was forgotten, and guessing could be off by 1000x.
 */
export function parseDuration(value: unknown): number | undefined {
  let ms: number;
  if (typeof value === "number") {
    ms = value * 1000;
  } else if (typeof value === "string" && /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/.test(value.trim())) {
    ms = 0;
    for (const m of value.trim().matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
      ms += Number(m[1]) * UNIT_MS[m[2]!]!;
    }
  } else {
    return undefined;
  }
  // Sub-millisecond remainders are noise for timers; round so callers get integer milliseconds.
  ms = Math.round(ms);
  return Number.isFinite(ms) && ms >= 1 ? ms : undefined;
}

/** Formats milliseconds the way config files write them (`10s`, `1500ms`, `2m`, `1h`). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of [["h", 3_600_000], ["m", 60_000], ["s", 1000]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}
