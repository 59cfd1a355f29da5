/**
 * The routes domain following adds (game profiles, core/follow.ts): a /32 or /128 into the TUN
 * for each address a followed name's DNS answer gave. They live on the TUN device, so they go
 * with it however xvpn ends; they are removed one by one when their TTL and idle time pass, all
 * at once on a node move (another exit node answers differently), and put back after the link
 * is rebuilt (setting it down drops every route through it).
 *
 * @module
 */
import type { FollowAddress } from "../core/follow.ts";
import type { CommandRunner } from "../io/command.ts";
import { formatIPv4 } from "../lib/ip.ts";
import { formatIPv6 } from "../lib/ip6.ts";
import type { Logger } from "@logtape/logtape";

/** Why an answered IPv4 address must not be routed into the tunnel, or undefined. */
export function refuse4(addr: number, nodes: ReadonlySet<number>): string | undefined {
  const a = addr >>> 24;
  if (nodes.has(addr)) return "it is one of our nodes (its datagrams would loop into the tunnel)";
  if (a === 0 || a === 127) return "a local address";
  if (a === 169 && ((addr >>> 16) & 255) === 254) return "a link-local address";
  if (a >= 224) return "a multicast or reserved address";
  return undefined;
}

/** Why an answered IPv6 address must not be routed into the tunnel, or undefined. */
export function refuse6(b: Uint8Array): string | undefined {
  if (b.every((x, i) => (i < 15 ? x === 0 : x <= 1))) return "a local address";
  if (b[0] === 0xfe && (b[1]! & 0xc0) === 0x80) return "a link-local address";
  if (b[0] === 0xff) return "a multicast address";
  return undefined;
}

/** The learned routes of one TUN. */
export class LearnedRoutes {
  /** Route text (`198.51.100.7/32`) -> the argv that adds it and the one that removes it. */
  readonly #routes = new Map<string, { add: string[]; del: string[] }>();
  #warnedNo6 = false;

  constructor(
    readonly runner: CommandRunner,
    readonly ifname: string,
    readonly log: Logger,
    /** IPv4 addresses of every node (never routed into the tunnel). */
    readonly nodes: ReadonlySet<number>,
  ) {}

  /** Routes in place. */
  get size(): number {
    return this.#routes.size;
  }

  /**
   * Routes `addresses` into the tunnel (`has6`: the tunnel carries IPv6). Returns those that got
   * no route (refused, or the command failed), for the core to forget.
   */
  async add(addresses: readonly FollowAddress[], has6: boolean): Promise<FollowAddress[]> {
    const failed: FollowAddress[] = [];
    for (const a of addresses) {
      const v6 = "addr6" in a;
      const why = v6
        ? (has6 ? refuse6(a.addr6) : "the tunnel carries no IPv6")
        : refuse4(a.addr, this.nodes);
      const dst = v6 ? `${formatIPv6(a.addr6)}/128` : `${formatIPv4(a.addr)}/32`;
      if (why) {
        failed.push(a);
        if (v6 && !has6) {
          if (!this.#warnedNo6) {
            this.log.warning("Profile domains: AAAA answers are not routed: {why}", { why });
          }
          this.#warnedNo6 = true;
        } else {
          this.log.warning("Profile domain answer {dst} not routed: {why}", { dst, why });
        }
        continue;
      }
      if (this.#routes.has(dst)) continue;
      const fam = v6 ? ["-6"] : [];
      const add = ["ip", ...fam, "route", "replace", dst, "dev", this.ifname];
      const del = ["ip", ...fam, "route", "del", dst, "dev", this.ifname];
      try {
        await this.runner.run(add);
        this.#routes.set(dst, { add, del });
        this.log.info("Profile domain answer: {dst} routed into the tunnel", { dst });
      } catch (err) {
        failed.push(a);
        this.log.warning("Cannot route {dst}: {err}", { dst, err: (err as Error).message });
      }
    }
    return failed;
  }

  /** Removes the routes of `addresses` (their TTL and idle time passed). */
  async remove(addresses: readonly FollowAddress[]): Promise<void> {
    for (const a of addresses) {
      const dst = "addr6" in a ? `${formatIPv6(a.addr6)}/128` : `${formatIPv4(a.addr)}/32`;
      const r = this.#routes.get(dst);
      if (!r) continue;
      this.#routes.delete(dst);
      await this.runner.run(r.del).catch(() => undefined); // gone with the link already
      this.log.info("Profile domain route {dst} expired (TTL passed, unused)", { dst });
    }
  }

  /** Removes every route (a node move: the next node's DNS answers decide). */
  async flush(): Promise<void> {
    for (const r of this.#routes.values()) await this.runner.run(r.del).catch(() => undefined);
    this.#routes.clear();
  }

  /** Adds every route again (the link was rebuilt, which dropped them). */
  async reapply(): Promise<void> {
    for (const [dst, r] of this.#routes) {
      await this.runner.run(r.add).catch((err) => {
        this.#routes.delete(dst);
        this.log.warning("Cannot route {dst} again: {err}", { dst, err: (err as Error).message });
      });
    }
  }
}
