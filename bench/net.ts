/**
 * The benchmark network: client -- server -- target, with the target reachable from the client
 * only through whatever the peer under test sets up.
 *
 *   client 10.201.1.1 ──veth── 10.201.1.2 server 10.201.2.1 ──veth── 10.201.2.2 target
 *
 * @module
 */
import { Topology, uniquePrefix } from "../src/demo/topology.ts";
import type { BenchNet } from "./peers/types.ts";

/** Name prefix of benchmark namespaces (`xb` + random), also what the stale sweep looks for. */
export const BENCH_PREFIX = "xb";

/** Builds a fresh network for one peer; the caller destroys `net.topo`. */
export async function createBenchNet(mtu: number): Promise<BenchNet> {
  const topo = await Topology.create({
    prefix: uniquePrefix(BENCH_PREFIX),
    hosts: ["client", "server", "target"],
    links: [
      { a: "client", b: "server", subnet: "10.201.1.0/24" },
      { a: "server", b: "target", subnet: "10.201.2.0/24" },
    ],
    forwarding: ["server"],
    // The target answers tunnel addresses (whatever pool a peer uses) through the server.
    routes: [{ host: "target", to: "default", via: "server" }],
  });
  topo.destroyOnSignal();
  const dir = await Deno.makeTempDir({ prefix: "xvpn-bench-" });
  topo.onDestroy(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
  return {
    topo,
    serverUnderlay: topo.addr("server", "client"),
    targetAddr: topo.addr("target"),
    targetSubnet: "10.201.2.0/24",
    mtu,
    dir,
  };
}

/** Polls `check` every 100 ms until it returns true or `timeoutMs` passes. */
export async function waitFor(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** The last `lines` lines of a log file, for error messages. */
export async function tail(path: string, lines = 15): Promise<string> {
  try {
    return (await Deno.readTextFile(path)).trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no output)";
  }
}

/** Throws unless `child` is still running (with its log tail when it exited). */
export async function assertRunning(
  child: Deno.ChildProcess,
  what: string,
  log: string,
): Promise<void> {
  const exited = await Promise.race([
    child.status.then((s) => s),
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 0)),
  ]);
  if (exited) throw new Error(`${what} exited (code ${exited.code}):\n${await tail(log)}`);
}
