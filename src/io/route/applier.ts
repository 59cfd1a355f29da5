/**
 * Executing route plans: bring a tunnel link up with rollback on failure, and take down exactly
 * what was brought up.
 *
 * @module
 */
import { formatIPv4, parseIPv4 } from "../../lib/ip.ts";
import { formatIPv6, parseIPv6 } from "../../lib/ip6.ts";
import type { CommandRunner } from "../command.ts";
import { planLinuxSteps } from "./linux.ts";
import { planMacosSteps } from "./macos.ts";
import { type Endpoint, type LinkState, needsEndpointRoute, type RouteStep } from "./state.ts";
import { planWindowsSteps } from "./windows.ts";
import {
  findNetRouteArgv,
  type FoundRoute,
  parseFindNetRoute,
  windowsOriginalRoute,
  windowsOriginalRoute6,
} from "./windows_lookup.ts";
import type { Journal } from "../state/journal.ts";

/** Operating systems as named by `Deno.build.os`. */
export type OsName = typeof Deno.build.os;

/** The plan for `s` on `os`, as steps with their undo commands. */
export function planSteps(os: OsName, s: LinkState): RouteStep[] {
  switch (os) {
    case "linux":
      return planLinuxSteps(s);
    case "windows":
      return planWindowsSteps(s);
    case "darwin":
      return planMacosSteps(s);
    default:
      throw new Error(`route configuration is not implemented for ${os}`);
  }
}

/** The original path to a destination: next hop (when not on-link) and outgoing device. */
export interface OriginalRoute {
  /** Next hop, when the destination is not on-link. */
  gateway?: number;
  /** Outgoing interface. */
  dev?: string;
}

/**
 * Parses the JSON of `ip -j route get <ip>` (`[{"dst":…,"gateway":…,"dev":…}]`). Throws when
 * the output has no device, or an IPv6 next hop that an IPv4 host route cannot use.
 */
export function parseLinuxRouteGet(json: string): OriginalRoute {
  const parsed: unknown = JSON.parse(json);
  const first = Array.isArray(parsed) ? parsed[0] : undefined;
  if (typeof first !== "object" || first === null) {
    throw new Error(`unexpected output from ip route get: ${json.trim()}`);
  }
  const r = first as { gateway?: unknown; dev?: unknown };
  const out: OriginalRoute = {};
  if (typeof r.dev === "string") out.dev = r.dev;
  if (typeof r.gateway === "string") {
    const gw = parseIPv4(r.gateway);
    if (gw === undefined) throw new Error(`cannot use the IPv6 next hop ${r.gateway}`);
    out.gateway = gw;
  }
  if (out.dev === undefined) throw new Error(`no device in ip route get output: ${json.trim()}`);
  return out;
}

/** Parses the `gateway:` and `interface:` lines of macOS `route -n get <ip>`. */
export function parseMacosRouteGet(text: string): OriginalRoute {
  const out: OriginalRoute = {};
  const gw = /^\s*gateway:\s*(\S+)/m.exec(text)?.[1];
  const dev = /^\s*interface:\s*(\S+)/m.exec(text)?.[1];
  // An on-link destination reports a link address (e.g. "link#4") as gateway: not a next hop.
  const gwIp = gw === undefined ? undefined : parseIPv4(gw);
  if (gwIp !== undefined) out.gateway = gwIp;
  if (dev !== undefined) out.dev = dev;
  if (out.dev === undefined && out.gateway === undefined) {
    throw new Error(`no gateway or interface in route get output: ${text.trim()}`);
  }
  return out;
}

/**
 * Applies a {@link LinkState} through a {@link CommandRunner} and remembers what it changed.
 *
 * `up` runs the plan in order; when a command fails it undoes the steps that had succeeded
 * (last first) and rethrows the CommandError, which names the argv and the command's output.
 * Steps whose undo also failed stay recorded, so a later `down` retries them.
 */
export class RouteApplier {
  /** Steps that took effect, in the order they ran. */
  #applied: RouteStep[] = [];

  /**
   * Creates an applier that runs commands with `runner`, planning for `os`. With a `journal`,
   * the undo of every step is recorded there (under `key`) before the step runs, and forgotten
   * once undone, so that the next start can put back what a killed process left.
   */
  constructor(
    private readonly runner: CommandRunner,
    private readonly os: OsName = Deno.build.os,
    private readonly journal?: { journal: Journal; key: string; what: string },
  ) {}

  /** True while something applied by `up` has not been taken down. */
  get active(): boolean {
    return this.#applied.length > 0;
  }

