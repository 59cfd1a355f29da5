/**
 * `lan:`, the LANs behind a client (consoles and other devices that use the client as their
 * gateway, carried without NAT). In the server config, inside a client's entry, it authorises
 * those sources for that client and routes those destinations to it; in the client config it
 * names the LAN the client forwards for. One CIDR or a list, IPv4 or IPv6.
 *
 * What a LAN must not be, checked at load with the position of the LAN at fault:
 * - shorter than /8 (IPv6: /16): the server routes each LAN into its TUN, and half the Internet
 *   there would take the server's own traffic with it;
 * - overlapping another client's LAN: a source or destination there could not say whose it is;
 * - overlapping the pool or pool6: those are the tunnel's own addresses;
 * - holding a pushed route (one equal to the LAN or inside it): the pushed route says the
 *   network is behind the server, the LAN that it is behind a client, and the client itself
 *   refuses the pushed route as its own connected subnet. A pushed route around the LAN
 *   (`0.0.0.0/0`, a /8 around a /24) is fine: the LAN's route is more specific, on both ends
 *   (the server's own connected subnets are checked when it starts: runtime/lan.ts);
 * - IPv6 without pool6: without it the tunnel carries no IPv6.
 *
 * @module
 */
import { type Cidr, cidrContains, formatCidr, networkOf } from "../lib/ip.ts";
import { type Cidr6, cidr6Contains, formatCidr6 } from "../lib/ip6.ts";
import {
  type AnyCidr,
  type At,
  cidr46,
  fail,
  formatCidr46,
  items,
  type Parser,
  parser,
  splitCidrs,
} from "./schema.ts";
import { isScalar, isSeq } from "yaml";

/** The shortest IPv4 LAN prefix accepted. */
export const MIN_LAN_PREFIX = 8;
/** The shortest IPv6 LAN prefix accepted. */
export const MIN_LAN_PREFIX6 = 16;

/** One LAN as written in a config, and where. */
export interface LanItem {
  lan: AnyCidr;
  at: At;
}

const EXPECTED = "a LAN CIDR such as 192.168.50.0/24, or a list of them";

/** One LAN: a CIDR with host bits clear, no shorter than {@link MIN_LAN_PREFIX}. */
function lanItem(at: At): LanItem | undefined {
  const lan = cidr46(at);
  if (!lan) return undefined;
  const min = lan.v6 ? MIN_LAN_PREFIX6 : MIN_LAN_PREFIX;
  if (lan.c.prefix < min) {
    at.ctx.report(
      at.offset,
      at.path,
      `expected a LAN of /${min} or longer (the server routes it into its TUN), got ` +
        `${formatCidr46(lan)}`,
    );
    return undefined;
  }
  return { lan, at };
}

/** The `lan:` setting: one CIDR or a list of them; a repeated LAN is refused. */
export const lanField: Parser<LanItem[]> = parser(EXPECTED, (at) => {
  if (!isSeq(at.node)) {
    if (!isScalar(at.node)) return fail(at, EXPECTED);
    const one = lanItem(at);
    return one && [one];
  }
  const out: LanItem[] = [];
  for (const it of items(at, EXPECTED) ?? []) {
    const v = lanItem(it);
    if (!v) continue;
    const first = out.find((o) => formatCidr46(o.lan) === formatCidr46(v.lan));
    if (first) {
      const line = at.ctx.lineOf(first.at.offset);
      at.ctx.report(it.offset, it.path, `${formatCidr46(v.lan)} is already listed at line ${line}`);
      continue;
    }
    out.push(v);
  }
  return out;
});

/** The LANs of a `lan:` setting by family, only the non-empty ones (for a client's entry). */
export function lanCidrs(list: readonly LanItem[] | undefined): { lan?: Cidr[]; lan6?: Cidr6[] } {
  const { v4, v6 } = splitCidrs((list ?? []).map((i) => i.lan));
  return { ...(v4.length ? { lan: v4 } : {}), ...(v6.length ? { lan6: v6 } : {}) };
}

