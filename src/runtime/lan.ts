/**
 * The runtime side of LANs behind clients (`lan:`, config/lan.ts; the core's table is
 * core/lan.ts). The server routes every client's LANs into its TUN (routes on its link,
 * journaled, removed at exit), masquerades and filters them with the pool when `nat` is on, and
 * first refuses a LAN that overlaps one of its own connected subnets (it could not tell its own
 * network from the client's). The client carrying a LAN turns forwarding on for as long as it
 * runs (journaled, put back at exit and after a crash), and warns when the LAN is not connected
 * to it.
 *
 * @module
 */
import type { Logger } from "@logtape/logtape";
import type { ClientConfig, ServerConfig } from "../config/mod.ts";
import { type Cidr, cidrContains, formatCidr, networkOf } from "../lib/ip.ts";
import { type Cidr6, cidr6Contains } from "../lib/ip6.ts";
import type { CommandRunner } from "../io/command.ts";
import { parseLocalRoutes, parseLocalRoutes6 } from "../io/route/local.ts";
import { Forwarding } from "../io/nat/forward.ts";
import { IP6_FORWARD, IP_FORWARD } from "../io/nat/plan.ts";
import type { Journal } from "../io/state/journal.ts";
import { formatLans } from "../config/lan.ts";

/** Every client's LANs, by family (what the server routes into its TUN). */
export interface ServerLans {
  routes: Cidr[];
  routes6: Cidr6[];
}

/** True when two IPv4 prefixes share an address. */
function overlap4(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, networkOf(b)) || cidrContains(b, networkOf(a));
}

/** True when two IPv6 prefixes (host bits clear) share an address. */
function overlap6(a: Cidr6, b: Cidr6): boolean {
  return cidr6Contains(a, b.addr) || cidr6Contains(b, a.addr);
}

/**
 * Why the clients' LANs cannot be routed on a host whose connected subnets are `subnets` /
 * `subnets6`, one sentence each (none: they can).
 */
export function lanConflicts(
  clients: ServerConfig["clients"],
  subnets: readonly Cidr[],
  subnets6: readonly Cidr6[] = [],
): string[] {
  const out: string[] = [];
  for (const c of clients) {
    for (const lan of c.lan ?? []) {
      const s = subnets.find((s) => overlap4(s, lan));
      if (s) out.push(conflict(c.name, formatCidr(lan), formatCidr(s)));
    }
    for (const lan of c.lan6 ?? []) {
      const s = subnets6.find((s) => overlap6(s, lan));
      if (s) out.push(conflict(c.name, formatLans([], [lan]), formatLans([], [s])));
    }
  }
  return out;
}

function conflict(name: string, lan: string, subnet: string): string {
  return `lan ${lan} of client "${name}" overlaps ${subnet}, a subnet connected to this ` +
    `server: without NAT it cannot tell its own network from the client's; give that LAN ` +
    `another subnet`;
}

/**
 * The server's LANs: checked against its connected subnets (`ip -j route show`, before its TUN
 * exists), each logged. Throws an Error naming every conflict.
 */
export async function serverLans(
  cfg: ServerConfig,
  runner: CommandRunner,
  log: Logger,
): Promise<ServerLans> {
  const routes = cfg.clients.flatMap((c) => c.lan ?? []);
  const routes6 = cfg.clients.flatMap((c) => c.lan6 ?? []);
  if (routes.length + routes6.length === 0) return { routes, routes6 };
  if (Deno.build.os === "linux") {
    const show = async (v6: boolean) => {
      const argv = ["ip", "-j", ...(v6 ? ["-6"] : []), "route", "show"];
      const r = await runner.run(argv, { allowFailure: true });
      return r.code === 0 ? r.stdout : "[]";
    };
    const subnets = parseLocalRoutes(await show(false), cfg.tun.name).subnets;
    const subnets6 = routes6.length
      ? parseLocalRoutes6(await show(true), cfg.tun.name).subnets6
      : [];
    const bad = lanConflicts(cfg.clients, subnets, subnets6);
    if (bad.length) throw new Error(`Cannot route the clients' LANs: ${bad.join("; ")}`);
  }
  for (const c of cfg.clients) {
    if (!c.lan && !c.lan6) continue;
    log.info("LAN {lan} behind {name}: its own sources, routed to it", {
      lan: formatLans(c.lan, c.lan6),
      name: c.name,
    });
  }
  return { routes, routes6 };
}

/**
 * The client's side of `lan:`: IPv4 forwarding on (IPv6 too for an IPv6 LAN), the old values
 * journaled first. Returns what puts them back (for the cleanup list). A LAN that is none of the
 * host's connected subnets is only warned about: it may be brought up later.
 */
export async function carryLan(
  cfg: ClientConfig,
  deps: { runner: CommandRunner; journal?: Journal },
  connected: { subnets: readonly Cidr[]; subnets6?: readonly Cidr6[] },
  log: Logger,
): Promise<() => Promise<void>> {
  const lan = cfg.lan ?? [], lan6 = cfg.lan6 ?? [];
  if (Deno.build.os !== "linux") {
    // Windows (Internet Connection Sharing, or IPEnableRouter) and macOS
    // (net.inet.ip.forwarding) are set up by hand: docs/lan.md.
    log.warning("lan {lan}: turn forwarding on yourself on {os} (docs/lan.md)", {
      lan: formatLans(lan, lan6),
      os: Deno.build.os,
    });
    return () => Promise.resolve();
  }
  for (const l of lan) {
    if (!connected.subnets.some((s) => overlap4(s, l))) warnNotConnected(log, formatLans([l]));
  }
  for (const l of lan6) {
    if (!(connected.subnets6 ?? []).some((s) => overlap6(s, l))) {
      warnNotConnected(log, formatLans([], [l]));
    }
  }
  const fwd = new Forwarding(deps.runner, deps.journal, "forward", `forwarding of ${cfg.tun.name}`);
  const before: string[] = [];
  try {
    if (lan.length) before.push(`${IP_FORWARD} was ${await fwd.enable(IP_FORWARD)}`);
    if (lan6.length) before.push(`${IP6_FORWARD} was ${await fwd.enable(IP6_FORWARD)}`);
  } catch (err) {
    await fwd.restore().catch(() => {});
    throw err;
  }
  log.info("Carrying LAN {lan}: forwarding on ({before}); its devices use this host as gateway", {
    lan: formatLans(lan, lan6),
    before: before.join(", "),
  });
  return () => fwd.restore();
}

function warnNotConnected(log: Logger, lan: string): void {
  log.warning(
    "lan {lan} is not a subnet connected to this host (no interface has an address in it): " +
      "its devices cannot use it as gateway until one has",
    { lan },
  );
}
