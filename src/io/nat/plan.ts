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
  /**
   * The TUN interface: with it, a forward filter lets into the pool only what answers the
   * clients' own traffic (established, related) and what clients send each other, unless
   * `inbound` allows new connections from outside too (hosting a match, peer-to-peer games).
   */
  tun?: string;
  /** Allow new connections from outside into the pool (config `inbound: true`). */
  inbound?: boolean;
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
  // Forwarding on with no filter let any host beside the server reach the clients (audit
  // finding 1): only replies, and clients among themselves, unless inbound is allowed.
  let forward = "";
  if (spec.tun !== undefined && !spec.inbound) {
    checkIface(spec.tun);
    const into = `oifname "${spec.tun}" ip daddr ${formatCidr(spec.pool)}`;
    forward = `chain forward { type filter hook forward priority 0; policy accept; ` +
      `${into} ct state established,related accept; ` +
      `${into} iifname "${spec.tun}" accept; ` +
      `${into} counter drop; }; `;
  }
  return `add table ip ${t}; delete table ip ${t}; add table ip ${t} { ` +
    `chain postrouting { type nat hook postrouting priority 100; policy accept; ` +
    `${match.join(" ")} masquerade; }; ${forward}}`;
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
