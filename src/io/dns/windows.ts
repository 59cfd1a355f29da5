/**
 * DNS on Windows: the pushed servers on the tunnel adapter, plus leak prevention.
 *
 * Windows asks every adapter's servers (since Windows 8, "smart multi-homed name resolution"
 * sends a query to all of them at once and takes the first answer), so servers on the tunnel
 * adapter alone leak every name to the local network's resolver. Two ways, planned here:
 *
 * - `nrpt` (default): a Name Resolution Policy Table rule for the namespace `.` (every name)
 *   naming the tunnel's servers, which overrides every adapter's servers for all names, as
 *   systemd-resolved's `~.` does on Linux. Firezone does the same (a `.` rule found again by its
 *   Comment; rust/headless-client/src/dns_control/windows.rs). The rule lives in the registry
 *   (HKLM\...\Dnscache\Parameters\DnsPolicyConfig) and survives a crash and a reboot, so it is
 *   journaled, and {@link WindowsDnsApplier.recoverStale} removes a leftover rule of the same
 *   tunnel at every start (a dead tunnel's rule would leave the machine without DNS).
 * - `metric`: only the adapter's servers and a low interface metric, so Windows asks the tunnel
 *   first. Weaker (the parallel queries still go out elsewhere); for systems without the
 *   DnsClient cmdlets.
 *
 * wireguard-windows sets the adapter's servers (SetInterfaceDnsSettings, tunnel/winipcfg/luid.go
 * `SetDNS`), metric 0 on a default route (tunnel/addressconfig.go), and stops leaks with WFP
 * filters that block port 53 towards every other server (tunnel/firewall/rules.go `blockDNS`).
 * WFP needs the API (FFI), not a command, so xvpn takes the NRPT for that part.
 *
 * @module
 */
import { formatIPv4 } from "../../lib/ip.ts";
import { formatIPv6 } from "../../lib/ip6.ts";
import type { CommandRunner } from "../command.ts";
import type { RouteStep } from "../route/state.ts";
import { TUNNEL_METRIC } from "../route/windows.ts";
import { checkWindowsIfname, powershell, psQuote } from "../route/windows_args.ts";
import type { Journal } from "../state/journal.ts";
import { DnsNotApplied } from "./applier.ts";

/** How leaks past the tunnel's servers are prevented (see the module doc). */
export type WindowsDnsMode = "nrpt" | "metric";

/** The NRPT rule's Comment, by which xvpn finds its own rule again: `xvpn <ifname>`. */
export function nrptComment(ifname: string): string {
  return `xvpn ${checkWindowsIfname(ifname, "tunnel interface")}`;
}

/** The PowerShell that removes this tunnel's NRPT rules (none there: does nothing) and prints
 * how many it removed; the cache goes too, or names resolved by the old rule stay. */
export function nrptRemoveScript(ifname: string): string {
  return `$r = @(Get-DnsClientNrptRule | Where-Object Comment -eq ${
    psQuote(nrptComment(ifname))
  }); ` +
    "$r | Remove-DnsClientNrptRule -Force; Clear-DnsClientCache; $r.Count";
}

/** The argv that removes this tunnel's NRPT rules (the undo, and the recovery at start). */
export function planNrptRemove(ifname: string): string[] {
  return powershell(nrptRemoveScript(ifname));
}

/** One family's servers on the adapter: the first replaces, the others add (netsh has no list). */
function adapterServers(family: "ipv4" | "ipv6", ifname: string, servers: string[]): RouteStep[] {
  const netsh = ["netsh", "interface", family];
  return servers.map((a, i) =>
    i === 0
      ? {
        // register=none: the tunnel address is no business of the DNS server's; validate=no:
        // netsh would otherwise query the server, which may not answer before the tunnel does.
        up: [
          ...netsh,
          "set",
          "dnsservers",
          `name=${ifname}`,
          "source=static",
          `address=${a}`,
          "register=none",
          "validate=no",
        ],
        // netsh keeps adapter DNS servers in the registry (there is no store=active): undo
        // them all, should the adapter outlive the run.
        down: [...netsh, "delete", "dnsservers", `name=${ifname}`, "address=all", "validate=no"],
      }
      : {
        up: [
          ...netsh,
          "add",
          "dnsservers",
          `name=${ifname}`,
          `address=${a}`,
          `index=${i + 1}`,
          "validate=no",
        ],
      }
  );
}

/**
 * The steps that send DNS to `servers` (and `servers6`) over `ifname`, each with its undo:
 * the adapter's servers per family, then the NRPT rule (`nrpt`) or the interface metric
 * (`metric`). Throws when there is no server or the interface name is refused.
 */
export function planWindowsDns(
  ifname: string,
  servers: readonly number[],
  servers6: readonly Uint8Array[] = [],
  mode: WindowsDnsMode = "nrpt",
): RouteStep[] {
  checkWindowsIfname(ifname, "tunnel interface");
  const v4 = servers.map(formatIPv4);
  const v6 = servers6.map(formatIPv6);
  if (v4.length + v6.length === 0) throw new Error(`no DNS servers for ${ifname}`);
  const steps = [...adapterServers("ipv4", ifname, v4), ...adapterServers("ipv6", ifname, v6)];
  if (mode === "nrpt") {
    const names = [...v4, ...v6].map(psQuote).join(",");
    steps.push({
      // A leftover rule of the same tunnel goes first, so applying twice never makes two.
      up: powershell(
        `${nrptRemoveScript(ifname)}; Add-DnsClientNrptRule -Namespace '.' ` +
          `-NameServers ${names} -Comment ${psQuote(nrptComment(ifname))}; Clear-DnsClientCache`,
      ),
      down: planNrptRemove(ifname),
    });
  } else {
    // The adapter is ours and goes with the run: nothing to put back (as the route plan's).
    for (const [family, list] of [["ipv4", v4], ["ipv6", v6]] as const) {
      if (list.length === 0) continue;
      steps.push({
        up: [
          "netsh",
          "interface",
          family,
          "set",
          "interface",
          ifname,
          `metric=${TUNNEL_METRIC}`,
          "store=active",
        ],
      });
    }
  }
  return steps;
}

