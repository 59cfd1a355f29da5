/**
 * The client's `servers:` list: several accelerator nodes, of which `connect` uses one at a
 * time and `xvpn ping` measures all.
 *
 * ```yaml
 * servers:
 *   - name: fra            # how logs, status and --node call it
 *     region: Frankfurt    # optional, shown beside the name
 *     endpoint: fra.example.net:51820
 *     public_key: ...
 *   - name: ams
 *     endpoint: 198.51.100.7:51820
 *     public_key: ...
 * node_switch: dead        # move only when the node in use dies (default), or `better`
 * ```
 *
 * A config has either `server` + `server_public_key` (one node) or `servers`, never both.
 *
 * @module
 */
import { encodeKey } from "../core/keys.ts";
import { type At, endpoint, items, key, oneOf, opt, parser, readMap, req, text } from "./schema.ts";

/** One node a client may use. */
export interface NodeSpec {
  /** Unique within the list (for a lone `server`, its host:port). */
  name: string;
  region?: string;
  /** Host (name or address) and UDP port. */
  server: { host: string; port: number };
  publicKey: Uint8Array;
}

/** When `connect` moves to another node. */
export const NODE_SWITCH_MODES = ["dead", "better"] as const;
/** One of {@link NODE_SWITCH_MODES}: `dead` (default) moves only off a node that stopped
 * answering; `better` also moves to one clearly faster for a sustained time (a move changes the
 * address the game server sees, which can drop a match, so this is opt-in). */
export type NodeSwitch = typeof NODE_SWITCH_MODES[number];

/** Most nodes in one list (`xvpn ping` probes them all at once). */
export const MAX_NODES = 32;

const NODE_EXPECTED = "a mapping with name, endpoint (host:port) and public_key, and region";
const nodeName = text(
  "a name of letters, digits, '.', '_' or '-'",
  (s) => /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/.test(s) ? s : undefined,
);
const region = text("a short text such as Frankfurt", (s) => s.length <= 64 ? s : undefined);

const NODE = {
  name: req(nodeName),
  region: opt(region),
  endpoint: req(endpoint(true)),
  public_key: req(key),
};

/** The `servers` list: 1..{@link MAX_NODES} nodes, names and keys unique. */
export const serversField = opt(
  parser<NodeSpec[]>(`a list of nodes, each ${NODE_EXPECTED}`, (at: At) => {
    const list = items(at, `a list of nodes, each ${NODE_EXPECTED}`);
    if (!list) return undefined;
    const { ctx } = at;
    const before = ctx.issues.length;
    if (list.length < 1 || list.length > MAX_NODES) {
      ctx.report(at.offset, at.path, `expected 1-${MAX_NODES} nodes, got ${list.length}`);
    }
    const out: NodeSpec[] = [];
    const names = new Set<string>();
    const keys = new Map<string, string>();
    for (const item of list) {
      const m = readMap(item, NODE, NODE_EXPECTED);
      if (!m) continue;
      const v = m.values;
      if (v.name === undefined || !v.endpoint || !v.public_key) continue;
      if (names.has(v.name)) {
        ctx.report(m.at.name!.offset, m.at.name!.path, `a second node named "${v.name}"`);
      }
      names.add(v.name);
      const k = encodeKey(v.public_key);
      const other = keys.get(k);
      if (other !== undefined) {
        ctx.report(
          m.at.public_key!.offset,
          m.at.public_key!.path,
          `the same key as node "${other}": each node has its own key`,
        );
      }
      keys.set(k, v.name);
      out.push({
        name: v.name,
        ...(v.region !== undefined ? { region: v.region } : {}),
        server: v.endpoint,
        publicKey: v.public_key,
      });
    }
    return ctx.issues.length === before ? out : undefined;
  }),
);

/** The `node_switch` setting. */
export const nodeSwitchField = opt(oneOf(NODE_SWITCH_MODES));

/** The name a lone `server:` goes by: its host and port. */
export function loneNodeName(server: { host: string; port: number }): string {
  return `${server.host.includes(":") ? `[${server.host}]` : server.host}:${server.port}`;
}
