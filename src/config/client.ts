/**
 * The `xvpn connect` config file. The client needs little: where the server is, which key it
 * must present, its own key, and optionally extra routes; everything else is pushed by the server.
 *
 * @module
 */
import type { PriorityRule } from "../core/sched/classify.ts";
import {
  DEFAULT_GAME_DSCP,
  DEFAULT_LINK_OVERHEAD,
  gameDscp,
  priorityField,
  shapingField,
} from "./qos.ts";
import type { Cidr } from "../lib/ip.ts";
import { encodeKey, publicKeyOf } from "../core/keys.ts";
import {
  bool,
  cidr46,
  duration,
  endpoint,
  formatCidr46,
  ifName,
  key,
  list,
  openDocument,
  opt,
  parser,
  type ReadFile,
  readMap,
  req,
  splitCidrs,
  struct,
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
import { DEFAULT_TUN_NAME } from "./server.ts";
import type { Cidr6 } from "../lib/ip6.ts";
import { multipathField, type MultipathMode, pathsField, type PathSpec } from "./paths.ts";

/** A validated `xvpn connect` config. */
export interface ClientConfig {
  /** The config file, as named to the loader. */
  file: string;
  /** The server's UDP endpoint (host may be a hostname, resolved when connecting). */
  server: Endpoint;
  /** The key the server must prove it holds. */
  serverPublicKey: Uint8Array;
  /** The client's X25519 private key. */
  privateKey: Uint8Array;
  /** The file the private key came from (a key file, or this config): see secrets.ts. */
  keySource: string;
  /** TUN device settings (the MTU always comes from the server). */
  tun: { name: string };
  /** Extra local routes into the tunnel, on top of those the server pushes. */
  routes: Cidr[];
  /** The IPv6 ones of the same `routes` list. */
  routes6: Cidr6[];
  /** Keepalive override in milliseconds; absent means use the server's. */
  keepaliveMs?: number;
  /** Logging. */
  log: LogConfig;
  /** Which data path moves packets (`data_path`, default auto). */
  dataPath: DataPath;
  /** Clamp the MSS of TCP SYNs crossing the tunnel (`mss_clamp`, default true). */
  mssClamp: boolean;
  /** Use the DNS servers the server pushes while the tunnel is up (`dns`, default true). */
  dns: boolean;
  /** Add /32 routes into the tunnel for the pushed DNS servers (`dns_route`, default false). */
  dnsRoute: boolean;
  /** Multipath: the local paths to use at once (`paths`); absent means one socket, routed by
   * the kernel, as without multipath. */
  paths?: PathSpec[];
  /** Multipath: how the paths share the traffic (`multipath`, default failover); set exactly
   * when `paths` is. */
  multipath?: MultipathMode;
  /** Shaping to the link's real rates (`shaping`): `up` here, `down` asked of the server. */
  shaping?: { upBps?: number; downBps?: number; overheadBytes: number };
  /** Explicit priority classes (`priority`), both ways (the server gets them for the way down). */
  priority: PriorityRule[];
  /** Outer DSCP of interactive packets going up (`game_dscp`, default AF41; 0 = off). */
  gameDscp: number;
  /** Accept a pushed full tunnel, 0.0.0.0/0 (`full_tunnel`, default true). */
  fullTunnel: boolean;
  /** Accept pushed routes over the client's own connected subnets or to its gateway
   * (`local_routes`, default false). */
  localRoutes: boolean;
  /** When given, pushed routes must lie inside one of these (`accept_routes`). */
  acceptRoutes?: Cidr[];
  /** The IPv6 ones of `accept_routes` (given together with `acceptRoutes`). */
  acceptRoutes6?: Cidr6[];
}

// Both ends must agree on the MTU or large packets vanish silently, so only the server sets it.
const noMtu = parser<never>("no mtu", (at) => {
  at.ctx.report(
    at.offset,
    at.path,
    "not allowed in a client config: the server pushes the MTU to its clients; " +
      "set tun.mtu in the server config instead",
  );
  return undefined;
});

const CLIENT = {
  server: req(endpoint(true)),
  server_public_key: req(key),
  ...privateKeyFields,
  tun: opt(struct({ name: opt(ifName), mtu: opt(noMtu) }, "a mapping with name")),
  routes: opt(list("a list of CIDRs such as [192.168.50.0/24, ::/0]", cidr46, formatCidr46)),
  keepalive: opt(duration),
  log: opt(logSection),
  data_path: dataPathField,
  mss_clamp: opt(bool),
  dns: opt(bool),
  dns_route: opt(bool),
  full_tunnel: opt(bool),
  local_routes: opt(bool),
  accept_routes: opt(list("a list of CIDRs such as [198.51.100.0/24]", cidr46, formatCidr46)),
  paths: pathsField,
  multipath: multipathField,
  shaping: shapingField,
  priority: priorityField,
  game_dscp: opt(gameDscp),
};

/**
 * Parses and validates the text of a client config. Every mistake is collected and thrown as one
 * {@link ConfigError}; nothing outside `readFile` (used for `private_key_file`) is touched.
 *
 * @param text YAML source.
 * @param file Name used in messages; relative paths in the config resolve against its directory.
 * @param readFile Reads referenced files; defaults to `Deno.readTextFileSync`.
 */
export function parseClientConfig(
  text: string,
  file: string,
  readFile: ReadFile = Deno.readTextFileSync,
): ClientConfig {
  const root = openDocument(text, file, readFile);
  const { ctx } = root;
  const m = readMap(root, CLIENT, "a mapping of client settings");
  if (!m) throw ctx.error();
  const v = m.values;
  const privateKey = privateKeyOf(m, root);
  // Pasting the client's own public key where the server's belongs is an easy slip to make.
  if (privateKey && v.server_public_key) {
    if (encodeKey(publicKeyOf(privateKey)) === encodeKey(v.server_public_key)) {
      const at = m.at.server_public_key!;
      ctx.report(at.offset, at.path, "this is the client's own public key, not the server's");
    }
  }
  if (v.multipath !== undefined && m.at.paths === undefined) {
    const at = m.keyAt.multipath!;
    ctx.report(at.offset, at.path, "needs paths: list the interfaces or addresses to use");
  }
  ctx.finish();
  const routes = splitCidrs(v.routes ?? []);
  const out: ClientConfig = {
    file,
    server: v.server!,
    serverPublicKey: v.server_public_key!,
    privateKey: privateKey!,
    keySource: privateKeySource(m, root),
    tun: { name: v.tun?.name ?? DEFAULT_TUN_NAME },
    routes: routes.v4,
    routes6: routes.v6,
    log: logConfig(v.log),
    dataPath: v.data_path ?? "auto",
    mssClamp: v.mss_clamp ?? true,
    dns: v.dns ?? true,
    dnsRoute: v.dns_route ?? false,
    priority: v.priority ?? [],
    gameDscp: v.game_dscp ?? DEFAULT_GAME_DSCP,
    fullTunnel: v.full_tunnel ?? true,
    localRoutes: v.local_routes ?? false,
  };
  if (v.accept_routes !== undefined) {
    const accept = splitCidrs(v.accept_routes);
    out.acceptRoutes = accept.v4;
    out.acceptRoutes6 = accept.v6;
  }
  if (v.shaping) {
    out.shaping = { overheadBytes: v.shaping.overhead ?? DEFAULT_LINK_OVERHEAD };
    if (v.shaping.up !== undefined) out.shaping.upBps = v.shaping.up;
    if (v.shaping.down !== undefined) out.shaping.downBps = v.shaping.down;
  }
  if (v.keepalive !== undefined) out.keepaliveMs = v.keepalive;
  if (v.paths !== undefined) {
    out.paths = v.paths;
    out.multipath = v.multipath ?? "failover";
  }
  return out;
}
