/**
 * The DNS applier for the operating system xvpn runs on: `DnsApplier` (systemd-resolved or
 * resolv.conf) on Linux, `WindowsDnsApplier` (adapter servers plus an NRPT rule) on Windows.
 * Both have the methods of {@link SystemDns}, so the runtime holds one without knowing which.
 *
 * @module
 */
import type { CommandRunner } from "../command.ts";
import type { Journal } from "../state/journal.ts";
import { DnsApplier } from "./applier.ts";
import { WindowsDnsApplier, type WindowsDnsMode } from "./windows.ts";

/** What the runtime asks of a DNS applier (the shape of `DnsApplier`). */
export interface SystemDns {
  /** True while applied settings have not been restored. */
  readonly active: boolean;
  /** Things worth logging, drained by the caller. */
  readonly notes: string[];
  /** At start: puts back what a killed earlier run on `ifname` left; says what it did. */
  recoverStale(ifname: string): Promise<string | undefined>;
  /** Sends DNS to the servers over `ifname` (IPv6 servers where the platform takes them). */
  apply(
    servers: readonly number[],
    ifname: string,
    servers6?: readonly Uint8Array[],
  ): Promise<string>;
  /** Puts back what `apply` changed; says what it did. */
  restore(): Promise<string | undefined>;
}

/** Options for {@link systemDns}. */
export interface SystemDnsOptions {
  /** Runs the commands. */
  runner: CommandRunner;
  /** Operating system (default `Deno.build.os`). */
  os?: typeof Deno.build.os;
  /** Windows: leak prevention (default `nrpt`). */
  windowsMode?: WindowsDnsMode;
  /** Windows: the crash journal to record the undo in (Linux keeps its resolv.conf backup). */
  journal?: { journal: Journal; key: string; what: string };
}

/** The applier for `os`. Elsewhere than Windows, `DnsApplier` (which refuses other systems). */
export function systemDns(opts: SystemDnsOptions): SystemDns {
  const os = opts.os ?? Deno.build.os;
  if (os === "windows") {
    return new WindowsDnsApplier({
      runner: opts.runner,
      ...(opts.windowsMode ? { mode: opts.windowsMode } : {}),
      ...(opts.journal ? { journal: opts.journal } : {}),
    });
  }
  return new DnsApplier({ runner: opts.runner, os });
}
