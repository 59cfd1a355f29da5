/**
 * DNS through systemd-resolved: per-link servers plus the routing domain `~.`, so that every
 * query (not only those for a search domain) goes to the tunnel's servers. Plans are pure argv
 * lists; {@link ResolvedBackend} runs them.
 *
 * resolved keeps per-link settings only while the link exists, so a crash leaves nothing behind
 * once the TUN device is gone: unlike resolv.conf, this path needs no backup.
 *
 * @module
 */
import { formatIPv4 } from "../../lib/ip.ts";
import type { CommandRunner } from "../command.ts";

/** Where /etc/resolv.conf points when resolved's local stub (127.0.0.53) serves the machine. */
export const RESOLVED_STUB = "/run/systemd/resolve/stub-resolv.conf";

/** The commands that send all DNS queries to `servers` over `ifname`. */
export function planResolvedApply(servers: readonly number[], ifname: string): string[][] {
  if (servers.length === 0) throw new Error("no DNS servers to give systemd-resolved");
  return [
    ["resolvectl", "dns", ifname, ...servers.map(formatIPv4)],
    // "~." is a routing-only domain matching every name: queries go to this link's servers
    // instead of the other links' (longer routing domains on other links still win for theirs).
    ["resolvectl", "domain", ifname, "~."],
  ];
}

/** The command that drops every DNS setting of `ifname`. */
export function planResolvedRestore(ifname: string): string[][] {
  return [["resolvectl", "revert", ifname]];
}

/** Applies and reverts the per-link DNS settings of one interface through `resolvectl`. */
export class ResolvedBackend {
  #applied: string | undefined;

  /** Runs commands with `runner`. */
  constructor(private readonly runner: CommandRunner) {}

  /** True while settings applied here have not been reverted. */
  get active(): boolean {
    return this.#applied !== undefined;
  }

  /** The interface whose settings are applied, if any. */
  get ifname(): string | undefined {
    return this.#applied;
  }

  /** Points `ifname`'s DNS at `servers` and routes every name there. Reverts on failure. */
  async apply(servers: readonly number[], ifname: string): Promise<void> {
    if (this.#applied !== undefined && this.#applied !== ifname) await this.restore();
    try {
      for (const argv of planResolvedApply(servers, ifname)) await this.runner.run(argv);
    } catch (err) {
      // Half-applied settings (servers without the routing domain) would be worse than none.
      await this.runner.run(planResolvedRestore(ifname)[0]!, { allowFailure: true })
        .catch(() => {});
      this.#applied = undefined;
      throw err;
    }
    this.#applied = ifname;
  }

  /** Reverts what {@link apply} set. Idempotent. */
  async restore(): Promise<void> {
    const ifname = this.#applied;
    if (ifname === undefined) return;
    this.#applied = undefined;
    for (const argv of planResolvedRestore(ifname)) await this.runner.run(argv);
  }
}

/** True when `resolvectl status` answers, i.e. systemd-resolved runs and is reachable. */
export async function resolvedRunning(runner: CommandRunner): Promise<boolean> {
  try {
    const r = await runner.run(["resolvectl", "status"], { allowFailure: true });
    return r.code === 0;
  } catch {
    return false; // no resolvectl at all
  }
}
