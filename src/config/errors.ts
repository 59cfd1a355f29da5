/**
 * The one error type of config loading: every mistake found in a file, each with its position and
 * YAML key path, so an operator can fix them all in one pass instead of one per restart.
 *
 * @module
 */

/** One mistake in a config file. */
export interface ConfigIssue {
  /** 1-based line, or 0 when the mistake is about the file as a whole (e.g. it cannot be read). */
  line: number;
  /** 1-based column, or 0 together with `line`. */
  column: number;
  /** YAML key path such as `clients[2].public_key`; empty for whole-document mistakes. */
  path: string;
  /** What is wrong, sentence case without the position, e.g. `expected an IPv4 address, got 5`. */
  message: string;
}

/** Formats one issue as `file:line:col: path: message` (position and path left out when unknown). */
export function formatIssue(file: string, issue: ConfigIssue): string {
  const where = issue.line > 0 ? `${file}:${issue.line}:${issue.column}` : file;
  return issue.path ? `${where}: ${issue.path}: ${issue.message}` : `${where}: ${issue.message}`;
}

import { scrubKeys } from "./secrets.ts";

/**
 * Thrown when a config file is unreadable or invalid. Carries all issues of the file, sorted by
 * position; `message` holds one formatted line per issue.
 */
export class ConfigError extends Error {
  /** The config file as it was named to the loader. */
  readonly file: string;
  /** Every mistake found, in file order. */
  readonly issues: ConfigIssue[];

  /** Builds the error from the issues of `file`; sorts them so the report reads top to bottom. */
  constructor(file: string, issues: ConfigIssue[]) {
    // Nothing that decodes as a key is ever shown (a private key pasted into the wrong field).
    const sorted = issues.map((i) => ({ ...i, message: scrubKeys(i.message) }))
      .sort((a, b) => a.line - b.line || a.column - b.column);
    super(sorted.map((i) => formatIssue(file, i)).join("\n"));
    this.name = "ConfigError";
    this.file = file;
    this.issues = sorted;
  }
}
