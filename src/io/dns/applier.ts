/**
 * Pointing the machine's DNS at the servers the VPN server pushed, and putting it back.
 *
 * Linux strategy, chosen on the first {@link DnsApplier.apply}:
 * - systemd-resolved serves the machine (resolv.conf is its stub and `resolvectl status`
 *   answers): per-link servers and the routing domain `~.` on the tunnel interface
 *   (`resolvectl revert` undoes it);
 * - otherwise: resolv.conf is rewritten, with a backup in `/run/xvpn` for restore and for
 *   recovery after a crash (see `resolvconf_backend.ts`).
 *
 * Inside a network namespace that is not the machine's own, only a resolv.conf private to the
 * namespace (bind-mounted by `ip netns exec` from `/etc/netns/<ns>/resolv.conf`) is touched:
 * resolved runs in the initial namespace and cannot see our interface, and an unmounted
 * /etc/resolv.conf there is the whole machine's. Without one, `apply` refuses with
 * {@link DnsNotApplied} instead of changing DNS for every process on the machine.
 *
 * @module
 */
import type { CommandRunner } from "../command.ts";
import { formatIPv4 } from "../../lib/ip.ts";
import { ResolvConfBackend } from "./resolvconf_backend.ts";
import { nameservers } from "./resolvconf.ts";
import { RESOLVED_STUB, ResolvedBackend, resolvedRunning } from "./resolved.ts";
import { type DnsSystem, linuxSystem } from "./system.ts";

/** Default resolv.conf path. */
export const RESOLV_CONF = "/etc/resolv.conf";
/** Default directory for resolv.conf backups (tmpfs: a reboot clears it, as it should). */
export const BACKUP_DIR = "/run/xvpn";

/** The tunnel's DNS was deliberately not applied; the message says why and what to do. */
export class DnsNotApplied extends Error {
  /** Creates the error with the reason. */
  constructor(message: string) {
    super(message);
    this.name = "DnsNotApplied";
  }
}

/** Options for {@link DnsApplier}; everything but `runner` has a default for the real machine. */
export interface DnsApplierOptions {
  /** Runs `resolvectl`. */
  runner: CommandRunner;
  /** The resolv.conf to rewrite (default {@link RESOLV_CONF}). */
  resolvConf?: string;
  /** Directory for backups (default {@link BACKUP_DIR}). */
  backupDir?: string;
  /** Facts about namespaces and mounts (default: read from /proc). */
  system?: DnsSystem;
  /** Operating system (default `Deno.build.os`). */
  os?: typeof Deno.build.os;
}

/** Applies pushed DNS servers for one tunnel interface at a time and restores what was there. */
export class DnsApplier {
  readonly #runner: CommandRunner;
  readonly #resolvConf: string;
  readonly #backupDir: string;
  readonly #system: DnsSystem;
  readonly #os: typeof Deno.build.os;
  #backend: ResolvedBackend | ResolvConfBackend | undefined;
  /** Things worth logging that happened on the way (a stale backup found, ...); drained by the caller. */
  readonly notes: string[] = [];

  /** Creates an applier; nothing is read or changed until a method is called. */
  constructor(opts: DnsApplierOptions) {
    this.#runner = opts.runner;
    this.#resolvConf = opts.resolvConf ?? RESOLV_CONF;
    this.#backupDir = opts.backupDir ?? BACKUP_DIR;
    this.#system = opts.system ?? linuxSystem;
    this.#os = opts.os ?? Deno.build.os;
  }

  /** True while DNS settings applied here have not been restored. */
  get active(): boolean {
    return this.#backend?.active ?? false;
  }

  /**
   * The backup path for `ifname`: `<dir>/resolv.conf.<ifname>.bak`, with the network namespace
   * added (`resolv.conf.xvpn0.net4026532281.bak`) outside the initial one, since /run is shared
   * by every namespace and each has its own resolv.conf (and often the same interface name).
   */
  async backupPath(ifname: string): Promise<string> {
    const tag = await this.#system.netnsTag();
    return `${this.#backupDir}/resolv.conf.${ifname}${tag ? `.${tag}` : ""}.bak`;
  }

