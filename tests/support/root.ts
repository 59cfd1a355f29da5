/**
 * Test helpers for root-only tests that touch real kernel state: gating on root, throwaway
 * network namespaces, and a runner that executes commands inside one.
 *
 * Root-only tests are ignored (with the reason in their name) when not running as root, except
 * when `CI=true`: there they must run, so a misconfigured CI fails instead of silently skipping.
 *
 * @module
 */
import {
  type CommandResult,
  type CommandRunner,
  ProcessRunner,
  type RunOptions,
} from "../../src/io/command.ts";

function isRoot(): boolean {
  try {
    return Deno.uid() === 0;
  } catch {
    return false; // no --allow-sys: cannot tell, so assume not
  }
}

/** Why root-only tests are skipped here, or undefined when they run. */
export function rootTestSkipReason(): string | undefined {
  if (Deno.build.os !== "linux") return "Linux only";
  if (isRoot()) return undefined;
  if (Deno.env.get("CI") === "true") return undefined; // CI must run them, and fail if not root
  return "needs root; set CI=true to force";
}

/** Registers a test that needs root on Linux; see the module docs for when it is ignored. */
export function rootTest(name: string, fn: () => void | Promise<void>): void {
  const skip = rootTestSkipReason();
  Deno.test({ name: skip ? `${name} (ignored: ${skip})` : name, ignore: skip !== undefined, fn });
}

let counter = 0;
// Test modules run in separate isolates of one process, so the pid alone is not unique:
// a random tag per isolate keeps two modules from picking the same name.
const isolateTag = crypto.getRandomValues(new Uint16Array(1))[0]!.toString(36);

/** A name unique to this isolate and call, short enough for an interface (<= 15 bytes). */
export function uniqueName(prefix: string): string {
  const name = `${prefix}${isolateTag}${(counter++).toString(36)}`;
  if (name.length > 15) throw new Error(`test name ${name} is too long for an interface`);
  return name;
}

/** Runs commands inside network namespace `ns` (via `ip netns exec`). */
export class NetnsRunner implements CommandRunner {
  /** Wraps `inner` so every command runs in `ns`. */
  constructor(readonly ns: string, private readonly inner: CommandRunner = new ProcessRunner()) {}
  /** Runs argv inside the namespace. */
  run(argv: readonly string[], opts?: RunOptions): Promise<CommandResult> {
    return this.inner.run(["ip", "netns", "exec", this.ns, ...argv], opts);
  }
}

/**
 * Creates a fresh network namespace, runs `fn` with a runner inside it, and deletes the
 * namespace afterwards even when `fn` throws (which also destroys the virtual devices in it).
 */
export async function withNetns<T>(
  fn: (run: NetnsRunner, ns: string) => Promise<T>,
): Promise<T> {
  const host = new ProcessRunner();
  const ns = uniqueName("xvns");
  await host.run(["ip", "netns", "add", ns]);
  try {
    return await fn(new NetnsRunner(ns, host), ns);
  } finally {
    await host.run(["ip", "netns", "del", ns], { allowFailure: true });
  }
}
