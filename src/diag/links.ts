/**
 * What `ip -j` says about devices, addresses and routes, for the MTU diagnosis and for the
 * server's automatic TUN MTU. Read-only: every command here only asks (`ip route get` looks a
 * route up without sending anything).
 *
 * @module
 */
import { parseIPv6 } from "../lib/ip6.ts";
import type { CommandRunner } from "../io/command.ts";
import { type Cidr, parseIPv4 } from "../lib/ip.ts";

/** Runs an `ip -j` query; undefined when it fails (a missing device) or prints nothing. */
async function ipJson(runner: CommandRunner, args: string[]): Promise<unknown[] | undefined> {
  const r = await runner.run(["ip", "-j", ...args], { allowFailure: true });
  if (r.code !== 0 || !r.stdout.trim()) return undefined;
  try {
    const v = JSON.parse(r.stdout);
    return Array.isArray(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

interface IpLink {
  ifname?: string;
  mtu?: number;
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

/** The MTU of device `dev`, or undefined when there is no such device. */
export async function linkMtu(runner: CommandRunner, dev: string): Promise<number | undefined> {
  const [link] = (await ipJson(runner, ["link", "show", "dev", dev])) as IpLink[] ?? [];
  return typeof link?.mtu === "number" ? link.mtu : undefined;
}

/** The first IPv4 address of `dev` with its prefix, or undefined (no device, no address). */
export async function linkAddress(runner: CommandRunner, dev: string): Promise<Cidr | undefined> {
  const [link] = (await ipJson(runner, ["-4", "addr", "show", "dev", dev])) as IpLink[] ?? [];
  for (const a of link?.addr_info ?? []) {
    const addr = a.local === undefined ? undefined : parseIPv4(a.local);
    if (addr !== undefined && typeof a.prefixlen === "number") {
      return { addr, prefix: a.prefixlen };
    }
  }
  return undefined;
}

/** The device (and source address) the kernel would use to reach `dst`, an IPv4 literal. */
export async function routeTo(
  runner: CommandRunner,
  dst: string,
): Promise<{ dev: string; src?: string } | undefined> {
  const [r] = (await ipJson(runner, ["-4", "route", "get", dst])) as
    | { dev?: string; prefsrc?: string }[]
    | undefined ?? [];
  if (typeof r?.dev !== "string") return undefined;
  return r.prefsrc === undefined ? { dev: r.dev } : { dev: r.dev, src: r.prefsrc };
}

/** The device of the IPv4 default route, or undefined when there is none. */
export async function defaultRouteDevice(runner: CommandRunner): Promise<string | undefined> {
  const routes = (await ipJson(runner, ["-4", "route", "show", "default"])) as
    | { dev?: string }[]
    | undefined;
  return routes?.find((r) => typeof r.dev === "string")?.dev;
}

/** The device that holds the local address `ip` (IPv4 or IPv6), or undefined. */
export async function deviceOfAddress(
  runner: CommandRunner,
  ip: string,
): Promise<string | undefined> {
  const v6 = parseIPv6(ip);
  const family = v6 ? "-6" : "-4";
  const same = (a: string | undefined) =>
    v6 ? a !== undefined && parseIPv6(a)?.every((b, i) => b === v6[i]) === true : a === ip;
  const links = (await ipJson(runner, [family, "addr", "show"])) as IpLink[] | undefined;
  return links?.find((l) => l.addr_info?.some((a) => same(a.local)))?.ifname;
}

/** The underlay device the server's datagrams leave by, and how it was picked. */
export interface UnderlayDevice {
  /** Device name. */
  dev: string;
  /** Its MTU. */
  mtu: number;
  /** How it was found, for the log: `the device holding 10.0.0.1`, `the default route's`. */
  how: string;
}

/**
 * The device under a server listening on `host`: the one holding that address, or for a
 * wildcard address (`0.0.0.0`, `::`) the default route's. Undefined when neither is found.
 */
export async function listenDevice(
  runner: CommandRunner,
  host: string,
): Promise<UnderlayDevice | undefined> {
  const wildcard = host === "0.0.0.0" || host === "::" || host === "";
  let dev: string | undefined;
  let how: string;
  if (!wildcard) {
    dev = await deviceOfAddress(runner, host);
    how = `the device holding the listen address ${host}`;
  } else {
    dev = await defaultRouteDevice(runner);
    how = "the default route's device";
  }
  if (dev === undefined) return undefined;
  const mtu = await linkMtu(runner, dev);
  return mtu === undefined ? undefined : { dev, mtu, how };
}
