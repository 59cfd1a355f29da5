/**
 * Where wintun.dll is looked for, and the message when it is not there. The DLL is the user's
 * to get: it is signed by its publisher, and xvpn never downloads or ships it.
 *
 * @module
 */

/** The environment variable naming the DLL; it overrides the default places. */
export const WINTUN_DLL_ENV = "XVPN_WINTUN_DLL";

/** The places to look, in order: `XVPN_WINTUN_DLL` alone when set, else next to the
 * executable (`xvpn.exe` once compiled), then the current directory. */
export function wintunDllCandidates(
  env: string | undefined,
  execPath: string,
  cwd: string,
  sep = "\\",
): string[] {
  if (env) return [env];
  const dir = (p: string) => {
    const i = Math.max(p.lastIndexOf("/"), p.lastIndexOf("\\"));
    return i < 0 ? "." : p.slice(0, i);
  };
  const exeDll = `${dir(execPath)}${sep}wintun.dll`;
  const cwdDll = `${cwd}${sep}wintun.dll`;
  return exeDll === cwdDll ? [exeDll] : [exeDll, cwdDll];
}

/** The error for a DLL that is in none of `paths`. */
export function wintunMissingMessage(paths: readonly string[]): string {
  return `wintun.dll not found at ${paths.join(" or ")}: download the signed DLL from ` +
    `https://www.wintun.net/ (the publisher) and put wintun.dll (amd64) next to xvpn.exe, ` +
    `or set ${WINTUN_DLL_ENV}; xvpn never downloads it`;
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** The first candidate that exists; throws {@link wintunMissingMessage} when none does. */
export function findWintunDll(
  candidates = wintunDllCandidates(
    Deno.env.get(WINTUN_DLL_ENV),
    Deno.execPath(),
    Deno.cwd(),
    Deno.build.os === "windows" ? "\\" : "/",
  ),
  exists: (path: string) => boolean = isFile,
): string {
  const found = candidates.find(exists);
  if (found === undefined) throw new Error(wintunMissingMessage(candidates));
  return found;
}
