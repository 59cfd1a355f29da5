/**
 * The pure parts of the Linux learner: where the process's cgroup is and where to put it, the
 * nftables table that records its destinations, and reading `/proc/N/net/*` and `nft -j`
 * output. Kept apart from `linux.ts` so each can be tested on text.
 *
 * @module
 */

/** The nftables table the learner adds (family inet) and deletes when done. */
export const LEARN_TABLE = "xvpn_learn";

/** nft resolves `socket cgroupv2` paths relative to this directory, whatever is mounted. */
export const NFT_CGROUP_BASE = "/sys/fs/cgroup";

/** Where to move a process so that nftables can tell its sockets from everyone else's. */
export interface CgroupPlan {
  /** The process's cgroup v2 path now (`/user.slice/...`, `/` for the root). */
  original: string;
  /** Directory of the original cgroup in the file system. */
  originalDir: string;
  /** Directory of the cgroup to create beneath it and move the process into. */
  dir: string;
  /** The same cgroup as nft names it: relative to {@link NFT_CGROUP_BASE}. */
  nftPath: string;
  /** Its depth in the cgroup v2 tree (the root is 0): `socket cgroupv2 level`. */
  level: number;
}

/** Decodes the octal escapes (`\040` for a space) of `/proc/self/mountinfo` fields. */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** The mount point of the cgroup v2 hierarchy from `/proc/self/mountinfo`, when it is mounted
 * whole (root `/`); undefined otherwise. */
export function cgroup2Mount(mountinfo: string): string | undefined {
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right || right.split(" ")[0] !== "cgroup2") continue;
    const f = left.split(" ");
    if (f[3] === "/" && f[4]) return unescapeMount(f[4]);
  }
  return undefined;
}

/**
 * Plans the move of `pid` into a new cgroup beneath its own (`<its cgroup>/xvpn-learn-<pid>`:
 * the parent's limits still apply) from `/proc/<pid>/cgroup` and `/proc/self/mountinfo`.
 * Returns a reason instead when it cannot work: no cgroup v2, a hierarchy that nft cannot
 * reach under /sys/fs/cgroup, or a path nft could not quote.
 */
export function planCgroup(
  procCgroup: string,
  mountinfo: string,
  pid: number,
): CgroupPlan | string {
  const line = procCgroup.split("\n").find((l) => l.startsWith("0::"));
  if (line === undefined) return "the process is in no cgroup v2 hierarchy";
  const original = line.slice(3).trim() || "/";
  if (!original.startsWith("/") || original.includes(" (deleted)")) {
    return `the process's cgroup ${JSON.stringify(original)} cannot be used`;
  }
  const mount = cgroup2Mount(mountinfo);
  if (mount === undefined) return "no cgroup v2 hierarchy is mounted whole";
  const originalDir = `${mount}${original === "/" ? "" : original}`;
  const dir = `${originalDir}/xvpn-learn-${pid}`;
  if (!dir.startsWith(`${NFT_CGROUP_BASE}/`)) {
    return `cgroup v2 is mounted at ${mount}, outside ${NFT_CGROUP_BASE} where nft looks`;
  }
  const nftPath = dir.slice(NFT_CGROUP_BASE.length + 1);
  if (/["\\\n]/.test(nftPath)) return `the cgroup path ${JSON.stringify(nftPath)} cannot be quoted`;
  const level = original.split("/").filter((p) => p).length + 1;
  return { original, originalDir, dir, nftPath, level };
}

/**
 * The nftables table that records where the process sends: two dynamic sets of destinations
 * (`seen4`, `seen6`) filled by the output hook, from packets whose source port is one of the
 * process's sockets (`udp_ports`, `tcp_ports`, kept up to date while learning) and, with a
 * cgroup, from packets of sockets made in it. The hook only adds to sets; it never drops.
 */
export function learnRuleset(cgroup?: Pick<CgroupPlan, "nftPath" | "level">): string {
  const rules = [
    "meta nfproto ipv4 udp sport @udp_ports update @seen4 { ip daddr }",
    "meta nfproto ipv6 udp sport @udp_ports update @seen6 { ip6 daddr }",
    "meta nfproto ipv4 tcp sport @tcp_ports update @seen4 { ip daddr }",
    "meta nfproto ipv6 tcp sport @tcp_ports update @seen6 { ip6 daddr }",
  ];
  if (cgroup) {
    const match = `socket cgroupv2 level ${cgroup.level} "${cgroup.nftPath}"`;
    rules.push(
      `meta nfproto ipv4 ${match} update @seen4 { ip daddr }`,
      `meta nfproto ipv6 ${match} update @seen6 { ip6 daddr }`,
    );
  }
  return [
    `table inet ${LEARN_TABLE} {`,
    "  set seen4 { type ipv4_addr; flags dynamic; size 65535; }",
    "  set seen6 { type ipv6_addr; flags dynamic; size 65535; }",
    "  set udp_ports { type inet_service; }",
    "  set tcp_ports { type inet_service; }",
    "  chain output {",
    "    type filter hook output priority 0; policy accept;",
    ...rules.map((r) => `    ${r}`),
    "  }",
    "}",
    "",
  ].join("\n");
}

/** The socket inode of an fd link target (`socket:[12345]`), or undefined for other files. */
export function socketInode(link: string): string | undefined {
  return /^socket:\[(\d+)\]$/.exec(link)?.[1];
}

/**
 * The local ports of the sockets in `inodes`, from the text of `/proc/N/net/udp`, `udp6`,
 * `tcp` or `tcp6` (header line, then `sl local rem st ... uid timeout inode ...`). Port 0
 * (not bound yet) is left out.
 */
export function localPorts(procNet: string, inodes: ReadonlySet<string>): number[] {
  const out: number[] = [];
  for (const line of procNet.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    const local = f[1], inode = f[9];
    if (local === undefined || inode === undefined || !inodes.has(inode)) continue;
    const port = parseInt(local.slice(local.lastIndexOf(":") + 1), 16);
    if (port > 0 && port <= 65535 && !out.includes(port)) out.push(port);
  }
  return out;
}

/**
 * The elements of a set in `nft -j list set ...` output: plain values, or `{ "elem": { "val":
 * ... } }` objects for sets with timeouts or counters.
 */
export function setElements(json: string): string[] {
  const doc = JSON.parse(json) as { nftables?: { set?: { elem?: unknown[] } }[] };
  const out: string[] = [];
  for (const item of doc.nftables ?? []) {
    for (const e of item.set?.elem ?? []) {
      const v = typeof e === "object" && e !== null && "elem" in e
        ? (e as { elem: { val?: unknown } }).elem.val
        : e;
      if (typeof v === "string") out.push(v);
    }
  }
  return out;
}
