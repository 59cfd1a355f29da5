/**
 * DNS through the tunnel by rewriting resolv.conf, for machines without systemd-resolved (and for
 * network namespaces, whose own resolv.conf `ip netns exec` bind-mounts over /etc/resolv.conf).
 *
 * Order of work, so that a crash at any point leaves a way back:
 * 1. the previous file is saved in the backup (written beside it, then renamed into place);
 * 2. only then is resolv.conf replaced by ours, whose first line names that backup;
 * 3. on restore the backup is put back and only then deleted.
 * A later start ({@link ResolvConfBackend.recoverStale}) finds a backup and looks at resolv.conf:
 * still ours means the earlier run died with the tunnel's DNS in place, so the backup goes back;
 * anything else means the system has rewritten resolv.conf since, so the backup is outdated and
 * only removed.
 *
 * A symlinked resolv.conf (to a resolver's generated file) is replaced as a link: our file takes
 * the link's place, the backup is a symlink with the same target, and restore puts the link back.
 * The link's target is never written, since it belongs to whatever generates it. The exception is
 * a link whose target is a mount point (a namespace's private copy): there the target is edited.
 *
 * @module
 */
import { basename, dirname } from "node:path";
import { formatIPv4 } from "../../lib/ip.ts";
import { type OurMark, parseMark, renderResolvConf } from "./resolvconf.ts";

/** Where the backend reads and writes. */
export interface ResolvConfPaths {
  /** The file the resolver reads, normally `/etc/resolv.conf`. */
  resolvConf: string;
  /** Where the previous file is kept while the tunnel's DNS is in place. */
  backup: string;
}

/** What is at the resolv.conf path now. */
type Current =
  | { kind: "missing" }
  | { kind: "other" }
  /** A regular file at `path` (resolv.conf itself, or a link's mounted target). */
  | { kind: "file"; path: string; bytes: Uint8Array }
  /** A symlink to `target` (`bytes` unset when it dangles). */
  | { kind: "link"; target: string; bytes?: Uint8Array };

const dec = new TextDecoder();

/** Applies, restores and recovers a resolv.conf for one tunnel interface. */
export class ResolvConfBackend {
  /** The previous file's text (for its `options` lines), while our file is in place. */
  #previous: string | undefined;

  /**
   * @param paths the resolv.conf and its backup
   * @param ifname the tunnel interface, written into the marker
   * @param isMountPoint answers whether a real path is a mount point (see `DnsSystem`)
   */
  constructor(
    readonly paths: ResolvConfPaths,
    readonly ifname: string,
    private readonly isMountPoint: (path: string) => Promise<boolean> = () =>
      Promise.resolve(false),
  ) {}

  /** True while our file is in place (applied by this object and not restored). */
  get active(): boolean {
    return this.#previous !== undefined;
  }

  /**
   * Points resolv.conf at `servers`. The first call saves the previous file (after recovering a
   * stale backup, see {@link recoverStale}); later calls only rewrite our file. Returns what was
   * done, in words for the log; `notes` receives anything else worth logging.
   */
  async apply(servers: readonly number[], notes: string[] = []): Promise<string> {
    const list = servers.map(formatIPv4).join(", ");
    const mark: OurMark = { ifname: this.ifname, backup: this.paths.backup };
    if (this.#previous !== undefined) {
      const cur = await this.#locate();
      if (cur.kind === "file" && this.#isOurs(cur.bytes)) {
        await this.#replaceFile(cur.path, renderResolvConf(servers, mark, this.#previous));
        return `resolv.conf now points at ${list} (backup in ${this.paths.backup})`;
      }
      // Someone replaced our file while the tunnel was up: theirs is the new previous file.
      this.#previous = undefined;
      notes.push(`resolv.conf was rewritten by someone else while the tunnel was up`);
    }
    const stale = await this.recoverStale();
    if (stale) notes.push(stale);

    const cur = await this.#locate();
    const path = this.paths.resolvConf;
    if (cur.kind === "missing") {
      throw new Error(`${path} does not exist, so there is nothing to point at the tunnel's DNS`);
    }
    if (cur.kind === "other") throw new Error(`${path} is neither a file nor a symlink`);
    const previous = cur.bytes ? dec.decode(cur.bytes) : "";
    const other = parseMark(previous);
    if (other && other.backup !== this.paths.backup && (await exists(other.backup))) {
      throw new Error(
        `${path} is managed by another xvpn (for ${other.ifname}, backup in ${other.backup}); ` +
          `stop that one first, or set dns: false`,
      );
    }

    await this.#saveBackup(cur);
    const ours = renderResolvConf(servers, mark, previous);
    try {
      if (cur.kind === "link") await replaceWithFile(path, ours);
      else await this.#replaceFile(cur.path, ours);
    } catch (err) {
      await Deno.remove(this.paths.backup).catch(() => {}); // nothing was changed after all
      throw err;
    }
    this.#previous = previous;
    const link = cur.kind === "link" ? `; it was a link to ${cur.target}` : "";
    return `resolv.conf now points at ${list} (backup in ${this.paths.backup}${link})`;
  }

