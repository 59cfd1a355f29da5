/**
 * Helpers for this directory's tests; root gating comes from src/testing/root.ts.
 *
 * @module
 */

// One gate for every root-only test in the project (it also runs them under CI=true).
export { rootTest, rootTestSkipReason as rootSkipReason } from "../support/root.ts";

/** Runs `argv` and returns its stdout; throws with its stderr when it fails. */
export async function sh(argv: string[]): Promise<string> {
  const out = await new Deno.Command(argv[0]!, { args: argv.slice(1) }).output();
  const text = new TextDecoder();
  if (!out.success) throw new Error(`${argv.join(" ")}: ${text.decode(out.stderr)}`);
  return text.decode(out.stdout);
}

/** Parses ping's summary: transmitted, received, duplicates. */
export function pingSummary(out: string): { sent: number; received: number; duplicates: number } {
  const m = /(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?/.exec(out);
  if (!m) throw new Error(`no ping summary in: ${out}`);
  return { sent: Number(m[1]), received: Number(m[2]), duplicates: Number(m[3] ?? 0) };
}
