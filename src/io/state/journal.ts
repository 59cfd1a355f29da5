/**
 * The crash journal (audit finding 2): before xvpn changes something that outlives the process
 * (a route via the physical gateway, an nftables table, `net.ipv4.ip_forward`), it writes the
 * commands that undo it to `/run/xvpn/<tun>.state.json`; once it has undone them itself, it
 * clears them. A process killed with SIGKILL cannot clean up, so the next start on the same TUN
 * name (holding the TUN lock) runs what the journal still holds, before it changes anything.
 *
 * Undo commands are recorded before the change is made (write-ahead): a crash between the two
 * leaves an undo for something that never happened, which fails harmlessly and is ignored. The
 * original value of a sysctl is recorded once, at the first change, so a second run never takes
 * the first run's setting for the original.
 *
 * @module
 */
import type { CommandRunner } from "../command.ts";
import { parentDir } from "./dir.ts";

/** What one part of xvpn (routes, NAT, ...) must undo, in the order to run. */
export interface JournalEntry {
  /** Why, for the log (`routes of xvpn0`). */
  what: string;
  /** argv lists, run in this order at recovery. */
  undo: string[][];
}

/** The file's content. */
interface JournalFile {
  pid: number;
  entries: Record<string, JournalEntry>;
}

/** A journal at one path; every change is written through at once (atomically, by rename). */
export class Journal {
  #entries: Record<string, JournalEntry> = {};

  /** @param path the journal file (see `statePath`). */
  constructor(readonly path: string) {}

  /** Records (replacing) what `key` must undo; an empty `undo` forgets it. */
  async set(key: string, entry: JournalEntry): Promise<void> {
    if (entry.undo.length === 0) delete this.#entries[key];
    else this.#entries[key] = { what: entry.what, undo: entry.undo.map((a) => [...a]) };
    await this.#write();
  }

  /** Forgets `key` (its changes were undone). */
  forget(key: string): Promise<void> {
    return this.set(key, { what: "", undo: [] });
  }

  /** True while anything is recorded. */
  get pending(): boolean {
    return Object.keys(this.#entries).length > 0;
  }

  async #write(): Promise<void> {
    if (!this.pending) {
      await Deno.remove(this.path).catch(() => {});
      return;
    }
    await Deno.mkdir(parentDir(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${Deno.pid}.tmp`;
    const body: JournalFile = { pid: Deno.pid, entries: this.#entries };
    await Deno.writeTextFile(tmp, JSON.stringify(body, null, 1) + "\n", { mode: 0o600 });
    await Deno.rename(tmp, this.path);
  }
}

/** What {@link recoverJournal} did. */
export interface Recovery {
  /** The entries found (what a crashed run left). */
  found: string[];
  /** Undo commands that failed (most often: the thing was already gone), as messages. */
  failed: string[];
}

/**
 * Runs what a journal left by an earlier run still holds (each entry's commands in order, every
 * one whatever the others do), then removes the file. Returns undefined when there was none.
 * Only call it while holding the TUN lock, so the journal cannot be a live run's.
 */
export async function recoverJournal(
  path: string,
  runner: CommandRunner,
): Promise<Recovery | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  const out: Recovery = { found: [], failed: [] };
  let file: JournalFile | undefined;
  try {
    file = JSON.parse(text) as JournalFile;
  } catch {
    out.failed.push(`${path} is not a journal (removed): ${text.slice(0, 80)}`);
  }
  for (const e of Object.values(file?.entries ?? {})) {
    if (!e || !Array.isArray(e.undo)) continue;
    out.found.push(e.what);
    for (const argv of e.undo) {
      if (!Array.isArray(argv) || !argv.every((a) => typeof a === "string")) continue;
      const r = await runner.run(argv, { allowFailure: true });
      if (r.code !== 0) {
        out.failed.push(`${argv.join(" ")} (exit ${r.code}): ${(r.stderr || r.stdout).trim()}`);
      }
    }
  }
  await Deno.remove(path).catch(() => {});
  return out;
}
