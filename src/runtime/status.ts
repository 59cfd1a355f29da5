/**
 * The local API of a running `connect` or `serve` (Tailscale's local API and `wg show` are the
 * models): two sockets per TUN under /run/xvpn, named as the crash journal is (per TUN and, in
 * another network namespace, per namespace):
 *
 * - `<tun>.status.sock` (0660, group `xvpn` when the host has one): each request line (any text)
 *   gets one JSON document, {@link StatusDoc}, and the connection is closed. Read-only: figures,
 *   addresses and the clients' public keys, never a private one.
 * - `<tun>.control.sock` (0600, root): one JSON command line (`{"cmd": "reconnect"}`,
 *   `{"cmd": "node", "name": "..."}`), one JSON answer line (`{"ok": true, "message": ...}`).
 *
 * The document's keys are snake_case and versioned by `format`: a field is only ever added, never
 * renamed or given another meaning, without a new format number (the README documents them).
 *
 * @module
 */
import { STATE_DIR, statePath } from "../io/state/dir.ts";
import { groupId, type LocalServer, serveLocal, STATUS_GROUP } from "../io/unixsock.ts";
import type { EngineStatus } from "./stats.ts";

/** The status document's format; bumped only for an incompatible change. */
export const STATUS_FORMAT = 1;

/** What the runtime knows beside the core's figures. */
export interface StatusInfo {
  role: "client" | "server";
  tun: string;
  /** Wall-clock ms when this run started. */
  startedWallMs: number;
  /** The data path's description (as logged at start). */
  dataPath: string;
  /** Client: the node in use (`servers:` name, or the one `server`), and where it is. */
  node?: { name: string; region?: string; endpoint: string };
  /** Client: node moves made so far (choice by RTT, or a dead node). */
  moves?: number;
  /** Client: the profiles in force and the /32 (/128) routes their domains made. */
  profiles?: string[];
  learnedRoutes?: number;
}

/** A status document (see the module doc; the fields are documented in the README). */
export type StatusDoc = Record<string, unknown>;

/** `handshakeAgeMs` -> `handshake_age_ms`, `p50Ms` -> `p50_ms`. */
export function snakeKey(k: string): string {
  return k.replace(/([a-z0-9])([A-Z])/g, "$1_$2").toLowerCase();
}

/** A plain value with every object key in snake_case (arrays and nested objects too). */
export function snakeCase(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(snakeCase);
  if (v && typeof v === "object" && !(v instanceof Uint8Array)) {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) o[snakeKey(k)] = snakeCase(x);
    return o;
  }
  return v;
}

/** The document for one status request. */
export function statusDoc(info: StatusInfo, st: EngineStatus, wallMs = Date.now()): StatusDoc {
  return snakeCase({
    format: STATUS_FORMAT,
    role: info.role,
    tun: info.tun,
    pid: Deno.pid,
    startedAt: new Date(info.startedWallMs).toISOString(),
    uptimeS: Math.round((wallMs - info.startedWallMs) / 1000),
    dataPath: info.dataPath,
    ...(info.node ? { node: info.node } : {}),
    ...(info.moves !== undefined ? { moves: info.moves } : {}),
    ...(info.profiles ? { profiles: info.profiles, learnedRoutes: info.learnedRoutes ?? 0 } : {}),
    ...st.core,
    ...(st.scheduler ? { scheduler: st.scheduler } : {}),
  }) as StatusDoc;
}

/** A control command, as sent on the control socket. */
export type ControlCommand = { cmd: "reconnect" } | { cmd: "node"; name: string };

/** Parses one control line; throws with a message for anything else. */
export function parseControl(line: string): ControlCommand {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new Error(`not JSON: ${JSON.stringify(line.slice(0, 80))}`);
  }
  const o = v as Record<string, unknown>;
  if (o?.cmd === "reconnect") return { cmd: "reconnect" };
  if (o?.cmd === "node" && typeof o.name === "string" && o.name) {
    return { cmd: "node", name: o.name };
  }
  throw new Error(
    `unknown command ${JSON.stringify(line.slice(0, 80))}: expected reconnect or node`,
  );
}

/** The two socket paths of TUN `tun` in this network namespace. */
export async function socketPaths(tun: string): Promise<{ status: string; control: string }> {
  return {
    status: await statePath(STATE_DIR, tun, "status.sock"),
    control: await statePath(STATE_DIR, tun, "control.sock"),
  };
}

/** Serves both sockets of `tun`; the returned function closes them and removes the files. */
export async function serveStatus(
  tun: string,
  status: () => Promise<StatusDoc>,
  control: (c: ControlCommand) => Promise<string>,
): Promise<() => void> {
  const paths = await socketPaths(tun);
  const gid = groupId(STATUS_GROUP);
  // The state directory is root's (0700); with an `xvpn` group its members may enter it to reach
  // the status socket (the files in it are 0600 each). What it was is put back when the last
  // status socket in it goes (other runs may share it).
  let group = gid;
  let restoreDir = () => {};
  if (gid !== undefined) {
    try {
      const before = Deno.statSync(STATE_DIR);
      if (before.gid !== gid || (before.mode! & 0o7777) !== 0o750) {
        Deno.chownSync(STATE_DIR, null, gid);
        Deno.chmodSync(STATE_DIR, 0o750);
        restoreDir = () => {
          const others = [...Deno.readDirSync(STATE_DIR)].some((e) =>
            e.name.endsWith(".status.sock")
          );
          if (others) return;
          Deno.chownSync(STATE_DIR, null, before.gid!);
          Deno.chmodSync(STATE_DIR, before.mode! & 0o7777);
        };
      }
    } catch {
      group = undefined; // no right to give the group to it: root only, as without the group
    }
  }
  const servers: LocalServer[] = [];
  servers.push(
    serveLocal(
      paths.status,
      { mode: group === undefined ? 0o600 : 0o660, gid: group },
      async () => {
        return JSON.stringify(await status());
      },
    ),
  );
  try {
    servers.push(serveLocal(paths.control, { mode: 0o600 }, async (line) => {
      const message = await control(parseControl(line));
      return JSON.stringify({ ok: true, message });
    }));
  } catch (err) {
    servers[0]!.close();
    throw err;
  }
  return () => {
    servers.forEach((s) => s.close());
    try {
      restoreDir();
    } catch { /* the directory went, or another run took it over */ }
  };
}

/** How long one status document answers every request (a reader polling in a loop, or many
 * readers, must not make a server build its session list on the data thread each time). */
export const STATUS_CACHE_MS = 250;

/** `build`, with its document reused for {@link STATUS_CACHE_MS}. */
export function cachedStatus(build: () => Promise<StatusDoc>): () => Promise<StatusDoc> {
  let at = -Infinity;
  let doc: Promise<StatusDoc> | undefined;
  return () => {
    const now = performance.now();
    if (!doc || now - at >= STATUS_CACHE_MS) {
      at = now;
      doc = build();
      doc.catch(() => (at = -Infinity)); // a failure is not kept
    }
    return doc;
  };
}
