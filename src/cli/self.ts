/**
 * How to start this same xvpn as a child process: the compiled executable itself, or
 * `deno run -A main.ts` when running from source.
 *
 * @module
 */

/** argv prefix that runs xvpn (append the command and its flags). */
export function selfCommand(): string[] {
  const exe = Deno.execPath();
  const base = exe.split(/[\\/]/).pop() ?? "";
  if (/^deno(\.exe)?$/.test(base)) {
    const main = new URL("../../main.ts", import.meta.url);
    return [
      exe,
      "run",
      "--allow-all",
      "--quiet",
      main.protocol === "file:" ? decodeURIComponent(main.pathname) : main.href,
    ];
  }
  return [exe];
}