/** Options for {@link WindowsDnsApplier}. */
export interface WindowsDnsOptions {
  /** Runs netsh and PowerShell. */
  runner: CommandRunner;
  /** Leak prevention (default `nrpt`). */
  mode?: WindowsDnsMode;
  /** Where the undo is recorded before each change (the crash journal), under `key`. */
  journal?: { journal: Journal; key: string; what: string };
}

/**
 * Applies pushed DNS servers on Windows and restores what was there; the same methods as the
 * Linux `DnsApplier`, so the runtime can hold either.
 */
export class WindowsDnsApplier {
  readonly #runner: CommandRunner;
  readonly #mode: WindowsDnsMode;
  readonly #journal: WindowsDnsOptions["journal"];
  /** The steps in effect (last first on undo) and their interface. */
  #applied: { ifname: string; steps: RouteStep[] } | undefined;
  /** Things worth logging that happened on the way; drained by the caller. */
  readonly notes: string[] = [];

  /** Creates an applier; nothing runs until a method is called. */
  constructor(opts: WindowsDnsOptions) {
    this.#runner = opts.runner;
    this.#mode = opts.mode ?? "nrpt";
    this.#journal = opts.journal;
  }

  /** True while settings applied here have not been restored. */
  get active(): boolean {
    return this.#applied !== undefined;
  }

  /**
   * Run at start: removes an NRPT rule an earlier, killed xvpn on `ifname` left (the adapter's
   * own servers go with the journal's undo). Returns what was done, or undefined for nothing.
   */
  async recoverStale(ifname: string): Promise<string | undefined> {
    const r = await this.#runner.run(planNrptRemove(ifname), { allowFailure: true });
    if (r.code !== 0) return `could not check for a leftover NRPT rule: ${r.stderr.trim()}`;
    const n = Number(r.stdout.trim().split(/\s+/).pop());
    return n > 0 ? `removed ${n} NRPT rule(s) an earlier xvpn on ${ifname} left` : undefined;
  }

  /**
   * Sends DNS to `servers` (and `servers6`) over `ifname`; calling it again first undoes the
   * settings before. On a failure, what had been done is undone and the error rethrown.
   */
  async apply(
    servers: readonly number[],
    ifname: string,
    servers6: readonly Uint8Array[] = [],
  ): Promise<string> {
    if (servers.length + servers6.length === 0) {
      throw new DnsNotApplied("the server pushed no DNS servers");
    }
    const steps = planWindowsDns(ifname, servers, servers6, this.#mode);
    if (this.#applied) await this.restore();
    await this.#record(steps); // write-ahead, as the routes
    const done: RouteStep[] = [];
    for (const st of steps) {
      try {
        await this.#runner.run(st.up);
      } catch (err) {
        const left = await this.#undo(done, []);
        await this.#record(left);
        if (left.length) this.#applied = { ifname, steps: left };
        throw err;
      }
      done.push(st);
    }
    this.#applied = { ifname, steps: done };
    const list = [...servers.map(formatIPv4), ...servers6.map(formatIPv6)].join(", ");
    return this.#mode === "nrpt"
      ? `every name goes to ${list} (NRPT rule "${nrptComment(ifname)}", servers on ${ifname})`
      : `${ifname} asks ${list}, first by its metric ${TUNNEL_METRIC} (no NRPT: other ` +
        `adapters' servers are still asked)`;
  }

  /** Puts back what {@link apply} changed. Returns what was done, or undefined for nothing.
   * Best effort: every undo runs; the failures are thrown together at the end. */
  async restore(): Promise<string | undefined> {
    const a = this.#applied;
    this.#applied = undefined;
    if (!a) return undefined;
    const errors: unknown[] = [];
    const left = await this.#undo(a.steps, errors);
    await this.#record(left);
    if (errors.length) {
      this.#applied = { ifname: a.ifname, steps: left };
      throw new AggregateError(errors, `DNS restore on ${a.ifname}: ${errors.length} failed`);
    }
    return `DNS settings of ${a.ifname} removed`;
  }

  async #undo(steps: readonly RouteStep[], errors: unknown[]): Promise<RouteStep[]> {
    const left: RouteStep[] = [];
    for (const st of [...steps].reverse()) {
      if (!st.down) continue;
      try {
        await this.#runner.run(st.down);
      } catch (err) {
        errors.push(err);
        left.unshift(st);
      }
    }
    return left;
  }

  async #record(steps: readonly RouteStep[]): Promise<void> {
    const j = this.#journal;
    if (!j) return;
    const undo = [...steps].reverse().flatMap((st) => (st.down ? [st.down] : []));
    await j.journal.set(j.key, { what: j.what, undo });
  }
}
