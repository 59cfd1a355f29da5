/**
 * Pure plans for the server's NAT: an nftables table of our own that masquerades the client
 * pool, plus IPv4 forwarding. Owning a whole table (instead of adding rules to someone else's
 * chains) makes teardown a single `delete table` that cannot disturb other rules.
 *
 * @module
 */
import { type Cidr, formatCidr } from "../../lib/ip.ts";

/** The sysctl that turns IPv4 forwarding on (per network namespace). */
export const IP_FORWARD = "net.ipv4.ip_forward";

/** What to masquerade. */
export interface NatSpec {
  /** Distinguishes our table from other instances'; usually the TUN interface name. */
  tag: string;
  /** The client address pool, e.g. 10.7.0.0/24. */
  pool: Cidr;
  /** Only masquerade traffic leaving through this interface (e.g. `eth0`); all when absent. */
  outIface?: string;
}

/** Our nftables table name for `tag`: `xvpn_nat_<tag>`, with characters nft rejects as `_`. */
export function natTableName(tag: string): string {
  if (!tag) throw new Error("NAT tag is empty");
  return `xvpn_nat_${tag.replace(/[^A-Za-z0-9_]/g, "_")}`;
}

function checkIface(name: string): void {
  // Interface names are at most 15 bytes; a quote or backslash would escape the nft string.
  if (!/^[^\s"'\\/:]{1,15}$/.test(name)) throw new Error(`bad output interface name "${name}"`);
}

/**
 * The nft script, as one command line so it is applied as one atomic transaction. The leading
 * `add table; delete table` pair makes it idempotent: a stale table from a crashed run is
 * replaced rather than duplicated. Priority 100 is `srcnat` (spelled as a number for older nft).
 */
export function natScript(spec: NatSpec): string {
  const t = natTableName(spec.tag);
  const match = [`ip saddr ${formatCidr(spec.pool)}`];
  if (spec.outIface !== undefined) {
    checkIface(spec.outIface);
    match.push(`oifname "${spec.outIface}"`);
  }
  return `add table ip ${t}; delete table ip ${t}; add table ip ${t} { ` +
    `chain postrouting { type nat hook postrouting priority 100; policy accept; ` +
    `${match.join(" ")} masquerade; }; }`;
}

/** The command that reads the current IPv4 forwarding setting (`0` or `1`). */
export function planReadForwarding(): string[] {
  return ["sysctl", "-n", IP_FORWARD];
}

/** Commands that enable NAT: our table first, then forwarding (so nothing leaks un-NATed). */
export function planNatEnable(spec: NatSpec): string[][] {
  return [["nft", natScript(spec)], ["sysctl", "-w", `${IP_FORWARD}=1`]];
}

/**
 * Commands that undo {@link planNatEnable}: delete our table, then put forwarding back to
 * `oldForward` — skipped when it was already `1`, so we never switch off forwarding that
 * someone else had turned on.
 */
export function planNatDisable(tag: string, oldForward: string): string[][] {
  const plan = [["nft", "delete", "table", "ip", natTableName(tag)]];
  if (oldForward !== "1") plan.push(["sysctl", "-w", `${IP_FORWARD}=${oldForward}`]);
  return plan;
}
