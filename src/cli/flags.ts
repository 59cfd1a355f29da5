/**
 * A small flag parser for the commands that take more than `--config`: `--name VALUE`,
 * `--name=VALUE`, boolean `--name`, and repeatable flags. Parsed by hand, as `configFlag` is:
 * `connect` runs for days, and `node:util` would stay resident in it.
 *
 * @module
 */
import { UsageError } from "./report.ts";

/** What a command accepts: each flag's kind, and its short form if any. */
export type FlagSpec = Record<string, { kind: "string" | "bool" | "list"; short?: string }>;

/** Parsed flags (`list` ones as arrays) and the positional arguments. */
export interface Parsed {
  flags: Record<string, string | boolean | string[] | undefined>;
  positional: string[];
}

/** Parses `args` for `command` against `spec`; unknown flags are a {@link UsageError}. */
export function parseFlags(command: string, args: string[], spec: FlagSpec): Parsed {
  const flags: Parsed["flags"] = {};
  const positional: string[] = [];
  const byShort = new Map(
    Object.entries(spec).flatMap(([k, v]) => (v.short ? [[v.short, k] as const] : [])),
  );
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("-") || a === "-") {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const raw = eq > 0 ? a.slice(0, eq) : a;
    const name = raw.startsWith("--") ? raw.slice(2) : byShort.get(raw.slice(1));
    const s = name !== undefined ? spec[name] : undefined;
    if (!s || name === undefined) throw new UsageError(`${command}: unknown option "${raw}"`);
    if (s.kind === "bool") {
      if (eq > 0) throw new UsageError(`${command}: ${raw} takes no value`);
      flags[name] = true;
      continue;
    }
    const value = eq > 0 ? a.slice(eq + 1) : args[++i];
    if (value === undefined || value === "") {
      throw new UsageError(`${command}: ${raw} needs a value`);
    }
    if (s.kind === "list") ((flags[name] ??= []) as string[]).push(value);
    else flags[name] = value;
  }
  return { flags, positional };
}

/** A whole number flag within `min..max`, or `fallback` when absent. */
export function intFlag(
  command: string,
  p: Parsed,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const v = p.flags[name];
  if (v === undefined) return fallback;
  const n = Number(v);
  if (typeof v !== "string" || !Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`${command}: --${name} takes a whole number ${min}..${max}, not "${v}"`);
  }
  return n;
}
