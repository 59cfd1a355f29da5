/**
 * Watching the local network for the changes that break a tunnel's path: a new address, a new
 * default route, Wi-Fi to mobile. `ip monitor` reports every address/route/link change; after
 * each burst we ask the kernel how it would now reach the server (`ip route get`) and call back
 * only when that answer (device, source address, gateway) changed — so our own route changes
 * for the tunnel, which do not change the way to the server, cause nothing.
 *
 * @module
 */
import type { CommandRunner } from "../io/command.ts";
import {
  findNetRouteArgv,
  type FoundRoute,
  parseFindNetRoute,
} from "../io/route/windows_lookup.ts";
import { PathPoller, type PollSample, WINDOWS_POLL_MS } from "../io/route/windows_watch.ts";
import { logger } from "../log.ts";

const log = logger("netwatch");
/** Changes come in bursts (address, then routes); wait this long after the last line. */
const SETTLE_MS = 50;

/** How the kernel reaches the server: the part of `ip -j route get` that matters. */
export interface PathToServer {
  dev?: string;
  prefsrc?: string;
  gateway?: string;
}

/** Parses `ip -j route get` output; undefined when there is no route. */
export function parseRouteGet(json: string): PathToServer | undefined {
  try {
    const [r] = JSON.parse(json) as { dev?: string; prefsrc?: string; gateway?: string }[];
    if (!r) return undefined;
    return { dev: r.dev, prefsrc: r.prefsrc, gateway: r.gateway };
  } catch {
    return undefined;
  }
}

/** Starts watching; `onChange(before, after)` runs when the way to `serverIp` changes. */
export async function watchPathToServer(
  runner: CommandRunner,
  serverIp: string,
  onChange: (before: PathToServer | undefined, after: PathToServer | undefined) => void,
  os: typeof Deno.build.os = Deno.build.os,
): Promise<() => void> {
  if (os === "windows") return watchWindows(runner, serverIp, onChange);
  const lookup = async () => {
    const r = await runner.run(["ip", "-j", "route", "get", serverIp], { allowFailure: true });
    return r.code === 0 ? parseRouteGet(r.stdout) : undefined;
  };
  let current = await lookup();
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("ip", {
      args: ["monitor", "address", "route", "link"],
      stdout: "piped",
      stderr: "null",
    }).spawn();
  } catch (err) {
    log.warning("Cannot watch the network (ip monitor): {err}; relying on liveness probes", {
      err: (err as Error).message,
    });
    return () => {};
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const check = async () => {
    const next = await lookup();
    if (stopped) return;
    if (JSON.stringify(next) !== JSON.stringify(current)) {
      const before = current;
      current = next;
      onChange(before, next);
    }
  };
  (async () => {
    const decoder = new TextDecoderStream();
    for await (const _chunk of child.stdout.pipeThrough(decoder)) {
      clearTimeout(timer);
      timer = setTimeout(() => void check(), SETTLE_MS);
    }
  })().catch(() => {});
  return () => {
    stopped = true;
    clearTimeout(timer);
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    child.status.catch(() => {});
  };
}

/**
 * Windows has no `ip monitor`: ask it how it reaches the server (`Find-NetRoute`) every
 * {@link WINDOWS_POLL_MS} and call back when the interface, next hop or source changed
 * (`PathPoller`); a failed or slow lookup is no change.
 */
async function watchWindows(
  runner: CommandRunner,
  serverIp: string,
  onChange: (before: PathToServer | undefined, after: PathToServer | undefined) => void,
): Promise<() => void> {
  const sample = async (): Promise<PollSample> => {
    const r = await runner.run(findNetRouteArgv(serverIp), { allowFailure: true })
      .catch(() => undefined);
    return r && r.code === 0 ? parseFindNetRoute(r.stdout) : "error";
  };
  const first = await sample();
  const poller = new PathPoller("", first === "error" ? undefined : first);
  const asPath = (f: FoundRoute | undefined): PathToServer | undefined =>
    f && { dev: f.alias ?? String(f.ifIndex), prefsrc: f.source, gateway: f.nextHop };
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    try {
      const change = poller.observe(await sample());
      if (change) onChange(asPath(change.before), asPath(change.after));
    } finally {
      busy = false;
    }
  }, WINDOWS_POLL_MS);
  return () => clearInterval(timer);
}
