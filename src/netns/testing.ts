/**
 * Gating for root-only tests of this directory: they are ignored (with the reason in the test
 * name) when not running as root on Linux, except when `CI=true`, where they must run, so that a
 * misconfigured CI fails instead of silently skipping them.
 *
 * @module
 */

function isRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false; // no --allow-sys: cannot tell, so assume not
  }
}

/** Why root-only tests are skipped here, or undefined when they run. */
export function rootSkipReason(): string | undefined {
  if (Deno.env.get("CI") === "true") return undefined;
  if (Deno.build.os !== "linux") return "Linux only";
  if (!isRoot()) return "needs root; CI=true forces it";
  return undefined;
}

/** Registers a test that needs root and network namespaces; see the module docs. */
export function rootTest(name: string, fn: () => Promise<void>): void {
  const skip = rootSkipReason();
  Deno.test({ name: skip ? `${name} (ignored: ${skip})` : name, ignore: skip !== undefined, fn });
}

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
