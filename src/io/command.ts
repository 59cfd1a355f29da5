/**
 * Running external commands (`ip`, `nft`, `sysctl`, `netsh`, ...).
 *
 * Every failure names the argv and carries the command's own output, so that a failed route
 * change reads like `command failed: ip route add 10.0.0.0/8 dev xvpn0 (exit 2): RTNETLINK
 * answers: File exists` instead of a bare exit code.
 *
 * @module
 */

/** The result of a finished command. */
export interface CommandResult {
  /** Exit code (0 = success). */
  code: number;
  /** Decoded standard output. */
  stdout: string;
  /** Decoded standard error. */
  stderr: string;
}

/** A command that exited non-zero or could not be started. */
export class CommandError extends Error {
  /** The argv that failed. */
  readonly argv: readonly string[];
  /** Exit code, or -1 when the program could not be started. */
  readonly code: number;
  /** What the command printed (stderr, else stdout), trimmed. */
  readonly output: string;
  constructor(argv: readonly string[], code: number, output: string, options?: ErrorOptions) {
    const where = code < 0 ? "could not start" : `exit ${code}`;
    super(`Command failed: ${argv.join(" ")} (${where})${output ? `: ${output}` : ""}`, options);
    this.name = "CommandError";
    this.argv = argv;
    this.code = code;
    this.output = output;
  }
}

/** Runs commands. The real one spawns processes; tests use a recording runner. */
export interface CommandRunner {
  /**
   * Runs `argv` to completion. Resolves with the result when the exit code is 0 (or when
   * `allowFailure` is set); otherwise rejects with a {@link CommandError}.
   */
  run(argv: readonly string[], opts?: RunOptions): Promise<CommandResult>;
}

/** Options for {@link CommandRunner.run}. */
export interface RunOptions {
  /** Resolve instead of rejecting when the command exits non-zero. */
  allowFailure?: boolean;
  /** Bytes written to the command's standard input. */
  stdin?: string;
}

const decoder = new TextDecoder();

/** Spawns real processes with `Deno.Command`. */
export class ProcessRunner implements CommandRunner {
  /** Runs argv; see {@link CommandRunner.run}. */
  async run(argv: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
    const [program, ...args] = argv;
    if (program === undefined) throw new Error("Cannot run an empty command");
    let out: Deno.CommandOutput;
    try {
      const child = new Deno.Command(program, {
        args,
        stdin: opts.stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      if (opts.stdin !== undefined) {
        const w = child.stdin.getWriter();
        await w.write(new TextEncoder().encode(opts.stdin));
        await w.close();
      }
      out = await child.output();
    } catch (err) {
      throw new CommandError(argv, -1, err instanceof Error ? err.message : String(err), {
        cause: err,
      });
    }
    const result = {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
    };
    if (result.code !== 0 && !opts.allowFailure) {
      throw new CommandError(argv, result.code, (result.stderr || result.stdout).trim());
    }
    return result;
  }
}

/** A runner that records every argv and answers from a script; for golden-transcript tests. */
export class RecordingRunner implements CommandRunner {
  /** Every argv run, in order. */
  readonly calls: string[][] = [];
  /** Optional responder: return a result for an argv, or undefined for success. */
  constructor(private readonly respond?: (argv: readonly string[]) => CommandResult | undefined) {}
  /** Records argv; see {@link CommandRunner.run}. */
  run(argv: readonly string[], opts: RunOptions = {}): Promise<CommandResult> {
    this.calls.push([...argv]);
    const result = this.respond?.(argv) ?? { code: 0, stdout: "", stderr: "" };
    if (result.code !== 0 && !opts.allowFailure) {
      return Promise.reject(
        new CommandError(argv, result.code, (result.stderr || result.stdout).trim()),
      );
    }
    return Promise.resolve(result);
  }
  /** The recorded calls as shell-like lines, for comparing with a transcript. */
  transcript(): string[] {
    return this.calls.map((c) => c.join(" "));
  }
}
