/**
 * What the client knows of its own network before the tunnel exists, for the push policy
 * (core/policy.ts): connected subnets, default gateways, and the MTU of the device that reaches
 * the server. Linux reads `ip -j route show` and `ip -j link show`; elsewhere nothing is known
 * (the policy then refuses no route as local, and caps no MTU: documented in the README).
 *
 * @module
 */
import { type Cidr, parseCidr, parseIPv4 } from "../../lib/ip.ts";
import { type Cidr6, parseCidr6 } from "../../lib/ip6.ts";
import type { CommandRunner } from "../command.ts";
import { parseWindowsRoutes4, parseWindowsRoutes6, windowsRoutesArgv } from "./windows_local.ts";

/** The local network (the same shape as the core's `LocalNetwork`, which io/ does not import). */
export interface LocalNetwork {
  /** Connected subnets, the TUN's excluded. */
  subnets: Cidr[];
  /** Next hops of the default routes. */
  gateways: number[];
  /** MTU of the device that reaches the server, if known. */
  underlayMtu?: number;
  /** Connected IPv6 subnets (link-local left out), the TUN's excluded. */
  subnets6?: Cidr6[];
  /** The host has a global IPv6 route (a default, or any prefix beyond link-local): IPv6 could
   * leave outside an IPv4-only full tunnel. */
  hasIPv6?: boolean;
}

/** Parses `ip -j route show` into connected subnets (except on `skipDev`) and gateways. */
export function parseLocalRoutes(
  json: string,
  skipDev?: string,
): Omit<LocalNetwork, "underlayMtu"> {
  const subnets: Cidr[] = [];
  const gateways: number[] = [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return { subnets, gateways };
  }
  if (!Array.isArray(parsed)) return { subnets, gateways };
  for (const r of parsed as Record<string, unknown>[]) {
    if (typeof r !== "object" || r === null || r.dev === skipDev) continue;
    if (r.dst === "default") {
      const gw = typeof r.gateway === "string" ? parseIPv4(r.gateway) : undefined;
      if (gw !== undefined && !gateways.includes(gw)) gateways.push(gw);
      continue;
    }
    if (r.protocol !== "kernel" || r.scope !== "link" || typeof r.dst !== "string") continue;
    const c = parseCidr(r.dst);
    if (c) subnets.push(c);
  }
  return { subnets, gateways };
}

/** The local network as seen now, on the way to `serverIp`; the TUN `ifname` is left out. */
export async function localNetwork(
  runner: CommandRunner,
  serverIp: string,
  ifname: string,
  os: typeof Deno.build.os = Deno.build.os,
): Promise<LocalNetwork> {
  if (os === "windows") {
    // Get-NetRoute, one call per family; a failure reads as nothing known (the policy then
    // refuses less, and IPv6 is not blocked), never as an error that stops the client.
    const list = async (family: "IPv4" | "IPv6") => {
      const r = await runner.run(windowsRoutesArgv(family), { allowFailure: true })
        .catch(() => undefined);
      return r && r.code === 0 ? r.stdout : "[]";
    };
    return {
      ...parseWindowsRoutes4(await list("IPv4"), ifname),
      ...parseWindowsRoutes6(await list("IPv6"), ifname),
    };
  }
  if (os !== "linux") return { subnets: [], gateways: [] };
  const routes = await runner.run(["ip", "-j", "route", "show"], { allowFailure: true });
  const out: LocalNetwork = parseLocalRoutes(routes.code === 0 ? routes.stdout : "[]", ifname);
  const r6 = await runner.run(["ip", "-j", "-6", "route", "show"], { allowFailure: true });
  const six = parseLocalRoutes6(r6.code === 0 ? r6.stdout : "[]", ifname);
  out.subnets6 = six.subnets6;
  out.hasIPv6 = six.hasIPv6;
  try {
    // Only the device is needed (parseLinuxRouteGet refuses an IPv6 next hop, which an IPv6
    // server behind a router has).
    const via = await runner.run(["ip", "-j", "route", "get", serverIp]);
    const dev = (JSON.parse(via.stdout) as { dev?: unknown }[])[0]?.dev;
    if (typeof dev !== "string") return out;
    const link = await runner.run(["ip", "-j", "link", "show", "dev", dev]);
    const mtu = (JSON.parse(link.stdout) as { mtu?: unknown }[])[0]?.mtu;
    if (typeof mtu === "number" && mtu >= 576) out.underlayMtu = mtu;
  } catch {
    // No route to the server yet (it may come up later): no MTU cap from the underlay.
  }
  return out;
}

/** Parses `ip -j -6 route show`: connected subnets (not link-local, not `skipDev`) and whether
 * any route beyond link-local exists. */
export function parseLocalRoutes6(
  json: string,
  skipDev?: string,
): { subnets6: Cidr6[]; hasIPv6: boolean } {
  const subnets6: Cidr6[] = [];
  let hasIPv6 = false;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return { subnets6, hasIPv6 };
  }
  if (!Array.isArray(parsed)) return { subnets6, hasIPv6 };
  for (const r of parsed as Record<string, unknown>[]) {
    if (typeof r !== "object" || r === null || r.dev === skipDev || typeof r.dst !== "string") {
      continue;
    }
    if (r.type === "unreachable" || r.dst.startsWith("fe80:") || r.dst.startsWith("ff")) continue;
    if (r.dst === "default") {
      hasIPv6 = true;
      continue;
    }
    const c = parseCidr6(r.dst);
    if (!c) continue;
    hasIPv6 = true;
    if (r.protocol === "kernel") subnets6.push(c);
  }
  return { subnets6, hasIPv6 };
}