/** True when two prefixes of one family share an address. */
function overlaps(a: AnyCidr, b: AnyCidr): boolean {
  if (a.v6 !== b.v6) return false;
  if (a.v6 && b.v6) return cidr6Contains(a.c, b.c.addr) || cidr6Contains(b.c, a.c.addr);
  const x = a.c as Cidr, y = b.c as Cidr;
  return cidrContains(x, networkOf(y)) || cidrContains(y, networkOf(x));
}

/** True when `inner` equals or lies inside `outer` (one family). */
function inside(inner: AnyCidr, outer: AnyCidr): boolean {
  return inner.v6 === outer.v6 && inner.c.prefix >= outer.c.prefix && overlaps(inner, outer);
}

/** What the server's LANs are checked against. */
export interface ServerLanContext {
  pool?: Cidr;
  pool6?: Cidr6;
  /** The pushed `routes`, and where the list is. */
  routes?: readonly AnyCidr[];
  routesAt?: At;
}

/**
 * Checks the LANs of every client of a server config (see the module doc), reporting each
 * problem at the LAN at fault (the later one of two overlapping LANs).
 */
export function checkServerLans(
  clients: readonly { name: string; lan: readonly LanItem[] }[],
  c: ServerLanContext,
): void {
  const seen: { client: number; name: string; item: LanItem }[] = [];
  for (const [client, { name, lan }] of clients.entries()) {
    for (const item of lan) {
      const { at } = item;
      const text = formatCidr46(item.lan);
      const say = (m: string) => at.ctx.report(at.offset, at.path, m);
      const pool: AnyCidr | undefined = item.lan.v6
        ? c.pool6 && { v6: true, c: c.pool6 }
        : c.pool && { v6: false, c: c.pool };
      if (item.lan.v6 && !c.pool6) {
        say(`${text}: an IPv6 LAN needs pool6 (without it the tunnel carries no IPv6)`);
      } else if (pool && overlaps(item.lan, pool)) {
        say(
          `${text} overlaps the ${item.lan.v6 ? "pool6" : "pool"} ${formatCidr46(pool)}; ` +
            `expected a LAN outside the tunnel's own addresses`,
        );
      }
      const route = c.routes?.find((r) => r.c.prefix > 0 && inside(r, item.lan));
      if (route) {
        const line = c.routesAt ? ` (line ${at.ctx.lineOf(c.routesAt.offset)})` : "";
        say(
          `${text} holds the pushed route ${formatCidr46(route)}${line}, a network behind the ` +
            `server; expected a LAN apart from the routes (a route around it, such as ` +
            `0.0.0.0/0, is fine)`,
        );
      }
      const other = seen.find((s) => s.client !== client && overlaps(s.item.lan, item.lan));
      if (other) {
        say(
          `${text} overlaps ${formatCidr46(other.item.lan)}, the LAN of client "${other.name}" ` +
            `(line ${at.ctx.lineOf(other.item.at.offset)}); expected each LAN behind one client`,
        );
      }
      seen.push({ client, name, item });
    }
  }
}

/**
 * Checks a client config's LANs against its own `routes` (sent into the tunnel): a route equal
 * to or inside the LAN would take the LAN's own traffic away from it.
 */
export function checkClientLans(
  lan: readonly LanItem[],
  routes: readonly AnyCidr[],
  routesAt?: At,
): void {
  for (const item of lan) {
    const route = routes.find((r) => r.c.prefix > 0 && inside(r, item.lan));
    if (!route) continue;
    const { at } = item;
    const line = routesAt ? ` (line ${at.ctx.lineOf(routesAt.offset)})` : "";
    at.ctx.report(
      at.offset,
      at.path,
      `${formatCidr46(item.lan)} holds ${formatCidr46(route)} of routes${line}, which would ` +
        `send the LAN's own traffic into the tunnel; expected a LAN apart from routes`,
    );
  }
}

/** Text of a LAN list for logs: `192.168.50.0/24, fd50::/64`. */
export function formatLans(lan: readonly Cidr[] = [], lan6: readonly Cidr6[] = []): string {
  return [...lan.map(formatCidr), ...lan6.map(formatCidr6)].join(", ");
}
