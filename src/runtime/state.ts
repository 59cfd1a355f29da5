/**
 * Claiming a TUN name at start, before anything else: the per-TUN lock (one xvpn per TUN name,
 * audit finding 3), then the recovery of what an earlier run on that name left behind when it
 * was killed (audit finding 2), then a fresh journal for this run.
 *
 * @module
 */
import type { CommandRunner } from "../io/command.ts";
import { type HeldLock, takeFileLock, takeLock } from "../io/state/lock.ts";
import { Journal, recoverJournal } from "../io/state/journal.ts";
import { STATE_DIR, statePath } from "../io/state/dir.ts";
import type { Logger } from "@logtape/logtape";

/** What a run holds on its TUN name. */
export interface TunClaim {
  /** Released at exit (and by the kernel at any death). */
  lock: HeldLock | undefined;
  /** Where this run records what it must undo. */
  journal: Journal | undefined;
}

/**
 * Takes the lock of `ifname` (throwing `LockedError` with a clear message when another xvpn
 * holds it) and undoes what a crashed run recorded. `dir` defaults to /run/xvpn
 * (`%ProgramData%\xvpn` on Windows). On Windows there is the journal but no lock yet (`flock`
 * is Linux's; documented in the README); on macOS neither.
 */
export async function claimTun(
  ifname: string,
  runner: CommandRunner,
  log: Logger,
  dir = Deno.env.get("XVPN_STATE_DIR") ?? STATE_DIR,
  os: typeof Deno.build.os = Deno.build.os,
): Promise<TunClaim> {
  if (os !== "linux" && os !== "windows") return { lock: undefined, journal: undefined };
  const noNetns = () => Promise.resolve(undefined); // Windows has no network namespaces
  const path = (suffix: string) =>
    os === "windows" ? statePath(dir, ifname, suffix, noNetns, os) : statePath(dir, ifname, suffix);
  // Windows: Deno's own file lock (LockFileEx); Linux keeps its flock by FFI.
  const lock = os === "linux"
    ? takeLock(await path("lock"), `TUN ${ifname}`)
    : takeFileLock(await path("lock"), `adapter ${ifname}`);
  try {
    const journalPath = await path("state.json");
    const rec = await recoverJournal(journalPath, runner);
    if (rec) {
      log.warn("An earlier xvpn on {tun} did not clean up (killed?); put back: {found}", {
        tun: ifname,
        found: rec.found.join("; ") || "nothing",
      });
      for (const f of rec.failed) log.info("Recovery: {f} (already gone, most likely)", { f });
    }
    return { lock, journal: new Journal(journalPath) };
  } catch (err) {
    lock?.release();
    throw err;
  }
}
