/**
 * Server-side NAT: masquerade the client pool out of the host and turn IPv4 forwarding on, then
 * put everything back.
 *
 * @module
 */
import type { Cidr } from "../../lib/ip.ts";
import type { CommandRunner } from "../command.ts";
import {
  IP6_FORWARD,
  IP_FORWARD,
  planNat6Disable,
  planNat6Enable,
  planNatDisable,
  planNatEnable,
  planReadForwarding,
} from "./plan.ts";
import type { Cidr6 } from "../../lib/ip6.ts";
import type { Journal } from "../state/journal.ts";

/** Masquerading for a VPN server, through `nft` and `sysctl` run by a {@link CommandRunner}. */
export class Nat {
  /** ip_forward before our first enable(), or undefined while disabled. */
  #oldForward: string | undefined;

  /**
   * @param runner runs `nft` and `sysctl` (wrap it to target a network namespace).
   * @param tag names our table `xvpn_nat_<tag>`; use the TUN interface name so that several
   *   servers on one host do not collide.
   */
  constructor(
    private readonly runner: CommandRunner,
    readonly tag = "xvpn0",
    /** Where the undo is recorded before anything changes (see state/journal.ts). */
    private readonly journal?: Journal,
  ) {}

  /** True between a successful enable() and disable(). */
  get enabled(): boolean {
    return this.#oldForward !== undefined;
  }

  /**
   * Masquerades traffic from `pool` and `filter.lans` (leaving through `outIface` when given),
   * with the forward filter when `filter.tun` is given (see plan.ts), and enables IPv4
   * forwarding, remembering the old forwarding value. Calling it again replaces the rule
   * atomically and keeps the first remembered value. On failure, undoes what it changed and
   * rethrows the CommandError.
   */
  async enable(
    pool: Cidr,
    outIface?: string,
    filter: { tun?: string; inbound?: boolean; lans?: Cidr[] } = {},
  ): Promise<void> {
    const first = this.#oldForward === undefined;
    const old = first
      ? (await this.runner.run(planReadForwarding())).stdout.trim()
      : this.#oldForward!;
    if (!/^[01]$/.test(old)) throw new Error(`unexpected ${IP_FORWARD} value "${old}"`);
    const [table, forward] = planNatEnable({ tag: this.tag, pool, outIface, ...filter });
    // Write-ahead, with the value from before our first change: a killed server's successor
    // puts back this value, not the 1 it would otherwise read and take for the original.
    if (first) {
      await this.journal?.set("nat", {
        what: `NAT table and ${IP_FORWARD} of ${this.tag}`,
        undo: planNatDisable(this.tag, old),
      });
    }
    try {
      await this.runner.run(table!);
      await this.runner.run(forward!);
    } catch (err) {
      // A re-enable keeps the previous, working state's bookkeeping; the new rule did not apply
      // or forwarding was already on, so only a first enable has something to undo.
      if (first) {
        for (const argv of planNatDisable(this.tag, old)) {
          await this.runner.run(argv, { allowFailure: true });
        }
        await this.journal?.forget("nat");
      }
      throw err;
    }
    this.#oldForward = old;
  }

  /** IPv6 forwarding before {@link enable6}, or undefined while it is off. */
  #oldForward6: string | undefined;

  /**
   * The same for the IPv6 pool: an ip6 table (masquerade, forward filter) and IPv6 forwarding,
   * the original value journaled first. Undone by {@link disable}.
   */
  async enable6(
    pool6: Cidr6,
    outIface?: string,
    filter: { tun?: string; inbound?: boolean; lans?: Cidr6[] } = {},
  ): Promise<void> {
    if (this.#oldForward6 !== undefined) return;
    const old = (await this.runner.run(planReadForwarding(IP6_FORWARD))).stdout.trim();
    if (!/^[01]$/.test(old)) throw new Error(`unexpected ${IP6_FORWARD} value "${old}"`);
    await this.journal?.set("nat6", {
      what: `IPv6 NAT table and ${IP6_FORWARD} of ${this.tag}`,
      undo: planNat6Disable(this.tag, old),
    });
    try {
      for (
        const argv of planNat6Enable({
          tag: this.tag,
          pool6,
          outIface,
          ...filter,
        })
      ) {
        await this.runner.run(argv);
      }
    } catch (err) {
      for (const argv of planNat6Disable(this.tag, old)) {
        await this.runner.run(argv, { allowFailure: true });
      }
      await this.journal?.forget("nat6");
      throw err;
    }
    this.#oldForward6 = old;
  }

  /**
   * Deletes our table and restores ip_forward. Best effort: runs every step, then throws an
   * AggregateError listing failures. Idempotent; a table that is already gone counts as done.
   */
  async disable(): Promise<void> {
    const old = this.#oldForward, old6 = this.#oldForward6;
    this.#oldForward = this.#oldForward6 = undefined;
    const errors: unknown[] = [];
    const plan = [
      ...(old !== undefined ? planNatDisable(this.tag, old) : []),
      ...(old6 !== undefined ? planNat6Disable(this.tag, old6) : []),
    ];
    for (const argv of plan) {
      try {
        await this.runner.run(argv);
      } catch (err) {
        const gone = argv[0] === "nft" && /No such file or directory/.test(String(err));
        if (!gone) errors.push(err);
      }
    }
    if (errors.length === 0) {
      await this.journal?.forget("nat");
      await this.journal?.forget("nat6");
    }
    if (errors.length > 0) {
      throw new AggregateError(
        errors,
        `NAT teardown: ${errors.length} command(s) failed: ` +
          errors.map((e) => (e instanceof Error ? e.message : String(e))).join("; "),
      );
    }
  }
}
