/**
 * Whether xvpn runs elevated on Windows ("Run as administrator"): netsh, the NRPT and Wintun
 * all need it, and without it the first netsh fails halfway through a plan with a message that
 * does not say what to do. So `connect` asks first.
 *
 * The probe is `net session`: listing the server sessions needs administrator rights, so it
 * exits 0 when elevated and 2 with "System error 5 has occurred. Access is denied." when not
 * (the text is translated; the exit code is not). It also fails, elevated or not, when the
 * Server service (LanmanServer) is stopped: "System error 2114" (NERR_ServerNotStarted), which
 * proves nothing either way, so that case is let through and netsh's own refusal (below)
 * remains the net.
 *
 * @module
 */
import { CommandError, type CommandResult, type CommandRunner } from "../command.ts";

/** The argv of the probe. */
export const ELEVATION_PROBE: readonly string[] = ["net", "session"];

/** The message for a user who is not elevated. */
export const NOT_ELEVATED_MESSAGE =
  "xvpn connect needs an elevated prompt on Windows (Run as administrator)";

/** xvpn runs without administrator rights on Windows. */
export class NotElevatedError extends Error {
  /** Creates the error with {@link NOT_ELEVATED_MESSAGE}. */
  constructor() {
    super(NOT_ELEVATED_MESSAGE);
    this.name = "NotElevatedError";
  }
}

/**
 * The error to stop with, given the probe's result, or undefined when xvpn may go on: elevated
 * (exit 0), or undecidable (the Server service is stopped: error 2114; or `net` could not be
 * started at all, code -1).
 */
export function notElevatedError(r: CommandResult): NotElevatedError | undefined {
  if (r.code === 0 || r.code < 0) return undefined;
  if (/\b2114\b/.test(`${r.stdout}\n${r.stderr}`)) return undefined;
  return new NotElevatedError();
}

/**
 * True when a failed command's output is netsh's refusal for lack of rights ("The requested
 * operation requires elevation (Run as administrator)."), for turning it into the same clear
 * error when the probe could not decide.
 */
export function isElevationRefusal(output: string): boolean {
  return /requires elevation/i.test(output);
}

/** Runs the probe through `runner` and throws {@link NotElevatedError} when not elevated. */
export async function checkElevated(runner: CommandRunner): Promise<void> {
  let r: CommandResult;
  try {
    r = await runner.run(ELEVATION_PROBE, { allowFailure: true });
  } catch (e) {
    // `net` could not be started (ProcessRunner throws even with allowFailure): undecided.
    if (e instanceof CommandError && e.code < 0) return;
    throw e;
  }
  const err = notElevatedError(r);
  if (err) throw err;
}