  /**
   * Brings `s` up. For a full tunnel without a known original path to the endpoint, first asks
   * the OS how it reaches the endpoint now (`ip route get` on Linux, `route -n get` on macOS,
   * `Find-NetRoute` on Windows), before anything is changed. Throws if a previous `up` is still
   * active.
   */
  async up(s: LinkState): Promise<void> {
    if (this.active) throw new Error(`routes for ${s.ifname} are already up; call down() first`);
    const steps = planSteps(this.os, await this.#withOriginalRoute(s));
    await this.#record(steps); // write-ahead: a crash from here on is undone at the next start
    const done: RouteStep[] = [];
    for (const step of steps) {
      try {
        await this.runner.run(step.up);
      } catch (err) {
        this.#applied = await this.#undo(done, []);
        await this.#record(this.#applied);
        throw err;
      }
      done.push(step);
    }
    this.#applied = done;
  }

  /** Records the undo of `steps` in the journal (nothing to undo: forgets the key). */
  async #record(steps: readonly RouteStep[]): Promise<void> {
    const j = this.journal;
    if (!j) return;
    const undo = [...steps].reverse().flatMap((st) => st.down ? [st.down] : []);
    await j.journal.set(j.key, { what: j.what, undo });
  }

  /**
   * Removes exactly what `up` added, last first. Best effort: continues past failures and then
   * throws an AggregateError listing them. Idempotent: a second call has nothing left to do.
   */
  async down(): Promise<void> {
    const steps = this.#applied;
    this.#applied = [];
    const errors: unknown[] = [];
    const left = await this.#undo(steps, errors);
    await this.#record(left);
    if (errors.length > 0) {
      throw new AggregateError(
        errors,
        `route teardown: ${errors.length} command(s) failed: ` +
          errors.map((e) => (e instanceof Error ? e.message : String(e))).join("; "),
      );
    }
  }

  /** Undoes `steps` last first; returns the steps whose undo failed, collecting the errors. */
  async #undo(steps: readonly RouteStep[], errors: unknown[]): Promise<RouteStep[]> {
    const left: RouteStep[] = [];
    for (const step of [...steps].reverse()) {
      if (!step.down) continue;
      try {
        await this.runner.run(step.down);
      } catch (err) {
        errors.push(err);
        left.unshift(step);
      }
    }
    return left;
  }

  /** Fills in the endpoint's original route when the plan needs it and it was not given. */
  async #withOriginalRoute(s: LinkState): Promise<LinkState> {
    s = await this.#withOriginalRoute6(s);
    const ep = s.endpoint;
    if (!ep || ep.gateway !== undefined || ep.dev !== undefined) return s;
    if (!needsEndpointRoute(s)) return s;
    const ip = formatIPv4(ep.ip);
    let found: OriginalRoute;
    if (this.os === "linux") {
      const r = await this.runner.run(["ip", "-j", "route", "get", ip]);
      found = parseLinuxRouteGet(r.stdout);
    } else if (this.os === "darwin") {
      const r = await this.runner.run(["route", "-n", "get", ip]);
      found = parseMacosRouteGet(r.stdout);
    } else if (this.os === "windows") {
      found = windowsOriginalRoute(await this.#findNetRoute(ip), ip, s.ifname);
    } else {
      return s; // the plan reports that endpoint.gateway/dev are needed
    }
    const endpoint: Endpoint = { ...ep, ...found };
    return { ...s, endpoint };
  }

  /** Find-NetRoute's answer for `ip` (Windows); throws when Windows knows no route to it. */
  async #findNetRoute(ip: string): Promise<FoundRoute> {
    const r = await this.runner.run(findNetRouteArgv(ip));
    const found = parseFindNetRoute(r.stdout);
    if (!found) throw new Error(`Windows has no route to the server ${ip}`);
    return found;
  }

  /** The same for an IPv6 server (Linux, Windows): its way before IPv6 routes or the block
   * take over. */
  async #withOriginalRoute6(s: LinkState): Promise<LinkState> {
    const ep = s.endpoint6;
    if (!ep || ep.gateway !== undefined || ep.dev !== undefined) return s;
    if (this.os !== "linux" && this.os !== "windows") return s;
    if (!s.blockIPv6 && !(s.routes6?.length)) return s;
    if (this.os === "windows") {
      const ip = formatIPv6(ep.ip6);
      const found = windowsOriginalRoute6(await this.#findNetRoute(ip), ip, s.ifname);
      return { ...s, endpoint6: { ...ep, ...found } };
    }
    const r = await this.runner.run(["ip", "-j", "-6", "route", "get", formatIPv6(ep.ip6)]);
    const first = (JSON.parse(r.stdout) as { gateway?: string; dev?: string }[])[0] ?? {};
    const gateway = first.gateway ? parseIPv6(first.gateway) : undefined;
    return {
      ...s,
      endpoint6: {
        ...ep,
        ...(gateway ? { gateway } : {}),
        ...(first.dev ? { dev: first.dev } : {}),
      },
    };
  }
}
