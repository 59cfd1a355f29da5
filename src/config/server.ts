/**
 * The `xvpn serve` config file: schema, defaults, and the checks that span several settings
 * (unique clients, static addresses inside the pool, timeouts that fit the keepalive).
 *
 * @module
 */
import type { PriorityRule } from "../core/sched/classify.ts";
import { DEFAULT_GAME_DSCP, gameDscp, priorityField } from "./qos.ts";
import { type Cidr, cidrContains, formatCidr, formatIPv4, networkOf } from "../lib/ip.ts";
import type { Cidr6 } from "../lib/ip6.ts";
import { encodeKey, publicKeyOf } from "../core/keys.ts";
import { formatDuration } from "./duration.ts";
import { checkServerLans, lanCidrs, lanField, type LanItem } from "./lan.ts";
import {
  type At,
  bool,
  cidr,
  cidr46,
  duration,
  endpoint,
  formatCidr46,
  formatIp46,
  ifName,
  int,
  ip46,
  ipv4,
  items,
  key,
  list,
  openDocument,
  opt,
  parser,
  pool6,
  type ReadFile,
  readMap,
  req,
  splitCidrs,
  struct,
  text,
} from "./schema.ts";
import {
  type DataPath,
  dataPathField,
  type Endpoint,
  type LogConfig,
  logConfig,
  logSection,
  privateKeyFields,
  privateKeyOf,
  privateKeySource,
} from "./common.ts";

/** One client the server accepts. */
export interface ServerClient {
  /** Unique name, used in logs. */
  name: string;
  /** The client's X25519 public key (unique). */
  publicKey: Uint8Array;
  /** Static tunnel address (u32) inside the pool; absent means one is leased from the pool. */
  address?: number;
  /** LANs behind the client (`lan`, lan.ts): its sources, and destinations routed to it. */
  lan?: Cidr[];
  /** The IPv6 ones of `lan`. */
  lan6?: Cidr6[];
}

/** A validated `xvpn serve` config. */
export interface ServerConfig {
  /** The config file, as named to the loader. */
  file: string;
  /** UDP address to listen on. */
  listen: Endpoint;
  /** The server's X25519 private key. */
  privateKey: Uint8Array;
  /** The file the private key came from (a key file, or this config): see secrets.ts. */
  keySource: string;
  /**
   * TUN device settings. `mtu` absent means automatic: the runtime takes the underlay device's
   * MTU minus xvpn's 60 bytes of overhead (see `src/core/mtu.ts`).
   */
  tun: { name: string; mtu?: number };
  /** Tunnel address pool (network address, prefix <= 30); the server takes its first host. */
  pool: Cidr;
  /** Routes pushed to clients (`0.0.0.0/0` for a full tunnel). */
  routes: Cidr[];
  /** DNS servers pushed to clients, as u32. */
  dns: number[];
  /** IPv6 routes to push (from the same `routes` list). */
  routes6: Cidr6[];
  /** IPv6 DNS servers to push (from the same `dns` list). */
  dns6: Uint8Array[];
  /**
   * The IPv6 pool beside the IPv4 one (`pool6`): the server takes `::1`, each client the host
   * number of its IPv4 address. Absent: the tunnel carries IPv4 only (and a full-tunnel client
   * blocks IPv6 instead of leaking it).
   */
  pool6?: Cidr6;
  /** Keepalive interval in milliseconds. */
  keepaliveMs: number;
  /** Silence after which a client session is dropped, in milliseconds (> 2x keepalive). */
  sessionTimeoutMs: number;
  /** Whether to masquerade client traffic leaving the server. */
  nat: boolean;
  /** Egress interface for masquerading; absent means all interfaces. */
  natInterface?: string;
  /**
   * With `nat`: let new connections from outside reach the clients (`inbound`, default false:
   * only replies to what the clients sent, and clients among themselves).
   */
  inbound: boolean;
  /** Accepted clients (at least one). */
  clients: ServerClient[];
  /** Logging. */
  log: LogConfig;
  /** Which data path moves packets (`data_path`, default auto). */
  dataPath: DataPath;
  /** Clamp the MSS of TCP SYNs crossing the tunnel (`mss_clamp`, default true). */
  mssClamp: boolean;
  /** Explicit priority classes for traffic down to every client (`priority`); each client may
   * add its own. */
  priority: PriorityRule[];
  /** Outer DSCP of interactive packets (`game_dscp`, default AF41; 0 = off). */
  gameDscp: number;
}

/** Default TUN device name of both server and client. */
export const DEFAULT_TUN_NAME = "xvpn0";
/**
 * Tunnel MTU when `tun.mtu` is not set and the underlay device cannot be found either: 1500 minus
 * outer IPv4/IPv6 + UDP + xvpn overhead, with room to spare.
 */
