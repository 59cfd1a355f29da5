/**
 * Pure plans for the server's NAT: an nftables table of our own that masquerades the client
 * pool (and the LANs behind clients, `lan:`), plus IPv4 forwarding. Owning a whole table
 * (instead of adding rules to someone else's chains) makes teardown a single `delete table` that
 * cannot disturb other rules.
 *
 * @module
 */
import { type Cidr, formatCidr } from "../../lib/ip.ts";
import { type Cidr6, formatCidr6 } from "../../lib/ip6.ts";

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
  /**
   * LANs behind clients (`lan:`): masqueraded and filtered exactly as the pool, since their
   * devices are clients too (without them in the filter, a host beside the server could open
   * connections to a console).
   */
  lans?: Cidr[];
}

/** What to masquerade for the IPv6 pool (the same settings, `pool6` instead of `pool`). */
export type NatSpec6 = Omit<NatSpec, "pool" | "lans"> & { pool6: Cidr6; lans?: Cidr6[] };

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
  return familyScript(spec, "ip", [spec.pool, ...spec.lans ?? []].map(formatCidr));
}

/**
 * The script of {@link natScript} for one family: `ip` or `ip6` table, the pool (and LANs) as
 * text; several become an anonymous set, `{ 10.7.0.0/24, 192.168.50.0/24 }`.
 */
function familyScript(
  spec: Omit<NatSpec, "pool" | "lans">,
  family: "ip" | "ip6",
  addrs: string[],
): string {
  const t = natTableName(spec.tag);
  const pool = addrs.length === 1 ? addrs[0]! : `{ ${addrs.join(", ")} }`;
  const match = [`${family} saddr ${pool}`];
  if (spec.outIface !== undefined) {
    checkIface(spec.outIface);
    match.push(`oifname "${spec.outIface}"`);
  }
  // Forwarding on with no filter let any host beside the server reach the clients (audit
  // finding 1): only replies, and clients among themselves, unless inbound is allowed. ICMP
  // errors towards the clients (IPv6's packet too big above all) are "related".
  let forward = "";
  if (spec.tun !== undefined && !spec.inbound) {
    checkIface(spec.tun);
    const into = `oifname "${spec.tun}" ${family} daddr ${pool}`;
    forward = `chain forward { type filter hook forward priority 0; policy accept; ` +
      `${into} ct state established,related accept; ` +
      `${into} iifname "${spec.tun}" accept; ` +
      `${into} counter drop; }; `;
  }
  return `add table ${family} ${t}; delete table ${family} ${t}; add table ${family} ${t} { ` +
    `chain postrouting { type nat hook postrouting priority 100; policy accept; ` +
    `${match.join(" ")} masquerade; }; ${forward}}`;
}

/** The command that reads a forwarding setting (`0` or `1`; IPv4's by default). */
export function planReadForwarding(key = IP_FORWARD): string[] {
  return ["sysctl", "-n", key];
}

/** Commands that enable NAT: our table first, then forwarding (so nothing leaks un-NATed). */
export function planNatEnable(spec: NatSpec): string[][] {
  return [["nft", natScript(spec)], ["sysctl", "-w", `${IP_FORWARD}=1`]];
}

/**
 * Commands that undo {@link planNatEnable}, in reverse: forwarding back to `oldForward` first
 * (skipped when it was already `1`, so we never switch off forwarding that someone else had
 * turned on), then our table, so forwarding is never on without the forward filter.
 */
export function planNatDisable(tag: string, oldForward: string): string[][] {
  const plan = oldForward !== "1" ? [["sysctl", "-w", `${IP_FORWARD}=${oldForward}`]] : [];
  return [...plan, ["nft", "delete", "table", "ip", natTableName(tag)]];
}

/** The sysctl that turns IPv6 forwarding on (per network namespace). */
export const IP6_FORWARD = "net.ipv6.conf.all.forwarding";

/** The nft script for the IPv6 pool: as {@link natScript}, in an `ip6` table of its own. */
export function nat6Script(spec: NatSpec6): string {
  return familyScript(spec, "ip6", [spec.pool6, ...spec.lans ?? []].map(formatCidr6));
}

/** Commands that NAT the IPv6 pool: our ip6 table, then IPv6 forwarding. */
export function planNat6Enable(spec: NatSpec6): string[][] {
  return [["nft", nat6Script(spec)], ["sysctl", "-w", `${IP6_FORWARD}=1`]];
}

/** Undoes {@link planNat6Enable} as {@link planNatDisable} does: forwarding, then the table. */
export function planNat6Disable(tag: string, old: string): string[][] {
  const plan = old !== "1" ? [["sysctl", "-w", `${IP6_FORWARD}=${old}`]] : [];
  return [...plan, ["nft", "delete", "table", "ip6", natTableName(tag)]];
}
