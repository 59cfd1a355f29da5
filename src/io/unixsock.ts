/**
 * Local sockets (`AF_UNIX` stream) for `xvpn status` and `xvpn control`: one request line in,
 * one answer line out, then the connection closes. Deno has no peer-credential check
 * (SO_PEERCRED), so the socket file's mode and group are the access boundary: the status socket
 * is 0660 with group `xvpn` (its members read figures, nothing else), the control socket 0600
 * (root only).
 *
 * @module
 */

/** The group whose members may read status, if the host has one. */
export const STATUS_GROUP = "xvpn";

/** Longest request line accepted (a control command is a few dozen bytes). */
const MAX_REQUEST_BYTES = 4096;

/** How long a connection may take to send its request line. */
const REQUEST_TIMEOUT_MS = 2000;

/** Connections answered at once; more are closed unanswered (a reader looping on the socket
 * must not take the process's file descriptors). */
const MAX_CONNECTIONS = 16;

/** A listening local socket; {@link close} stops it and removes the file. */
export interface LocalServer {
  readonly path: string;
  close(): void;
}

/** The gid of group `name` from /etc/group, or undefined when there is no such group. */
export function groupId(name: string, groupFile = "/etc/group"): number | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(groupFile);
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const [n, , gid] = line.split(":");
    if (n === name && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  return undefined;
}

/**
 * Listens on `path` (a stale file from a dead run is replaced: the caller holds the TUN's lock,
 * so no live process owns it), sets its mode and group, and answers each connection's first
 * line with `handle(line)`. A handler that throws answers `{"error": message}`; nothing a
 * client sends can stop the server.
 */
export function serveLocal(
  path: string,
  opts: { mode: number; gid?: number },
  handle: (request: string) => Promise<string>,
): LocalServer {
  try {
    Deno.removeSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const listener = Deno.listen({ transport: "unix", path });
  Deno.chmodSync(path, opts.mode);
  if (opts.gid !== undefined) Deno.chownSync(path, null, opts.gid);
  let open = true;
  let busy = 0;
  (async () => {
    for (;;) {
      let conn: Deno.UnixConn;
      try {
        conn = await listener.accept();
      } catch {
        if (!open) return;
        // Out of descriptors, or the like: wait instead of spinning.
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      if (busy >= MAX_CONNECTIONS) {
        conn.close();
        continue;
      }
      busy++;
      void answer(conn, handle).finally(() => busy--);
    }
  })();
  return {
    path,
    close() {
      if (!open) return;
      open = false;
      listener.close();
      try {
        Deno.removeSync(path);
      } catch { /* already gone */ }
    },
  };
}

async function answer(conn: Deno.UnixConn, handle: (r: string) => Promise<string>): Promise<void> {
  try {
    const line = await readLine(conn);
    if (line === undefined) return; // connected and went: a probe of whether anyone listens
    let out: string;
    try {
      out = await handle(line);
    } catch (err) {
      out = JSON.stringify({ error: (err as Error).message });
    }
    await writeAll(conn, new TextEncoder().encode(out + "\n"));
  } catch {
    // A client that went away or sent garbage: nothing to answer.
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

/** Reads up to the first newline (or the end), within the size and time limits; undefined when
 * the peer closed without sending anything. */
async function readLine(conn: Deno.Conn): Promise<string | undefined> {
  const buf = new Uint8Array(MAX_REQUEST_BYTES);
  let n = 0;
  const timer = setTimeout(() => conn.close(), REQUEST_TIMEOUT_MS);
  try {
    while (n < buf.length) {
      const r = await conn.read(buf.subarray(n));
      if (r === null) break;
      n += r;
      if (buf.subarray(0, n).includes(10)) break;
    }
  } finally {
    clearTimeout(timer);
  }
  if (n === 0) return undefined;
  const text = new TextDecoder().decode(buf.subarray(0, n));
  const nl = text.indexOf("\n");
  return (nl < 0 ? text : text.slice(0, nl)).trim();
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) off += await conn.write(data.subarray(off));
}

/** Sends `request` to the local socket at `path` and returns the answer line. */
export async function askLocal(path: string, request: string, timeoutMs = 5000): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    conn.close();
  }, timeoutMs);
  try {
    await writeAll(conn, new TextEncoder().encode(request + "\n"));
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      const r = await conn.read(buf);
      if (r === null) break;
      chunks.push(buf.slice(0, r));
    }
    const all = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
    let off = 0;
    for (const c of chunks) {
      all.set(c, off);
      off += c.length;
    }
    const text = new TextDecoder().decode(all).trim();
    if (!text) throw new Error(`no answer from ${path}`);
    return text;
  } catch (err) {
    if (timedOut) throw new Error(`no answer from ${path} within ${timeoutMs} ms`);
    throw err;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}
