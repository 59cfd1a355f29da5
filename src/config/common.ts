/**
 * Settings shared by the server and client configs: endpoints, logging, and the private key
 * given inline or by file.
 *
 * @module
 */
import {
  type At,
  type Field,
  filePath,
  key,
  keyFile,
  type MapRead,
  oneOf,
  opt,
  secretKey,
  struct,
} from "./schema.ts";

/** A UDP endpoint; `host` is an IPv4 address, `::` (server only) or a hostname (client only). */
export interface Endpoint {
  /** Address or hostname, without brackets. */
  host: string;
  /** UDP port, 1-65535. */
  port: number;
}

/** Log levels, least to most severe. */
export const LOG_LEVELS = ["trace", "debug", "info", "warning", "error"] as const;

/** One of {@link LOG_LEVELS}. */
export type LogLevel = typeof LOG_LEVELS[number];

/**
 * Which data path moves packets: `fast` is the Linux data-plane Worker (poll() on the TUN and
 * UDP fds, recvmmsg/sendmmsg through FFI); `portable` is Deno.listenDatagram on the main
 * thread; `auto` picks `fast` where it can run.
 */
export const DATA_PATHS = ["auto", "fast", "portable"] as const;

/** One of {@link DATA_PATHS}. */
export type DataPath = typeof DATA_PATHS[number];

/** The `data_path` setting. */
export const dataPathField = opt(oneOf(DATA_PATHS));

/** The `log` section. */
export interface LogConfig {
  /** Lowest level written (default `info`). */
  level: LogLevel;
  /** Log file path, resolved against the config file's directory; absent means stderr. */
  file?: string;
}

/** Parser of the `log` section. */
export const logSection = struct(
  { level: opt(oneOf(LOG_LEVELS)), file: opt(filePath) },
  "a mapping with level and file",
);

/** Builds a {@link LogConfig} from a parsed `log` section (or its absence), applying defaults. */
export function logConfig(v: { level?: LogLevel; file?: string } | undefined): LogConfig {
  const out: LogConfig = { level: v?.level ?? "info" };
  if (v?.file !== undefined) out.file = v.file;
  return out;
}

/** The two ways of giving a private key; exactly one must be used. */
export const privateKeyFields = { private_key: opt(secretKey), private_key_file: opt(keyFile) };

/**
 * Checks that exactly one of `private_key` / `private_key_file` is given and returns the key.
 * Two sources of one secret invite editing one and running with the other, so both is an error.
 */
export function privateKeyOf(
  m: MapRead<typeof privateKeyFields & Record<string, Field<unknown>>>,
  root: At,
): Uint8Array | undefined {
  const inline = m.at.private_key;
  const file = m.keyAt.private_key_file;
  if (inline && file) {
    root.ctx.report(
      file.offset,
      "private_key_file",
      "give either private_key or private_key_file, not both",
    );
    return undefined;
  }
  if (!inline && !file) {
    root.ctx.report(
      root.offset,
      "private_key",
      `missing required key; expected ${key.expected} (or private_key_file: a path to a key file)`,
    );
    return undefined;
  }
  return (m.values.private_key ?? m.values.private_key_file) as Uint8Array | undefined;
}

/**
 * The file the private key was read from: the key file named by `private_key_file`, else the
 * config file itself (an inline `private_key`). Its mode is checked at start (secrets.ts).
 */
export function privateKeySource(
  m: MapRead<typeof privateKeyFields & Record<string, Field<unknown>>>,
  root: At,
): string {
  const file = m.at.private_key_file?.node;
  const raw = file && typeof file === "object" && "value" in file ? String(file.value) : undefined;
  return raw ? root.ctx.resolvePath(raw) : root.ctx.file;
}
