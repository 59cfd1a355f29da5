/**
 * Logging through LogTape (`@std/log` is gone upstream and JSR is out of reach here): one
 * human-readable line per record on stderr, and the same lines appended to the configured log
 * file. Sinks write synchronously so that the last lines before an exit or a crash are kept.
 *
 * @module
 */
import {
  configureSync,
  getLogger,
  getTextFormatter,
  type Logger,
  type LogLevel,
  type LogRecord,
  resetSync,
  type Sink,
} from "@logtape/logtape";

/** Log level names accepted in config files (LogTape's names). */
export type XvpnLogLevel = "trace" | "debug" | "info" | "warning" | "error";

// "bare": strings go into lines unquoted (control characters still escaped).
const format = getTextFormatter({ timestamp: "date-time-tz", category: ".", value: "bare" });
const enc = new TextEncoder();

function stderrSink(record: LogRecord): void {
  Deno.stderr.writeSync(enc.encode(format(record)));
}

function fileSink(path: string): Sink & Disposable {
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { append: true, create: true });
  } catch (err) {
    throw new Error(`Cannot open log file "${path}": ${(err as Error).message}`, { cause: err });
  }
  const sink = (record: LogRecord) => void file.writeSync(enc.encode(format(record)));
  return Object.assign(sink, { [Symbol.dispose]: () => file.close() });
}

/**
 * Configures logging for this process. Safe to call again (reconfigures), e.g. first with the
 * defaults and then with the level and file from the config.
 */
export function setupLogging(opts: { level: XvpnLogLevel; file?: string }): void {
  resetSync();
  const sinks: Record<string, Sink> = { stderr: stderrSink };
  if (opts.file) sinks.file = fileSink(opts.file);
  configureSync({
    reset: true,
    sinks,
    loggers: [
      { category: ["xvpn"], sinks: Object.keys(sinks), lowestLevel: opts.level as LogLevel },
      { category: ["logtape", "meta"], sinks: ["stderr"], lowestLevel: "warning" },
    ],
  });
}

/** A logger under the `xvpn` category, e.g. `logger("server")` logs as `xvpn.server`. */
export function logger(name: string): Logger {
  return getLogger(["xvpn", name]);
}
