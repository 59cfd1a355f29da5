/**
 * Throwaway network topologies for integration tests, `xvpn demo` and benchmarks: one network
 * namespace per host, veth pairs between them, addresses, routes and forwarding.
 *
 * Every name carries a random run prefix (`xt3fa9c1-client`), so parallel runs never collide,
 * and the veth ends are created directly inside their namespaces, so nothing is ever added to
 * the machine's own namespace. Deleting the namespaces removes everything else with them.
 *
 * @module
 */
import {
  CommandError,
  type CommandResult,
  type CommandRunner,
  ProcessRunner,
} from "../io/command.ts";
import { formatIPv4, networkOf, parseCidr, parseIPv4 } from "../lib/ip.ts";
import { killNamespacePids, removeOwnerRecord, writeOwnerRecord } from "./owner.ts";
import { destroyOnSignal } from "./teardown.ts";

/** A point-to-point link between hosts `a` and `b`; `a` gets `.1` and `b` gets `.2` of `subnet`. */
export interface LinkSpec {
  /** First host; gets the subnet's first address. */
  a: string;
  /** Second host; gets the subnet's second address. */
  b: string;
  /** IPv4 subnet of the link, e.g. `10.201.1.0/24` (prefix 30 or shorter). */
  subnet: string;
  /** MTU of both veth ends (default 1500). */
  mtu?: number;
}

/** A static route: in `host`, send `to` via `via`. */
export interface RouteSpec {
  /** Host whose routing table gets the route. */
  host: string;
  /** `"default"` or an IPv4 CIDR. */
  to: string;
  /** Next hop: a host name (its address on the link it shares with `host`) or an IPv4 address. */
  via: string;
  /** Optional route MTU. */
  mtu?: number;
}

/** What {@link Topology.create} builds. */
export interface TopologySpec {
  /** Run prefix, letters and digits only; default {@link uniquePrefix}(). Must be unique per run. */
  prefix?: string;
  /** Host names; namespaces are `<prefix>-<host>`. */
  hosts: string[];
  /** Links between hosts. */
  links: LinkSpec[];
  /** Hosts that forward IPv4 between their interfaces (routers). */
  forwarding?: string[];
  /** Static routes, added after all links are up. */
  routes?: RouteSpec[];
  /** Keep IPv6 enabled (default false: disabled, so captures and counters see only the test). */
  ipv6?: boolean;
  /** Runs the `ip`/`sysctl` commands; default {@link ProcessRunner}. */
  runner?: CommandRunner;
}

/** A link as built: interface names and addresses on both ends. */
export interface LinkInfo {
  /** First host. */
  a: string;
  /** Second host. */
  b: string;
  /** Interface name in `a`'s namespace. */
  ifaceA: string;
  /** Interface name in `b`'s namespace. */
  ifaceB: string;
  /** `a`'s address (no prefix length). */
  addrA: string;
  /** `b`'s address (no prefix length). */
  addrB: string;
  /** Prefix length of the subnet. */
  prefixLen: number;
  /** MTU of both ends. */
  mtu: number;
}

/** Options for {@link Topology.exec}. */
export interface ExecOptions {
  /** Resolve instead of throwing a {@link CommandError} on a non-zero exit. */
  allowFailure?: boolean;
  /** Text written to the command's standard input. */
  stdin?: string;
  /** Kill the command after this long (via coreutils `timeout`; it then exits 124). */
  timeoutMs?: number;
}

/** Options for {@link Topology.spawn}. */
export interface SpawnOptions {
  /** Standard input (default `"null"`). */
  stdin?: "piped" | "inherit" | "null";
  /** Standard output (default `"null"`, or piped into `logFile` when given). */
  stdout?: "piped" | "inherit" | "null";
  /** Standard error (default `"null"`, or piped into `logFile` when given). */
  stderr?: "piped" | "inherit" | "null";
  /** Append stdout and stderr to this file (overrides `stdout`/`stderr`). */
  logFile?: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /** Working directory. */
  cwd?: string;
}

