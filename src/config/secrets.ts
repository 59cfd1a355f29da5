/**
 * Secrets on disk: the warning `wg` gives for a key file others can read, and the scrubbing of
 * anything that looks like a key out of error messages (a mistyped key is nearly right, and a
 * message ends up in logs, bug reports and screenshots).
 *
 * @module
 */
import { decodeKey } from "../core/keys.ts";

/**
 * A warning when the file holding a private key is readable or writable by group or others
 * (mode & 0o077), else undefined. `stat` is injected for tests; a file that cannot be stat'ed
 * (it was just read, so rarely) gives no warning. Windows has no such modes: nothing there.
 */
export function keyFileWarning(
  path: string,
  stat: (path: string) => { mode: number | null } = Deno.statSync,
): string | undefined {
  let mode: number | null;
  try {
    mode = stat(path).mode;
  } catch {
    return undefined;
  }
  if (mode === null || (mode & 0o077) === 0) return undefined;
  const octal = (mode & 0o777).toString(8).padStart(4, "0");
  return `${path} holds a private key and is accessible by group or others (mode ${octal}); ` +
    `run: chmod 600 ${path} (and create key files under umask 077)`;
}

/** Base64 tokens of a 32-byte key (43 characters and one `=`), as text might hold them. */
const KEYLIKE = /[A-Za-z0-9+/]{43}=/g;

/** `text` with every substring that decodes as a 32-byte key replaced by a placeholder. */
export function scrubKeys(text: string): string {
  return text.replace(KEYLIKE, (m) => decodeKey(m) ? "<a key, not shown>" : m);
}