export const DEFAULT_MTU = 1420;
/** Default keepalive interval. */
export const DEFAULT_KEEPALIVE_MS = 10_000;
/** Default session timeout. */
export const DEFAULT_SESSION_TIMEOUT_MS = 60_000;

/** The server's own tunnel address: the first usable host of the pool. */
export function serverAddress(pool: Cidr): number {
  return (networkOf(pool) + 1) >>> 0;
}

const clientName = text(
  "a name of 1-64 letters, digits or _.@+-",
  (s) => /^[A-Za-z0-9_.@+-]{1,64}$/.test(s) ? s : undefined,
);

const CLIENT = {
  name: req(clientName),
  public_key: req(key),
  address: opt(ipv4),
  lan: opt(lanField),
};

const CLIENTS_EXPECTED = "a list of clients, each with name and public_key";

const SERVER = {
  listen: req(endpoint(false)),
  ...privateKeyFields,
  tun: opt(struct(
    { name: opt(ifName), mtu: opt(int(576, 9000)) },
    "a mapping with name and mtu",
  )),
  // /31 and /32 leave no address for any client once the server has taken the first host.
  pool: req(cidr(30, " so the pool has room for clients")),
  pool6: opt(pool6),
  routes: opt(list("a list of CIDRs such as [0.0.0.0/0, ::/0]", cidr46, formatCidr46)),
  dns: opt(list("a list of addresses such as [1.1.1.1, 2606:4700::1111]", ip46, formatIp46)),
  keepalive: opt(duration),
  session_timeout: opt(duration),
  nat: opt(bool),
  inbound: opt(bool),
  nat_interface: opt(ifName),
  clients: req(parser(CLIENTS_EXPECTED, (at) => items(at, CLIENTS_EXPECTED))),
  log: opt(logSection),
  data_path: dataPathField,
  mss_clamp: opt(bool),
  priority: priorityField,
  game_dscp: opt(gameDscp),
};

/**
 * Parses and validates the text of a server config. Every mistake is collected and thrown as one
 * {@link ConfigError}; nothing outside `readFile` (used for `private_key_file`) is touched.
 *
 * @param text YAML source.
 * @param file Name used in messages; relative paths in the config resolve against its directory.
 * @param readFile Reads referenced files; defaults to `Deno.readTextFileSync`.
 */
export function parseServerConfig(
  text: string,
  file: string,
  readFile: ReadFile = Deno.readTextFileSync,
): ServerConfig {
  const root = openDocument(text, file, readFile);
  const { ctx } = root;
  const m = readMap(root, SERVER, "a mapping of server settings");
  if (!m) throw ctx.error();
  const v = m.values;
  const privateKey = privateKeyOf(m, root);

  const keepaliveMs = v.keepalive ?? DEFAULT_KEEPALIVE_MS;
  const sessionTimeoutMs = v.session_timeout ?? DEFAULT_SESSION_TIMEOUT_MS;
  // A session must survive at least two lost keepalives, or one dropped packet ends it.
  // Only compare values that were given and valid (or defaulted), to avoid a knock-on error.
  const given = (k: "keepalive" | "session_timeout") => m.at[k] !== undefined;
  const broken = (given("keepalive") && v.keepalive === undefined) ||
    (given("session_timeout") && v.session_timeout === undefined);
  if ((given("keepalive") || given("session_timeout")) && !broken) {
    if (sessionTimeoutMs <= 2 * keepaliveMs) {
      const where = m.at.session_timeout ?? m.at.keepalive!;
      ctx.report(
        where.offset,
        m.at.session_timeout ? "session_timeout" : "keepalive",
        `session_timeout (${formatDuration(sessionTimeoutMs)}) must be more than twice ` +
          `keepalive (${formatDuration(keepaliveMs)})`,
      );
    }
  }

  if (v.inbound !== undefined && v.nat !== true) {
    ctx.report(
      m.keyAt.inbound!.offset,
      "inbound",
      "has no effect unless nat is true (without nat, xvpn does not forward); set nat: true or remove it",
    );
  }
  if (v.nat_interface !== undefined && v.nat !== true) {
    ctx.report(
      m.keyAt.nat_interface!.offset,
      "nat_interface",
      "has no effect unless nat is true; set nat: true or remove it",
    );
  }

  const lans: { name: string; lan: LanItem[] }[] = [];
  const clients = checkClients(m.at.clients, v.clients, v.pool, privateKey, lans);
  checkServerLans(lans, { pool: v.pool, pool6: v.pool6, routes: v.routes, routesAt: m.at.routes });
  ctx.finish();
  const routes = splitCidrs(v.routes ?? []);
  const dns = v.dns ?? [];
  const out: ServerConfig = {
    file,
    listen: v.listen!,
    privateKey: privateKey!,
    keySource: privateKeySource(m, root),
    tun: { name: v.tun?.name ?? DEFAULT_TUN_NAME },
    pool: v.pool!,
    routes: routes.v4,
    routes6: routes.v6,
    dns: dns.flatMap((a) => a.v6 ? [] : [a.ip]),
    dns6: dns.flatMap((a) => a.v6 ? [a.ip] : []),
    keepaliveMs,
    sessionTimeoutMs,
    nat: v.nat ?? false,
    inbound: v.inbound ?? false,
    clients,
    log: logConfig(v.log),
    dataPath: v.data_path ?? "auto",
    mssClamp: v.mss_clamp ?? true,
    priority: v.priority ?? [],
    gameDscp: v.game_dscp ?? DEFAULT_GAME_DSCP,
  };
  if (v.tun?.mtu !== undefined) out.tun.mtu = v.tun.mtu;
  if (v.nat_interface !== undefined) out.natInterface = v.nat_interface;
  if (v.pool6 !== undefined) out.pool6 = v.pool6;
  return out;
}