/** Letters and digits only: the prefix ends at the first `-` of a namespace name. */
const PREFIX_RE = /^[A-Za-z0-9]{1,20}$/;
const HOST_RE = /^[A-Za-z0-9][A-Za-z0-9_-]{0,30}$/;

/** A fresh run prefix: `base` plus 6 random hex digits, e.g. `xt3fa9c1`. */
export function uniquePrefix(base = "xt"): string {
  const bytes = crypto.getRandomValues(new Uint8Array(3));
  return base + [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** A running set of namespaces; create with {@link Topology.create}, end with {@link destroy}. */
export class Topology {
  /** The run prefix. */
  readonly prefix: string;
  /** Host names, in creation order. */
  readonly hosts: readonly string[];
  /** The links as built. */
  readonly links: readonly LinkInfo[];
  readonly #runner: CommandRunner;
  readonly #children = new Set<Deno.ChildProcess>();
  readonly #pumps = new Set<Promise<unknown>>();
  readonly #cleanups: (() => Promise<void> | void)[] = [];
  /** Namespaces this object created: teardown never touches a same-named one it did not make. */
  readonly #created = new Set<string>();
  #ownsRecord = false;
  #destroyed: Promise<void> | undefined;
  #unregisterSignals: (() => void) | undefined;

  private constructor(
    prefix: string,
    hosts: readonly string[],
    links: LinkInfo[],
    runner: CommandRunner,
  ) {
    this.prefix = prefix;
    this.hosts = hosts;
    this.links = links;
    this.#runner = runner;
  }

  /**
   * Builds the topology: namespaces, loopback up, veth pairs with addresses, forwarding, routes.
   * On any failure, whatever was already created is destroyed before the error propagates.
   */
  static async create(spec: TopologySpec): Promise<Topology> {
    const prefix = spec.prefix ?? uniquePrefix();
    const runner = spec.runner ?? new ProcessRunner();
    const links = planLinks(prefix, spec);
    const topo = new Topology(prefix, [...spec.hosts], links, runner);
    try {
      // Fails when the prefix is in use (createNew), before any namespace is touched.
      await writeOwnerRecord(prefix).catch((err) => {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
        throw new Error(`topology prefix ${prefix} is in use by another run`, { cause: err });
      });
      topo.#ownsRecord = true;
      await topo.#build(spec);
    } catch (err) {
      await topo.destroy();
      throw err;
    }
    return topo;
  }

  async #build(spec: TopologySpec): Promise<void> {
    const ip = (args: string[]) => this.#runner.run(["ip", ...args]);
    for (const host of this.hosts) {
      await ip(["netns", "add", this.ns(host)]);
      this.#created.add(this.ns(host));
      await ip(["-n", this.ns(host), "link", "set", "lo", "up"]);
      if (!spec.ipv6) {
        await this.exec(host, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"]);
        await this.exec(host, ["sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1"]);
      }
    }
    for (const l of this.links) {
      const [nsA, nsB] = [this.ns(l.a), this.ns(l.b)];
      // Created straight inside the namespaces: no name ever exists in the root namespace.
      await ip(["link", "add", l.ifaceA, "netns", nsA, "type", "veth", "peer", "name", l.ifaceB]
        .concat(["netns", nsB]));
      const ends = [
        { ns: nsA, iface: l.ifaceA, addr: l.addrA },
        { ns: nsB, iface: l.ifaceB, addr: l.addrB },
      ];
      for (const { ns, iface, addr } of ends) {
        await ip(["-n", ns, "link", "set", "dev", iface, "mtu", String(l.mtu)]);
        await ip(["-n", ns, "addr", "add", `${addr}/${l.prefixLen}`, "dev", iface]);
        await ip(["-n", ns, "link", "set", "dev", iface, "up"]);
      }
    }
    for (const host of spec.forwarding ?? []) {
      this.#check(host);
      await this.exec(host, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);
    }
    for (const r of spec.routes ?? []) {
      const via = parseIPv4(r.via) !== undefined ? r.via : this.addr(r.via, r.host);
      const args = ["-n", this.ns(r.host), "route", "add", r.to, "via", via];
      await ip(r.mtu ? [...args, "mtu", String(r.mtu)] : args);
    }
  }

  /** The namespace name of `host`. */
  ns(host: string): string {
    this.#check(host);
    return `${this.prefix}-${host}`;
  }

  /** All namespace names. */
  namespaces(): string[] {
    return this.hosts.map((h) => this.ns(h));
  }

  /** The link between `host` and `peer` (the first, when there are several). */
  link(host: string, peer: string): LinkInfo {
    const l = this.links.find((l) =>
      (l.a === host && l.b === peer) || (l.b === host && l.a === peer)
    );
    if (!l) throw new Error(`no link between ${host} and ${peer}`);
    return l;
  }

  /**
   * `host`'s IPv4 address (no prefix length) on its link to `peer`; without `peer`, on its first
   * link.
   */
  addr(host: string, peer?: string): string {
    const l = peer === undefined ? this.#firstLink(host) : this.link(host, peer);
    return l.a === host ? l.addrA : l.addrB;
  }

  /** `host`'s interface name on its link to `peer`; without `peer`, on its first link. */
  iface(host: string, peer?: string): string {
    const l = peer === undefined ? this.#firstLink(host) : this.link(host, peer);
    return l.a === host ? l.ifaceA : l.ifaceB;
  }

  /** The other end of `host`'s veth `iface`, or undefined when `iface` is not a topology link. */
  peerOf(host: string, iface: string): { host: string; iface: string } | undefined {
    for (const l of this.links) {
      if (l.a === host && l.ifaceA === iface) return { host: l.b, iface: l.ifaceB };
      if (l.b === host && l.ifaceB === iface) return { host: l.a, iface: l.ifaceA };
    }
    return undefined;
  }

  /**
   * Runs `argv` inside `host`'s namespace to completion. Throws a {@link CommandError} naming
   * the full argv on a non-zero exit unless `allowFailure` is set.
   */
  exec(host: string, argv: readonly string[], opts: ExecOptions = {}): Promise<CommandResult> {
    const timeout = opts.timeoutMs === undefined
      ? []
      : ["timeout", "-k", "1", `${Math.max(opts.timeoutMs, 1) / 1000}s`];
    return this.#runner.run(["ip", "netns", "exec", this.ns(host), ...timeout, ...argv], {
      allowFailure: opts.allowFailure,
      stdin: opts.stdin,
    });
  }

  /**
   * Starts a long-running `argv` inside `host`'s namespace. `ip netns exec` execs the program,
   * so `child.pid` is the program's own pid (usable with /proc). The process is killed by
   * {@link destroy} if still running.
   */
  spawn(host: string, argv: readonly string[], opts: SpawnOptions = {}): Deno.ChildProcess {
    if (this.#destroyed) throw new Error(`topology ${this.prefix} is destroyed`);
    const log = opts.logFile !== undefined;
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", this.ns(host), ...argv],
      stdin: opts.stdin ?? "null",
      stdout: log ? "piped" : opts.stdout ?? "null",
      stderr: log ? "piped" : opts.stderr ?? "null",
      env: opts.env,
      cwd: opts.cwd,
    }).spawn();
    this.#children.add(child);
    child.status.finally(() => this.#children.delete(child));
    if (opts.logFile !== undefined) {
      const path = opts.logFile;
      for (const stream of [child.stdout, child.stderr]) {
        const pump = Deno.open(path, { write: true, create: true, append: true })
          .then((f) => stream.pipeTo(f.writable))
          .catch(() => {}); // the process died or the file went away: nothing left to log
        this.#pumps.add(pump);
        pump.finally(() => this.#pumps.delete(pump));
      }
    }
    return child;
  }

  /** Registers a cleanup step run by {@link destroy} (after processes are killed, LIFO order). */
  onDestroy(fn: () => Promise<void> | void): void {
    this.#cleanups.push(fn);
  }

  /**
   * Tears the topology down on SIGINT/SIGTERM (then exits 130/143). Undone by {@link destroy}.
   */
  destroyOnSignal(): void {
    this.#unregisterSignals ??= destroyOnSignal(this);
  }

  /**
   * Kills spawned processes (SIGTERM, then SIGKILL after 2 s) and anything else still running in
   * the namespaces, runs {@link onDestroy} steps, and deletes the namespaces (their veths go with
   * them). Idempotent; concurrent calls share one teardown.
   */
  destroy(): Promise<void> {
    this.#destroyed ??= this.#teardown();
    return this.#destroyed;
  }

  async #teardown(): Promise<void> {
    await Promise.all([...this.#children].map((c) => stopChild(c)));
    await Promise.all([...this.#pumps]);
    const errors: unknown[] = [];
    for (const fn of this.#cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    }
    const existing = new Set(await this.#existingNamespaces());
    for (const ns of this.#created) {
      if (!existing.has(ns)) continue;
      await killNamespacePids(ns, this.#runner);
      const r = await this.#runner.run(["ip", "netns", "del", ns], { allowFailure: true });
      if (r.code !== 0) errors.push(new CommandError(["ip", "netns", "del", ns], r.code, r.stderr));
    }
    if (this.#ownsRecord) await removeOwnerRecord(this.prefix);
    this.#unregisterSignals?.();
    if (errors.length) throw new AggregateError(errors, `destroying topology ${this.prefix}`);
  }

  async #existingNamespaces(): Promise<string[]> {
    const r = await this.#runner.run(["ip", "-j", "netns", "list"], { allowFailure: true });
    if (r.code !== 0 || !r.stdout.trim()) return [];
    return (JSON.parse(r.stdout) as { name: string }[]).map((n) => n.name);
  }

  #firstLink(host: string): LinkInfo {
    const l = this.links.find((l) => l.a === host || l.b === host);
    if (!l) throw new Error(`host ${host} has no links`);
    return l;
  }

  #check(host: string): void {
    if (!this.hosts.includes(host)) throw new Error(`unknown host ${host} in ${this.prefix}`);
  }
}

/** SIGTERM, wait up to 2 s, then SIGKILL; always awaits the exit so no handle leaks. */
async function stopChild(child: Deno.ChildProcess): Promise<void> {
  const signal = (sig: Deno.Signal) => {
    try {
      child.kill(sig);
    } catch {
      // already exited
    }
  };
  signal("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const exited = await Promise.race([
    child.status.then(() => true),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), 2000))),
  ]);
  clearTimeout(timer);
  if (!exited) signal("SIGKILL");
  await child.status;
}

