/**
 * The facts about the machine that decide how (and whether) xvpn may change DNS: which network
 * namespace it runs in, and which paths are mount points in its mount namespace.
 *
 * They matter because `ip netns exec <ns>` bind-mounts `/etc/netns/<ns>/resolv.conf` over
 * /etc/resolv.conf in a private mount namespace: that file belongs to the namespace, while the
 * rest of /etc (and a resolv.conf that is not bind-mounted) is the whole machine's.
 *
 * @module
 */

/** What the DNS applier asks about the machine; tests pass a fake. */
export interface DnsSystem {
  /**
   * A short tag (`net4026532281`) naming this process's network namespace when it is not the
   * machine's initial one (that of pid 1), else undefined.
   */
  netnsTag(): Promise<string | undefined>;
  /** True when `path` (an absolute, symlink-free path) is a mount point here. */
  isMountPoint(path: string): Promise<boolean>;
}

/**
 * The mount points listed in a `/proc/self/mountinfo` text (field 5, with the kernel's octal
 * escapes such as `\040` for a space undone).
 */
export function parseMountInfo(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const field = line.split(" ")[4];
    if (field === undefined) continue;
    out.push(
      field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8))),
    );
  }
  return out;
}

/** `net:[4026532281]` (the text of a /proc/<pid>/ns/net link) as `net4026532281`. */
export function netnsTagOf(link: string): string {
  const m = /^net:\[(\d+)\]$/.exec(link);
  return m ? `net${m[1]}` : `net${link.replace(/[^0-9A-Za-z]/g, "")}`;
}

/**
 * Decides whether `self` (the text of /proc/self/ns/net) is the initial network namespace:
 * compared with pid 1's when that is readable; otherwise (no right to look at pid 1, as in some
 * sandboxes even for root) a namespace is recognized by the bind mount `ip netns add` leaves in
 * /run/netns. `named` is the list of those namespaces' inode numbers.
 */
export function isInitialNetns(self: string, init: string | undefined, named: number[]): boolean {
  if (init !== undefined) return self === init;
  const ino = /^net:\[(\d+)\]$/.exec(self)?.[1];
  return ino === undefined || !named.includes(Number(ino));
}

/** Inode numbers of the namespaces mounted in /run/netns (named by `ip netns add`). */
async function namedNetnsInodes(): Promise<number[]> {
  const out: number[] = [];
  try {
    for await (const e of Deno.readDir("/run/netns")) {
      const st = await Deno.stat(`/run/netns/${e.name}`).catch(() => undefined);
      if (st?.ino != null) out.push(st.ino);
    }
  } catch {
    // no /run/netns: no named namespaces
  }
  return out;
}

/** The real machine, read from /proc. */
export const linuxSystem: DnsSystem = {
  async netnsTag() {
    let self: string;
    try {
      self = await Deno.readLink("/proc/self/ns/net");
    } catch {
      return undefined; // no /proc: not Linux as we know it
    }
    const init = await Deno.readLink("/proc/1/ns/net").catch(() => undefined);
    const named = init === undefined ? await namedNetnsInodes() : [];
    return isInitialNetns(self, init, named) ? undefined : netnsTagOf(self);
  },
  async isMountPoint(path: string) {
    try {
      return parseMountInfo(await Deno.readTextFile("/proc/self/mountinfo")).includes(path);
    } catch {
      return false;
    }
  },
};
