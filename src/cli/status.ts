/**
 * `xvpn status [--tun NAME] [--json] [--watch] [--interval S]` and `xvpn control [--tun NAME]
 * reconnect | node NAME`: clients of a running `connect` or `serve`'s local sockets
 * (runtime/status.ts).
 *
 * @module
 */
import { STATE_DIR, statePath } from "../io/state/dir.ts";
import { askLocal } from "../io/unixsock.ts";
import { socketPaths } from "../runtime/status.ts";
import { formatStatus } from "./status_view.ts";
import { intFlag, parseFlags } from "./flags.ts";
import { EXIT_OK, UsageError } from "./report.ts";

/** The status socket of `tun`, or of the one xvpn running in this network namespace. */
async function statusSocket(tun: string | undefined, which: "status" | "control"): Promise<string> {
  if (tun) return (await socketPaths(tun))[which];
  // File names are `<tun>[.<netns>].<which>.sock`: those of this namespace end the same way.
  const probe = await statePath(STATE_DIR, "\0", `${which}.sock`);
  const suffix = probe.slice(probe.indexOf("\0") + 1);
  const found: string[] = [];
  try {
    for (const e of Deno.readDirSync(STATE_DIR)) {
      if (!e.name.endsWith(suffix)) continue;
      const name = e.name.slice(0, -suffix.length);
      if (name && !name.includes(".")) found.push(name);
    }
  } catch (err) {
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new Error(`cannot read ${STATE_DIR}: add yourself to group xvpn, or use sudo`);
    }
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  // A killed run leaves its socket file behind (the next start on that TUN replaces it): only
  // those something answers on count.
  const live: string[] = [];
  for (const name of found) {
    const path = (await socketPaths(name))[which];
    try {
      (await Deno.connect({ transport: "unix", path })).close();
      live.push(name);
    } catch (err) {
      if (err instanceof Deno.errors.PermissionDenied) live.push(name); // say so when asked
    }
  }
  found.splice(0, found.length, ...live);
  if (found.length === 0) {
    throw new Error(
      `no xvpn connect or serve is running here (no ${which} socket in ${STATE_DIR})`,
    );
  }
  if (found.length > 1) {
    throw new UsageError(`several are running (${found.sort().join(", ")}): say which with --tun`);
  }
  return (await socketPaths(found[0]!))[which];
}

async function ask(path: string, request: string): Promise<string> {
  try {
    return await askLocal(path, request);
  } catch (err) {
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new Error(
        `${path}: permission denied (` +
          (path.endsWith(".control.sock")
            ? "the control socket is root's)"
            : "the status socket is for group xvpn and root)"),
      );
    }
    if (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.ConnectionRefused) {
      throw new Error(`${path}: nothing answers (the xvpn that made it is gone)`);
    }
    throw err;
  }
}

/** `xvpn status`. */
export async function status(args: string[]): Promise<number> {
  const p = parseFlags("status", args, {
    tun: { kind: "string", short: "t" },
    json: { kind: "bool" },
    watch: { kind: "bool", short: "w" },
    interval: { kind: "string", short: "i" },
  });
  if (p.positional.length) throw new UsageError(`status: unexpected argument "${p.positional[0]}"`);
  const intervalS = intFlag("status", p, "interval", 1, 1, 3600);
  const path = await statusSocket(p.flags.tun as string | undefined, "status");
  const read = async () => {
    const doc = JSON.parse(await ask(path, "status")) as Record<string, unknown>;
    if (typeof doc.error === "string") throw new Error(`${path}: ${doc.error}`);
    return doc;
  };
  if (!p.flags.watch) {
    const doc = await read();
    console.log(p.flags.json ? JSON.stringify(doc, null, 2) : formatStatus(doc));
    return EXIT_OK;
  }
  // The live view: redrawn in place (cursor home, clear below) until Ctrl-C.
  let stop = false;
  const onSignal = () => (stop = true);
  Deno.addSignalListener("SIGINT", onSignal);
  const enc = new TextEncoder();
  try {
    while (!stop) {
      let text: string;
      try {
        const doc = await read();
        text = p.flags.json ? JSON.stringify(doc) : formatStatus(doc);
      } catch (err) {
        text = `xvpn status: ${(err as Error).message}`;
      }
      if (p.flags.json) console.log(text);
      else {
        Deno.stdout.writeSync(enc.encode(
          `\x1b[H\x1b[2J${text}\n\n(every ${intervalS} s; Ctrl-C to quit)\n`,
        ));
      }
      for (let waited = 0; waited < intervalS * 1000 && !stop; waited += 100) {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
  }
  return EXIT_OK;
}

/** `xvpn control [--tun NAME] reconnect | node NAME`. */
export async function control(args: string[]): Promise<number> {
  const p = parseFlags("control", args, { tun: { kind: "string", short: "t" } });
  const [cmd, arg, extra] = p.positional;
  let request: Record<string, string>;
  if (cmd === "reconnect" && arg === undefined) request = { cmd: "reconnect" };
  else if (cmd === "node" && arg && extra === undefined) request = { cmd: "node", name: arg };
  else throw new UsageError("control: expected `reconnect` or `node NAME`");
  const path = await statusSocket(p.flags.tun as string | undefined, "control");
  const answer = JSON.parse(await ask(path, JSON.stringify(request))) as {
    ok?: boolean;
    message?: string;
    error?: string;
  };
  if (!answer.ok) throw new Error(answer.error ?? "refused");
  console.log(answer.message);
  return EXIT_OK;
}