/** Parses the client entries and checks them against each other, the pool and the server key. */
function checkClients(
  where: At | undefined,
  list: At[] | undefined,
  pool: Cidr | undefined,
  privateKey: Uint8Array | undefined,
  lans: { name: string; lan: LanItem[] }[],
): ServerClient[] {
  const out: ServerClient[] = [];
  if (!where || !list) return out;
  const { ctx } = where;
  if (!list.length) {
    ctx.report(where.offset, where.path, `expected at least one client, got an empty list`);
    return out;
  }
  const ownKey = privateKey && encodeKey(publicKeyOf(privateKey));
  const names = new Map<string, At>();
  const keys = new Map<string, { at: At; name: string }>();
  const addrs = new Map<number, { at: At; name: string }>();
  for (const item of list) {
    const m = readMap(item, CLIENT, "a mapping with name, public_key, address and lan");
    if (!m) continue;
    const { name, public_key: pub, address, lan } = m.values;
    const label = name ?? item.path;
    if (lan?.length) lans.push({ name: label, lan });
    if (name !== undefined) {
      const prev = names.get(name);
      if (prev) {
        const line = ctx.lineOf(prev.offset);
        ctx.report(
          m.at.name!.offset,
          m.at.name!.path,
          `duplicate client name "${name}" (also at line ${line})`,
        );
      } else names.set(name, m.at.name!);
    }
    if (pub !== undefined) {
      const k = encodeKey(pub);
      const prev = keys.get(k);
      const at = m.at.public_key!;
      if (k === ownKey) {
        ctx.report(at.offset, at.path, "this is the server's own public key, not the client's");
      } else if (prev) {
        const line = ctx.lineOf(prev.at.offset);
        ctx.report(at.offset, at.path, `same public key as client "${prev.name}" (line ${line})`);
      } else keys.set(k, { at, name: label });
    }
    if (address !== undefined && pool) {
      const at = m.at.address!;
      const problem = addressProblem(address, pool);
      const prev = addrs.get(address);
      if (problem) ctx.report(at.offset, at.path, problem);
      else if (prev) {
        const line = ctx.lineOf(prev.at.offset);
        ctx.report(
          at.offset,
          at.path,
          `${formatIPv4(address)} is already assigned to client "${prev.name}" (line ${line})`,
        );
      } else addrs.set(address, { at, name: label });
    }
    if (name !== undefined && pub !== undefined) {
      const c: ServerClient = { name, publicKey: pub, ...lanCidrs(lan) };
      if (address !== undefined) c.address = address;
      out.push(c);
    }
  }
  if (pool) {
    // Every client may be online at once, so each needs an address: all hosts minus the server's.
    const room = 2 ** (32 - pool.prefix) - 3;
    if (list.length > room) {
      ctx.report(
        where.offset,
        where.path,
        `${list.length} clients do not fit in pool ${formatCidr(pool)}, which has room for ${room}`,
      );
    }
  }
  return out;
}

/** Why a static client address cannot be used in `pool`, or undefined if it can. */
function addressProblem(address: number, pool: Cidr): string | undefined {
  const ip = formatIPv4(address);
  const p = formatCidr(pool);
  if (!cidrContains(pool, address)) return `${ip} is outside the pool ${p}`;
  if (address === networkOf(pool)) return `${ip} is the network address of the pool ${p}`;
  if (address === serverAddress(pool)) return `${ip} is the server's own address in the pool ${p}`;
  const broadcast = (networkOf(pool) + 2 ** (32 - pool.prefix) - 1) >>> 0;
  if (address === broadcast) return `${ip} is the broadcast address of the pool ${p}`;
  return undefined;
}
