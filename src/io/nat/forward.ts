/**
 * Forwarding sysctls turned on for as long as a process needs them (a client carrying a LAN,
 * `lan:`), and put back afterwards: the value from before is journaled before the change, so a
 * SIGKILLed run's successor restores it (as the server's NAT does with its `ip_forward`).
 *
 * @module
 */
import type { CommandRunner } from "../command.ts";
import type { Journal } from "../state/journal.ts";
import { planReadForwarding } from "./plan.ts";

/** The commands that put `sysctls` (key to old value) back, skipping those that were already 1
 * (never switch off forwarding someone else had on). */
export function planForwardRestore(old: ReadonlyMap<string, string>): string[][] {
  return [...old].filter(([, v]) => v !== "1").map(([k, v]) => ["sysctl", "-w", `${k}=${v}`]);
}

/** Forwarding sysctls switched on by {@link Forwarding.enable}, undone by {@link restore}. */
export class Forwarding {
  /** Each key enabled, with its value before the first enable. */
  readonly #old = new Map<string, string>();

  /**
   * @param runner runs `sysctl` (wrap it to target a network namespace).
   * @param journal where the undo goes before anything changes (absent: not recorded).
   * @param key the journal entry's key; `what` its text in the recovery log.
   */
  constructor(
    private readonly runner: CommandRunner,
    private readonly journal?: Journal,
    private readonly key = "forward",
    private readonly what = "forwarding",
  ) {}

  /**
   * Sets sysctl `name` (e.g. `net.ipv4.ip_forward`) to 1; returns its value before. The undo
   * is journaled first (write-ahead); on failure it is run and forgotten, and the error thrown.
   */
  async enable(name: string): Promise<string> {
    const known = this.#old.get(name);
    if (known !== undefined) return known;
    const old = (await this.runner.run(planReadForwarding(name))).stdout.trim();
    if (!/^[01]$/.test(old)) throw new Error(`unexpected ${name} value "${old}"`);
    this.#old.set(name, old);
    await this.#record();
    if (old === "1") return old;
    try {
      await this.runner.run(["sysctl", "-w", `${name}=1`]);
    } catch (err) {
      this.#old.delete(name);
      await this.#record();
      throw err;
    }
    return old;
  }

  /** Puts back every value changed (best effort: every command runs; the first error is
   * thrown after). Idempotent. */
  async restore(): Promise<void> {
    const plan = planForwardRestore(this.#old);
    this.#old.clear();
    let first: unknown;
    for (const argv of plan) {
      try {
        await this.runner.run(argv);
      } catch (err) {
        first ??= err;
      }
    }
    if (first === undefined) await this.journal?.forget(this.key);
    if (first !== undefined) throw first;
  }

  async #record(): Promise<void> {
    await this.journal?.set(this.key, { what: this.what, undo: planForwardRestore(this.#old) });
  }
}
