/**
 * One xvpn per TUN name (audit finding 3): an exclusive `flock` on `/run/xvpn/<tun>.lock`, taken
 * before anything else at start, before the stale-state recovery that would otherwise undo a
 * running tunnel's DNS and routes. The kernel drops the lock when the process dies however it
 * dies, so a crash never leaves a stale lock; the file holds the pid for the refusal message.
 *
 * @module
 */
import { cString, Errno, errno, libc, O_CLOEXEC, O_RDWR, strerror } from "../_libc.ts";
import { parentDir } from "./dir.ts";

const O_CREAT = 0o100;
const LOCK_EX = 2;
const LOCK_NB = 4;

/** Thrown when another live process holds the lock. */
export class LockedError extends Error {
  constructor(readonly path: string, readonly pid: number | undefined, what: string) {
    super(
      `${what} is in use by another xvpn${pid ? ` (pid ${pid})` : ""} (lock ${path}); ` +
        `stop it first, or use another tun.name`,
    );
    this.name = "LockedError";
  }
}

/** A held lock; {@link release} lets it go (so does the process's death). */
export interface HeldLock {
  /** The lock file. */
  readonly path: string;
  /** Releases the lock and closes the file; idempotent. */
  release(): void;
}

/**
 * Takes the exclusive lock at `path` without waiting, creating the file (mode 0600) and the
 * directory as needed. Throws {@link LockedError} when another process holds it (`what` names
 * the thing in the message, e.g. `TUN xvpn0`), or an Error for any other failure.
 */
export function takeLock(path: string, what: string): HeldLock {
  Deno.mkdirSync(parentDir(path), { recursive: true, mode: 0o700 });
  const c = libc();
  const p = cString(path);
  // The holder removes the file when it lets go (so /run does not fill with dead lock files).
  // Whoever opened the old file meanwhile then holds a lock on an unlinked inode: it checks
  // that the path still names the file it locked, and tries again if not.
  for (let attempt = 0;; attempt++) {
    const fd = c.open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0o600);
    if (fd < 0) throw new Error(`cannot open lock file ${path}: ${strerror(errno())}`);
    if (c.flock(fd, LOCK_EX | LOCK_NB) !== 0) {
      const e = errno();
      c.close(fd);
      if (e !== Errno.EAGAIN) throw new Error(`cannot lock ${path}: ${strerror(e)}`); // = EWOULDBLOCK
      throw new LockedError(path, readPid(path), what);
    }
    const ino = inodeOf(`/proc/self/fd/${fd}`);
    if (ino === undefined || ino !== inodeOf(path)) {
      c.close(fd); // the file we locked was removed by its last holder: take the new one
      if (attempt < 10) continue;
      throw new Error(`cannot lock ${path}: it keeps being replaced`);
    }
    // Ours now: note the pid for whoever is refused next (the lock, not the pid, is what counts).
    Deno.writeTextFileSync(path, `${Deno.pid}\n`);
    let held = true;
    return {
      path,
      release() {
        if (!held) return;
        held = false;
        try {
          if (inodeOf(path) === ino) Deno.removeSync(path);
        } catch { /* already gone */ }
        c.close(fd); // closing the last descriptor of the open file drops the flock
      },
    };
  }
}

/** The pid a lock's holder wrote to `file`, if readable (it is only for the message). */
function readPid(file: string): number | undefined {
  try {
    const n = Number(Deno.readTextFileSync(file).trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

function inodeOf(path: string): number | undefined {
  try {
    return Deno.statSync(path).ino ?? undefined;
  } catch {
    return undefined;
  }
}

/**
 * The same lock where libc's `flock` is not at hand (Windows): Deno's `FsFile.tryLockSync`
 * (`LockFileEx` there, `flock` here), which the system also drops at any death. Windows locks
 * are mandatory (another process cannot read a locked file), so the holder's pid goes into a
 * file beside it, `<path>.pid`, for the refusal message. The lock file itself stays (removing an
 * open file fails on Windows); only the pid file is removed at release.
 */
export function takeFileLock(path: string, what: string): HeldLock {
  Deno.mkdirSync(parentDir(path), { recursive: true, mode: 0o700 });
  const file = Deno.openSync(path, { read: true, write: true, create: true });
  let locked: boolean;
  try {
    locked = file.tryLockSync(true);
  } catch (err) {
    file.close();
    throw new Error(`cannot lock ${path}: ${(err as Error).message}`);
  }
  const pidFile = `${path}.pid`;
  if (!locked) {
    file.close();
    throw new LockedError(path, readPid(pidFile), what);
  }
  Deno.writeTextFileSync(pidFile, `${Deno.pid}\n`);
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      try {
        Deno.removeSync(pidFile);
      } catch { /* already gone */ }
      file.close(); // closing the handle drops the lock
    },
  };
}