  /**
   * Run at start, before any tunnel exists: if an earlier xvpn on `ifname` died with its
   * resolv.conf in place, puts the saved one back (or drops a backup that is outdated). Returns
   * what was done, for the log, or undefined when there was nothing to do.
   */
  async recoverStale(ifname: string): Promise<string | undefined> {
    if (this.#os !== "linux") return undefined;
    const backend = new ResolvConfBackend(
      { resolvConf: this.#resolvConf, backup: await this.backupPath(ifname) },
      ifname,
      (p) => this.#system.isMountPoint(p),
    );
    return await backend.recoverStale();
  }

  /**
   * Sends DNS queries to `servers` (u32 addresses) through `ifname`. Calling it again (new
   * servers after a reconnect) updates the settings and keeps the original backup. Returns what
   * was done, for the log. Throws {@link DnsNotApplied} when DNS is deliberately left alone, and
   * other errors when a change failed (nothing is left half-changed).
   */
  async apply(servers: readonly number[], ifname: string): Promise<string> {
    if (this.#os !== "linux") {
      throw new DnsNotApplied(`changing DNS is not implemented for ${this.#os} yet`);
    }
    if (servers.length === 0) throw new DnsNotApplied("the server pushed no DNS servers");
    // One interface at a time: a different one first gets the old one's settings undone.
    if (this.#backend?.active && this.#backend.ifname !== ifname) await this.restore();
    if (!this.#backend?.active) this.#backend = await this.#choose(ifname);
    const b = this.#backend;
    if (b instanceof ResolvedBackend) {
      await b.apply(servers, ifname);
      return `systemd-resolved sends every query to ${servers.map(formatIPv4).join(", ")} ` +
        `over ${ifname} (resolvectl dns, domain ~.)`;
    }
    return await b.apply(servers, this.notes);
  }

  /** Puts back what {@link apply} changed. Returns what was done, or undefined for nothing. */
  async restore(): Promise<string | undefined> {
    const b = this.#backend;
    this.#backend = undefined;
    if (!b?.active) return undefined;
    if (b instanceof ResolvedBackend) {
      const ifname = b.ifname;
      await b.restore();
      return `systemd-resolved settings of ${ifname} reverted`;
    }
    return await b.restore();
  }

  async #choose(ifname: string): Promise<ResolvedBackend | ResolvConfBackend> {
    const inNamespace = (await this.#system.netnsTag()) !== undefined;
    const real = await Deno.realPath(this.#resolvConf).catch(() => undefined);
    if (inNamespace) {
      const own = await this.#system.isMountPoint(this.#resolvConf) ||
        (real !== undefined && (await this.#system.isMountPoint(real)));
      if (!own) {
        throw new DnsNotApplied(
          `this network namespace has no resolv.conf of its own, and ${this.#resolvConf} is the ` +
            `whole machine's; create /etc/netns/<namespace>/resolv.conf (ip netns exec mounts ` +
            `it) or set dns: false`,
        );
      }
    } else if (await this.#usesResolved(real)) {
      return new ResolvedBackend(this.#runner);
    }
    return new ResolvConfBackend(
      { resolvConf: this.#resolvConf, backup: await this.backupPath(ifname) },
      ifname,
      (p) => this.#system.isMountPoint(p),
    );
  }

  /**
   * resolved decides only when the resolver talks to its stub: resolv.conf is (a link to) the
   * stub file or lists just 127.0.0.53. With any other resolv.conf, glibc asks the servers in
   * the file and resolved's per-link settings would change nothing.
   */
  async #usesResolved(real: string | undefined): Promise<boolean> {
    let stub = real === RESOLVED_STUB;
    if (!stub) {
      const text = await Deno.readTextFile(this.#resolvConf).catch(() => "");
      const ns = nameservers(text);
      stub = ns.length > 0 && ns.every((n) => n === "127.0.0.53");
    }
    return stub && (await resolvedRunning(this.#runner));
  }
}
