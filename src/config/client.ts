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
  type At,
  bool,
  cidr46,
  duration,
  endpoint,
  formatCidr46,
  ifName,
  key,
  KEY_EXPECTED,
  list,
  openDocument,
  opt,
  parser,
  type ReadFile,
  readMap,
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
import { DEFAULT_TUN_NAME } from "./server.ts";
import type { Cidr6 } from "../lib/ip6.ts";
import { multipathField, type MultipathMode, pathsField, type PathSpec } from "./paths.ts";
import {
  loneNodeName,
  type NodeSpec,
  type NodeSwitch,
  nodeSwitchField,
  serversField,
} from "./nodes.ts";
import { checkClientLans, lanCidrs, lanField } from "./lan.ts";

/** A validated `xvpn connect` config. */
export interface ClientConfig {
  /** The config file, as named to the loader. */
  file: string;
  /** The first node's UDP endpoint (host may be a hostname, resolved when connecting). */
  server: Endpoint;
  /** The key the first node must prove it holds. */
  serverPublicKey: Uint8Array;
  /** Every node (`servers`, or the one `server` + `server_public_key`), config order. */
  nodes: NodeSpec[];
  /** When to move to another node (`node_switch`, default `dead`). */
  nodeSwitch: NodeSwitch;
  /** Game profiles to use (`profiles`, names; `--profile` adds to them). */
  profiles: string[];
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
  /** The LAN this client carries (`lan`, lan.ts): IPv4 forwarding on while the tunnel is up. */
  lan?: Cidr[];
  /** The IPv6 ones of `lan` (IPv6 forwarding too). */
  lan6?: Cidr6[];
}

const profileName = text(
  "a profile name such as example",
  (s) => /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(s) ? s : undefined,
);

/** Exactly one of `server` + `server_public_key` and `servers`; no node with our own key. */
function checkNodes(
  root: At,
  at: Record<string, At | undefined>,
  keyAt: Record<string, At | undefined>,
  v: { server?: unknown; server_public_key?: unknown; servers?: NodeSpec[] },
  privateKey: Uint8Array | undefined,
): void {
  const { ctx } = root;
  const report = (a: At | undefined, msg: string) => a && ctx.report(a.offset, a.path, msg);
  if (at.servers) {
    for (const k of ["server", "server_public_key"] as const) {
      report(
        keyAt[k],
        "not with servers: list this node in servers instead (name, endpoint, public_key)",
      );
    }
    const own = privateKey && encodeKey(publicKeyOf(privateKey));
    v.servers?.forEach((n, i) => {
      if (own && encodeKey(n.publicKey) === own) {
        report(
          at.servers,
          `node ${i + 1} ("${n.name}") has the client's own public key, not its node's`,
        );
      }
    });
    return;
  }
  if (!at.server && !at.server_public_key) {
    ctx.report(
      root.offset,
      root.path,
      "expected server and server_public_key (one node), or servers (a list of nodes)",
    );
  } else if (!at.server) {
    ctx.report(root.offset, "server", "missing required key; expected the node's host:port");
  } else if (!at.server_public_key) {
    ctx.report(root.offset, "server_public_key", `missing required key; expected ${KEY_EXPECTED}`);
  }
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
  server: opt(endpoint(true)),
  server_public_key: opt(key),
  servers: serversField,
  node_switch: nodeSwitchField,
  profiles: opt(list("a list of profile names such as [example]", profileName, (n) => n)),
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
  lan: opt(lanField),
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
  checkNodes(root, m.at, m.keyAt, v, privateKey);
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
  if (v.lan) checkClientLans(v.lan, v.routes ?? [], m.at.routes);
  ctx.finish();
  const routes = splitCidrs(v.routes ?? []);
  const nodes: NodeSpec[] = v.servers ?? [{
    name: loneNodeName(v.server!),
    server: v.server!,
    publicKey: v.server_public_key!,
  }];
  const out: ClientConfig = {
    file,
    server: nodes[0]!.server,
    serverPublicKey: nodes[0]!.publicKey,
    nodes,
    nodeSwitch: v.node_switch ?? "dead",
    profiles: v.profiles ?? [],
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
    ...lanCidrs(v.lan),
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
