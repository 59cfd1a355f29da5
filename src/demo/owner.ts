/**
 * Ownership records for topologies, so that a later run can tell the namespaces of a crashed run
 * (owner process gone) from those of a run that is still going in parallel (owner alive).
 *
 * A record is `/run/xvpn-netns/<prefix>.json`, written before the first namespace is created and
 * removed by `destroy()`. `/run` is a tmpfs, like `/run/netns` where `ip netns` keeps its
 * namespaces, so records and namespaces vanish together on reboot.
 *
 * @module
 */
import type { CommandRunner } from "../io/command.ts";
import { ProcessRunner } from "../io/command.ts";

/** Where ownership records live. */
export const RECORD_DIR = "/run/xvpn-netns";

/** Who created a topology: enough to tell whether that process still runs. */
export interface OwnerRecord {
  /** The topology's name prefix (namespaces are `<prefix>-<host>`). */
  prefix: string;
  /** Process id of the creator. */
  pid: number;
  /** The creator's start time (field 22 of /proc/<pid>/stat), so a reused pid is not taken for it. */
  startTime: string;
  /** ISO time of creation, for humans. */
  created: string;
}

/** The start time of process `pid` (clock ticks since boot), or undefined when it is gone. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19]; // field 22 overall; fields[0] here is field 3
  } catch {
    return undefined;
  }
}

/** Writes the record for `prefix`, owned by this process; fails if one exists (prefix in use). */
export async function writeOwnerRecord(prefix: string): Promise<void> {
  await Deno.mkdir(RECORD_DIR, { recursive: true });
  const record: OwnerRecord = {
    prefix,
    pid: Deno.pid,
    startTime: (await processStartTime(Deno.pid)) ?? "",
    created: new Date().toISOString(),
  };
  await Deno.writeTextFile(`${RECORD_DIR}/${prefix}.json`, JSON.stringify(record) + "\n", {
    createNew: true,
  });
}

/** Removes the record for `prefix`; missing is fine. */
export async function removeOwnerRecord(prefix: string): Promise<void> {
  await Deno.remove(`${RECORD_DIR}/${prefix}.json`).catch(() => {});
}

async function readOwnerRecord(prefix: string): Promise<OwnerRecord | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(`${RECORD_DIR}/${prefix}.json`)) as OwnerRecord;
  } catch {
    return undefined;
  }
}

/** True when the record's creator is still running (same pid and same start time). */
async function ownerAlive(record: OwnerRecord): Promise<boolean> {
  const start = await processStartTime(record.pid);
  return start !== undefined && (record.startTime === "" || start === record.startTime);
}

/** Names of all network namespaces known to `ip netns`. */
export async function listNamespaces(
  runner: CommandRunner = new ProcessRunner(),
): Promise<string[]> {
  const out = await runner.run(["ip", "-j", "netns", "list"]);
  if (!out.stdout.trim()) return []; // older iproute2 prints nothing at all when there are none
  const list = JSON.parse(out.stdout) as { name: string }[];
  return list.map((n) => n.name);
}

/** Kills every process in namespace `ns` (SIGKILL: this is cleanup, not a graceful stop). */
export async function killNamespacePids(
  ns: string,
  runner: CommandRunner = new ProcessRunner(),
): Promise<void> {
  const out = await runner.run(["ip", "netns", "pids", ns], { allowFailure: true });
  const pids = out.stdout.split(/\s+/).filter((p) => /^\d+$/.test(p) && Number(p) !== Deno.pid);
  for (const pid of pids) {
    try {
      Deno.kill(Number(pid), "SIGKILL");
    } catch {
      // already gone
    }
  }
}

/**
 * Deletes the namespaces left behind by crashed earlier runs whose prefix starts with `base`
 * (e.g. `"xt"` for topologies named `xt3fa9c1-client`).
 *
 * A namespace is stale when its topology's owner record names a process that is gone. A
 * namespace without a record (its creator died between creating it and writing the record, or it
 * predates records) counts as stale only when no process runs in it, so a parallel run is never
 * torn down. Processes in stale namespaces are killed first, since a namespace with processes
 * in it outlives `ip netns del`.
 *
 * @returns the names of the namespaces deleted.
 */
export async function sweepStale(
  base: string,
  runner: CommandRunner = new ProcessRunner(),
): Promise<string[]> {
  const removed: string[] = [];
  const stalePrefixes = new Set<string>();
  for (const ns of await listNamespaces(runner)) {
    const dash = ns.indexOf("-");
    if (!ns.startsWith(base) || dash <= 0) continue;
    const prefix = ns.slice(0, dash);
    const record = await readOwnerRecord(prefix);
    if (record) {
      if (await ownerAlive(record)) continue;
    } else {
      const pids = await runner.run(["ip", "netns", "pids", ns], { allowFailure: true });
      if (pids.stdout.trim()) continue;
    }
    await killNamespacePids(ns, runner);
    await runner.run(["ip", "netns", "del", ns], { allowFailure: true });
    removed.push(ns);
    stalePrefixes.add(prefix);
  }
  // Records whose owner is gone and whose namespaces are all deleted are stale too.
  try {
    for await (const entry of Deno.readDir(RECORD_DIR)) {
      const prefix = entry.name.replace(/\.json$/, "");
      if (!prefix.startsWith(base)) continue;
      const record = await readOwnerRecord(prefix);
      if (stalePrefixes.has(prefix) || (record && !(await ownerAlive(record)))) {
        await removeOwnerRecord(prefix);
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return removed;
}
