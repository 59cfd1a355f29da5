/**
 * SIGINT/SIGTERM as an AbortSignal, so that every loop and every cleanup step hears the same
 * "stop" and the process exits only after it has removed what it created.
 *
 * @module
 */

/** An AbortSignal that fires on the first SIGINT or SIGTERM. Call `dispose` when done. */
export function shutdownSignal(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const handlers = signals.map((sig) => {
    const h = () => ac.abort(new Error(`received ${sig}`));
    Deno.addSignalListener(sig, h);
    return [sig, h] as const;
  });
  return {
    signal: ac.signal,
    dispose: () => handlers.forEach(([sig, h]) => Deno.removeSignalListener(sig, h)),
  };
}

/** Resolves when the signal aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

/**
 * Cleanup steps run in reverse order of registration, each one whatever the others did;
 * failures are collected and reported together, so one failed step never leaves the rest
 * behind.
 */
export class Cleanup {
  readonly #steps: { what: string; fn: () => unknown }[] = [];

  /** Registers a step to run at {@link run}. */
  add(what: string, fn: () => unknown): void {
    this.#steps.push({ what, fn });
  }

  /** Runs every step (last registered first). Returns the errors, each naming its step. */
  async run(): Promise<Error[]> {
    const errors: Error[] = [];
    for (const { what, fn } of this.#steps.splice(0).reverse()) {
      try {
        await fn();
      } catch (err) {
        errors.push(
          new Error(`Cleanup failed (${what}): ${(err as Error).message}`, { cause: err }),
        );
      }
    }
    return errors;
  }
}
