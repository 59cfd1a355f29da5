/**
 * Packet loss and duplication on a link, with nftables (this kernel has no netem).
 *
 * Each impairment is one `netdev` table, so removing it is one `nft delete table` and several
 * impairments never interfere. Probabilities come from `numgen random mod 10000`, so percentages
 * have a resolution of 0.01.
 *
 * @module
 */
import type { CommandResult } from "../../src/io/command.ts";
import type { ExecOptions } from "../../src/demo/topology.ts";

/** An installed impairment. */
export interface Impairment {
  /** `"loss"` or `"duplication"`. */
  readonly kind: "loss" | "duplication";
  /** The host whose outgoing traffic is impaired. */
  readonly host: string;
  /** The interface whose outgoing traffic is impaired. */
  readonly iface: string;
  /** Percentage of packets affected. */
  readonly percent: number;
  /** Removes the rule; idempotent, and harmless once the namespace is gone. */
  remove(): Promise<void>;
}

/** What the helpers need from a topology (see `Topology`). */
export interface ImpairTarget {
  /** Runs argv in `host`'s namespace. */
  exec(host: string, argv: readonly string[], opts?: ExecOptions): Promise<CommandResult>;
  /** The other end of a veth, when `iface` is one of the topology's links. */
  peerOf(host: string, iface: string): { host: string; iface: string } | undefined;
}

/** Marks a duplicate while it passes the egress hook a second time. */
const DUP_MARK = "0x7e57d0b1";

function threshold(percent: number): number {
  if (!Number.isFinite(percent) || percent < 0 || percent > 100) {
    throw new RangeError(`percent must be within 0..100, got ${percent}`);
  }
  return Math.round(percent * 100);
}

function tableName(kind: string, iface: string): string {
  return `xvpn_${kind}_${iface.replace(/[^A-Za-z0-9_]/g, "_")}`;
}

async function install(
  t: ImpairTarget,
  where: { host: string; iface: string; hook: "ingress" | "egress" },
  table: string,
  rule: string,
): Promise<() => Promise<void>> {
  // "table X; delete table X; table X {...}" replaces an earlier version atomically.
  const script = [
    `table netdev ${table}`,
    `delete table netdev ${table}`,
    `table netdev ${table} {`,
    `  chain impair {`,
    `    type filter hook ${where.hook} device "${where.iface}" priority 0; policy accept;`,
    `    ${rule}`,
    `  }`,
    `}`,
    ``,
  ].join("\n");
  await t.exec(where.host, ["nft", "-f", "-"], { stdin: script });
  let removed = false;
  return async () => {
    if (removed) return;
    removed = true;
    await t.exec(where.host, ["nft", "delete", "table", "netdev", table], { allowFailure: true });
  };
}

/**
 * Drops `percent` of the packets `host` sends out of `iface`.
 *
 * When `iface` is a topology veth, the rule sits on the *peer's* ingress: the packet has left
 * the sender, as on a real lossy wire. Dropping at the sender instead is visible to it: a drop in
 * the output hook fails `sendmsg` with EPERM, and one in the egress hook returns ENOBUFS to
 * sockets with IP_RECVERR (ping then retries the same probe, hiding the loss). For an interface
 * that is not a topology link (e.g. a TUN device) the rule falls back to `iface`'s egress hook,
 * with that caveat.
 */
export async function addLoss(
  t: ImpairTarget,
  host: string,
  iface: string,
  percent: number,
): Promise<Impairment> {
  const n = threshold(percent);
  const peer = t.peerOf(host, iface);
  const where = peer
    ? { host: peer.host, iface: peer.iface, hook: "ingress" as const }
    : { host, iface, hook: "egress" as const };
  const remove = await install(
    t,
    where,
    tableName("loss", where.iface),
    `numgen random mod 10000 < ${n} drop`,
  );
  return { kind: "loss", host, iface, percent, remove };
}

/**
 * Sends an extra copy of `percent` of the packets `host` sends out of `iface` (egress hook,
 * `dup to` the same device).
 *
 * The copy passes through the egress hook again, so without care it would be duplicated again
 * (50% then yields ~100% extra copies). The chosen packet is therefore marked just before the
 * `dup` (the copy inherits the mark), the original's mark is cleared after it, and a first rule
 * lets marked copies through with the mark cleared. Packet marks on `iface` are thus reset to 0;
 * nothing in these topologies uses them.
 */
export async function addDuplication(
  t: ImpairTarget,
  host: string,
  iface: string,
  percent: number,
): Promise<Impairment> {
  const n = threshold(percent);
  const remove = await install(
    t,
    { host, iface, hook: "egress" },
    tableName("dup", iface),
    [
      `meta mark ${DUP_MARK} meta mark set 0 accept`,
      `numgen random mod 10000 < ${n} meta mark set ${DUP_MARK} dup to "${iface}" meta mark set 0`,
    ].join("\n    "),
  );
  return { kind: "duplication", host, iface, percent, remove };
}
