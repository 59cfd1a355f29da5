/**
 * The values xvpn puts into Windows commands, checked before they get there.
 *
 * On Windows a process gets one command line, not an argv: Deno quotes each argument by the MSVC
 * rules and the program splits the line again by its own (netsh by its own tokenizer, PowerShell
 * by its script grammar). So an interface name or address that reaches `netsh` or the script of
 * `powershell -Command` is restricted to characters no Windows tokenizer treats specially. The
 * names come from xvpn's config (the Wintun adapter) or from Windows itself (the interface index
 * of the route to the server, see `windows_lookup.ts`), never from the network.
 *
 * @module
 */

/** The longest Wintun adapter name (`WINTUN_MAX_POOL`/`MAX_ADAPTER_NAME`: 128 with the NUL). */
export const MAX_WINDOWS_IFNAME = 127;

/**
 * Why `name` cannot be used as a Windows interface name in xvpn's commands, or undefined when
 * it can: ASCII letters, digits, spaces, `.`, `_` and `-`, starting with a letter or digit,
 * no trailing space. An interface index (`12`) passes too: netsh takes either in `interface=`.
 *
 * Stricter than Windows (which allows almost any character in an alias): quotes, `%`, `^`, `&`,
 * `|`, `<`, `>`, `$`, backticks, parentheses, `;` and the typographic quotes that PowerShell also
 * takes for quotes would each need a different escape for cmd, netsh and PowerShell; refusing
 * them is the one rule that is right for all three.
 */
export function invalidWindowsIfnameReason(name: string): string | undefined {
  if (name.length === 0) return "it is empty";
  if (name.length > MAX_WINDOWS_IFNAME) return `it is longer than ${MAX_WINDOWS_IFNAME} characters`;
  if (!/^[A-Za-z0-9]/.test(name)) return "it must start with a letter or digit";
  if (/ $/.test(name)) return "it ends with a space";
  const bad = /[^A-Za-z0-9 ._-]/.exec(name)?.[0];
  if (bad !== undefined) {
    return `it contains ${JSON.stringify(bad)} (only letters, digits, space, ".", "_" and "-")`;
  }
  return undefined;
}

/** Returns `name`, or throws an Error naming `what` and the reason it is refused. */
export function checkWindowsIfname(name: string, what = "interface"): string {
  const bad = invalidWindowsIfnameReason(name);
  if (bad) throw new Error(`bad Windows ${what} name "${name}": ${bad}`);
  return name;
}

/**
 * A PowerShell single-quoted literal of `value`, which must be an address or a checked
 * interface name: characters that end or escape a literal (`'` and its typographic twins) are
 * refused, not escaped, so no value can ever leave its quotes.
 */
export function psQuote(value: string): string {
  if (!/^[A-Za-z0-9 .:_-]+$/.test(value)) {
    throw new Error(`refusing to put ${JSON.stringify(value)} into a PowerShell command`);
  }
  return `'${value}'`;
}

/**
 * The argv that runs `script` in Windows PowerShell 5.1 (present on every Windows 10/11):
 * no profile (a user's profile could print or change things), never waiting for input, and
 * `$ErrorActionPreference = 'Stop'` so that a failing cmdlet ends the script with exit code 1
 * instead of printing an error and exiting 0.
 */
export function powershell(script: string): string[] {
  return [
    "powershell",
    "-NoProfile",
    "-NonInteractive",
    "-Command",
    `$ErrorActionPreference = 'Stop'; ${script}`,
  ];
}

/**
 * PowerShell's `ConvertTo-Json` output as a list: the elements of an array, or the one value it
 * prints for a single object; `[]` for no output, undefined when it is not JSON. A byte order
 * mark in front and CRLF line ends are allowed (Windows PowerShell writes both).
 */
export function psJsonList(output: string): unknown[] | undefined {
  const text = output.replace(/^\uFEFF/, "").trim();
  if (text === "") return [];
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  return Array.isArray(v) ? v : [v];
}

/** The objects of {@link psJsonList} (rows of a `Select-Object`), other values left out. */
export function psJsonRows(output: string): Record<string, unknown>[] | undefined {
  return psJsonList(output)?.filter((r): r is Record<string, unknown> =>
    typeof r === "object" && r !== null
  );
}