  /**
   * Puts the previous resolv.conf back (file, or symlink) and deletes the backup. Leaves
   * resolv.conf alone when it is no longer ours (someone rewrote it meanwhile: theirs is newer).
   * Returns what was done, or undefined when this object had applied nothing.
   */
  async restore(): Promise<string | undefined> {
    if (this.#previous === undefined) return undefined;
    this.#previous = undefined;
    return await this.#putBack();
  }

  /**
   * For a start after a crash: when a backup exists and resolv.conf is still the file we wrote
   * with it, puts the backup back; when resolv.conf has changed since, deletes the outdated
   * backup. Returns what was done, or undefined when there was no backup (or it is in use here).
   */
  async recoverStale(): Promise<string | undefined> {
    if (this.#previous !== undefined || !(await exists(this.paths.backup))) return undefined;
    const done = await this.#putBack();
    return `found a backup left by an earlier xvpn on ${this.ifname} that did not stop cleanly: ${done}`;
  }

  async #putBack(): Promise<string> {
    const { resolvConf: path, backup } = this.paths;
    const cur = await this.#locate();
    if (cur.kind !== "file" || !this.#isOurs(cur.bytes)) {
      await Deno.remove(backup);
      return `resolv.conf is no longer the file xvpn wrote, so it stays as it is ` +
        `(outdated backup ${backup} deleted)`;
    }
    const saved = await Deno.lstat(backup);
    let what: string;
    if (saved.isSymlink) {
      const target = await Deno.readLink(backup);
      await replaceWithLink(path, target);
      what = `resolv.conf is a link to ${target} again`;
    } else {
      await this.#replaceFile(cur.path, await Deno.readFile(backup));
      what = `resolv.conf restored from ${backup}`;
    }
    await Deno.remove(backup);
    return what;
  }

  #isOurs(bytes: Uint8Array): boolean {
    return parseMark(dec.decode(bytes))?.backup === this.paths.backup;
  }

  /** Writes the backup beside its final name and renames it there, so it is whole or absent. */
  async #saveBackup(cur: Current & { kind: "file" | "link" }): Promise<void> {
    const backup = this.paths.backup;
    await Deno.mkdir(dirname(backup), { recursive: true, mode: 0o700 });
    const tmp = tempName(backup);
    try {
      if (cur.kind === "link") await Deno.symlink(cur.target, tmp);
      else await Deno.writeFile(tmp, cur.bytes, { mode: 0o600 });
      await Deno.rename(tmp, backup);
    } catch (err) {
      await Deno.remove(tmp).catch(() => {});
      throw err;
    }
  }

  async #locate(): Promise<Current> {
    const path = this.paths.resolvConf;
    let st: Deno.FileInfo;
    try {
      st = await Deno.lstat(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return { kind: "missing" };
      throw err;
    }
    if (st.isFile) return { kind: "file", path, bytes: await Deno.readFile(path) };
    if (!st.isSymlink) return { kind: "other" };
    const target = await Deno.readLink(path);
    let real: string | undefined;
    try {
      real = await Deno.realPath(path);
    } catch {
      return { kind: "link", target }; // dangling
    }
    // A namespace's private resolv.conf mounted on the link's target: edit that file, since the
    // link itself lives in the /etc that every namespace shares.
    if (await this.isMountPoint(real)) {
      return { kind: "file", path: real, bytes: await Deno.readFile(real) };
    }
    return { kind: "link", target, bytes: await Deno.readFile(real) };
  }

  /**
   * Replaces a regular file's content: a new file renamed over it (readers see old or new, never
   * half), keeping its permission bits. A bind-mounted file cannot be renamed over (EBUSY), so
   * it is rewritten in place.
   */
  async #replaceFile(path: string, data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    if (await this.isMountPoint(path)) {
      await Deno.writeFile(path, bytes);
      return;
    }
    const mode = (await Deno.stat(path).catch(() => undefined))?.mode ?? 0o644;
    const tmp = tempName(path);
    try {
      await Deno.writeFile(tmp, bytes, { mode: mode & 0o7777 });
      await Deno.chmod(tmp, mode & 0o7777); // creation modes pass through the umask
      await Deno.rename(tmp, path);
    } catch (err) {
      await Deno.remove(tmp).catch(() => {});
      if (!(err instanceof Deno.errors.Busy)) throw err;
      await Deno.writeFile(path, bytes);
    }
  }
}

/** Puts a regular file with `text` where a symlink (or anything) is, in one rename. */
async function replaceWithFile(path: string, text: string): Promise<void> {
  const tmp = tempName(path);
  try {
    await Deno.writeTextFile(tmp, text, { mode: 0o644 });
    await Deno.chmod(tmp, 0o644);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/** Puts a symlink to `target` where our file is, in one rename. */
async function replaceWithLink(path: string, target: string): Promise<void> {
  const tmp = tempName(path);
  try {
    await Deno.symlink(target, tmp);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/** A hidden name beside `path`, unique per process and call (several xvpn may share /etc). */
function tempName(path: string): string {
  const tag = crypto.getRandomValues(new Uint32Array(1))[0]!.toString(36);
  return `${dirname(path)}/.${basename(path)}.xvpn-${Deno.pid}-${tag}`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}
