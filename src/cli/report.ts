/**
 * The one place where errors become messages and exit codes.
 *
 * Exit codes: 0 success; 1 a runtime failure (device, socket, route command, refused by the
 * server); 2 bad usage or a bad config file (nothing was touched).
 *
 * @module
 */
import { ConfigError } from "../config/mod.ts";

/** Bad command-line usage. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Exit code for success. */
export const EXIT_OK = 0;
/** Exit code for a runtime failure. */
export const EXIT_FAILURE = 1;
/** Exit code for bad usage or configuration. */
export const EXIT_USAGE = 2;

/** Prints `err` for a human on stderr and returns the exit code it maps to. */
export function report(err: unknown): number {
  const write = (s: string) => Deno.stderr.writeSync(new TextEncoder().encode(s + "\n"));
  if (err instanceof UsageError) {
    write(`xvpn: ${err.message}\nRun "xvpn help" for usage.`);
    return EXIT_USAGE;
  }
  if (err instanceof ConfigError) {
    write(`xvpn: invalid configuration:\n${err.message}`);
    return EXIT_USAGE;
  }
  const e = err instanceof Error ? err : new Error(String(err));
  let text = `xvpn: ${e.message}`;
  if (e instanceof AggregateError) {
    text += e.errors.map((x) => `\n  - ${(x as Error).message}`).join("");
  }
  write(text);
  return EXIT_FAILURE;
}
