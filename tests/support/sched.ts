/**
 * What the flow scheduler's root tests share (`tests/sched_root_test.ts` on Linux, the Windows
 * data path's in `tests/winworker_root_test.ts`): the game host's services, a cubic transfer
 * either way, and the "Scheduler:" line a run logs at exit, as numbers.
 *
 * @module
 */
import { LAB, type Lab } from "./net.ts";
import { spawnGameEcho } from "../lab/gameflow.ts";

/** A 50 Mbit/s bottleneck with a deep (100 ms) buffer, the tbf the scheduler tests put in. */
export const SCHED_TBF = ["tbf", "rate", "50mbit", "burst", "64kb", "latency", "100ms"];

/** Starts iperf3 and the game echo (UDP 7777) on the game host. */
export async function services(lab: Lab): Promise<void> {
  lab.topo.spawn("game", ["iperf3", "-s", "-p", "5201"]);
  await spawnGameEcho(lab.topo, "game", 7777);
  await new Promise((r) => setTimeout(r, 300));
}

/** A cubic transfer between the client and the game host for `seconds`, resolving to Mbit/s:
 * a download (game -> client, iperf3 -R) unless `upload`. */
export async function download(lab: Lab, seconds: number, upload = false): Promise<number> {
  const r = await lab.topo.exec("client", [
    ...["iperf3", "-c", LAB.game, "-p", "5201", ...(upload ? [] : ["-R"]), "-C", "cubic"],
    ...["-t", String(seconds), "-J", "--connect-timeout", "3000"],
  ], { allowFailure: true, timeoutMs: (seconds + 20) * 1000 });
  const j = JSON.parse(r.stdout || "{}") as {
    end?: { sum_received?: { bits_per_second: number } };
  };
  const bps = j.end?.sum_received?.bits_per_second;
  if (bps === undefined) throw new Error(`iperf3 gave no result: ${r.stdout} ${r.stderr}`);
  return bps / 1e6;
}

/** The figures of a "Scheduler:" log line. */
export interface SchedulerFigures {
  interactive: number;
  bulk: number;
  ce: number;
  codel: number;
  overflow: number;
  waited: number;
}

/** The server's (or client's) "Scheduler:" line at exit, as numbers (NaN: no such line). */
export async function schedulerLine(lab: Lab, file: string): Promise<SchedulerFigures> {
  const log = await Deno.readTextFile(lab.path(file));
  const line = log.split("\n").reverse().find((l) => l.includes("Scheduler:")) ?? "";
  const n = (re: RegExp) => Number(re.exec(line)?.[1] ?? NaN);
  return {
    interactive: n(/sent (\d+) interactive/),
    bulk: n(/(\d+) bulk/),
    ce: n(/CE marked (\d+)/),
    codel: n(/CoDel drops (\d+)/),
    overflow: n(/overflow drops (\d+)/),
    waited: n(/waited for the socket (\d+)/),
  };
}