/** Validates the spec and decides interface names and addresses. */
function planLinks(prefix: string, spec: TopologySpec): LinkInfo[] {
  if (!PREFIX_RE.test(prefix)) throw new Error(`bad topology prefix ${JSON.stringify(prefix)}`);
  const hosts = new Set<string>();
  for (const h of spec.hosts) {
    if (!HOST_RE.test(h)) throw new Error(`bad host name ${JSON.stringify(h)}`);
    if (hosts.has(h)) throw new Error(`duplicate host ${h}`);
    hosts.add(h);
  }
  const used = new Map<string, Set<string>>([...hosts].map((h) => [h, new Set<string>()]));
  // Interface names (max 15 bytes) say where they lead: `to-server` in the client namespace.
  const name = (host: string, peer: string) => {
    const taken = used.get(host)!;
    const base = `to-${peer}`.slice(0, 13);
    let n = base;
    for (let i = 2; taken.has(n); i++) n = `${base}${i}`;
    taken.add(n);
    return n;
  };
  return spec.links.map((l) => {
    for (const h of [l.a, l.b]) if (!hosts.has(h)) throw new Error(`link to unknown host ${h}`);
    if (l.a === l.b) throw new Error(`link from ${l.a} to itself`);
    const c = parseCidr(l.subnet);
    if (!c || c.prefix > 30) throw new Error(`bad link subnet ${l.subnet} (need /30 or wider)`);
    const net = networkOf(c);
    if (net !== c.addr) {
      throw new Error(`link subnet ${l.subnet} has host bits set`);
    }
    return {
      a: l.a,
      b: l.b,
      ifaceA: name(l.a, l.b),
      ifaceB: name(l.b, l.a),
      addrA: formatIPv4(net + 1),
      addrB: formatIPv4(net + 2),
      prefixLen: c.prefix,
      mtu: l.mtu ?? 1500,
    };
  });
}
