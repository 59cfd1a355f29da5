/**
 * Game profiles: YAML files naming what a game talks to (address ranges, domain names and its
 * ports), so that `xvpn connect` can route just that game through the tunnel.
 *
 * ```yaml
 * name: example                 # must equal the file's name without .yaml
 * description: What it is for   # optional
 * source: https://...           # optional: where the ranges come from
 * cidrs: [192.0.2.0/24, 2001:db8::/32]
 * domains: [example.com, "*.example.net"]   # a domain matches itself and its subdomains
 * ports: [3074, "27015-27030", "udp:3478-3480", "tcp:443"]
 * ```
 *
 * Parsing reuses the config schema machinery, so a mistake reads like a config mistake:
 * `file:line:col: key: expected ..., got ...`. Profiles are found by name in a list of
 * directories: the user's (`/etc/xvpn/profiles`, then `$XDG_CONFIG_HOME/xvpn/profiles`), then
 * the `profiles/` directory shipped with xvpn.
 *
 * @module
 */
import type { Cidr } from "../lib/ip.ts";
import type { Cidr6 } from "../lib/ip6.ts";
import { ConfigError } from "./errors.ts";
import {
  cidr46,
  formatCidr46,
  list,
  openDocument,
  opt,
  type ReadFile,
  readMap,
  Refusal,
  req,
  splitCidrs,
  text,
} from "./schema.ts";

/** A port or an inclusive range of ports, for one protocol or both. */
export interface PortRange {
  /** `udp` or `tcp`; absent means both. */
  proto?: "udp" | "tcp";
  /** First port, 1..65535. */
  from: number;
  /** Last port (inclusive), from..65535; equal to `from` for a single port. */
  to: number;
}

/** A validated game profile. */
export interface GameProfile {
  /** The profile's name: the file's name without `.yaml`/`.yml`. */
  name: string;
  /** What the profile is for. */
  description?: string;
  /** Where the ranges come from (a URL or a sentence). */
  source?: string;
  /** IPv4 ranges to route into the tunnel (host bits clear). */
  cidrs: Cidr[];
  /** IPv6 ranges to route into the tunnel (host bits clear). */
  cidrs6: Cidr6[];
  /** Domain names, lower case, without a leading `*.` or a trailing dot; each one matches
   * itself and every name under it. */
  domains: string[];
  /** The game's ports (informational for routing: routes are by address). */
  ports: PortRange[];
  /** The file the profile was read from, as named to the loader. */
  file: string;
}

/** Profile names: what a file name may hold, without path separators or a leading dot. */
export const PROFILE_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const NAME_EXPECTED = "a profile name of 1-64 letters, digits, '.', '_' or '-' (not first)";

/** The profile name a file stands for: its base name without `.yaml`/`.yml`, or undefined when
 * the file has neither extension. */
export function profileNameOf(file: string): string | undefined {
  const base = file.slice(file.lastIndexOf("/") + 1);
  const m = /^(.*)\.ya?ml$/.exec(base);
  return m ? m[1] : undefined;
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * Normalizes a domain as profiles hold it: lower case, a leading `*.` and a trailing dot
 * dropped (`*.example.com` means what `example.com` means: the name and everything under it).
 * Returns undefined for anything that is not a hostname of two labels or more, or whose last
 * label is all digits (an address, which belongs in `cidrs`).
 */
export function normalizeDomain(s: string): string | undefined {
  let d = s.trim().toLowerCase();
  if (d.startsWith("*.")) d = d.slice(2);
  if (d.endsWith(".")) d = d.slice(0, -1);
  if (d.length === 0 || d.length > 253) return undefined;
  const labels = d.split(".");
  // A single label ("com") would route a whole top-level domain: far more likely a slip.
  if (labels.length < 2 || !labels.every((l) => LABEL.test(l))) return undefined;
  if (/^\d+$/.test(labels[labels.length - 1]!)) return undefined;
  return d;
}

const DOMAIN_EXPECTED = "a domain name such as example.com or *.example.com";

const domain = text(DOMAIN_EXPECTED, (s) => {
  const d = normalizeDomain(s);
  if (d !== undefined) return d;
  if (/^[\d.]+$/.test(s) || s.includes(":") || s.includes("/")) {
    return new Refusal(
      `expected ${DOMAIN_EXPECTED}, got ${JSON.stringify(s)}: addresses go in cidrs`,
    );
  }
  return undefined;
});

const PORT_EXPECTED = 'a port such as 3074, a range such as "27015-27030", or either with a ' +
  'protocol such as "udp:3478-3480"';

/** Parses `[udp:|tcp:]N[-M]`; undefined when it is not one, or the range is empty. */
export function parsePortRange(s: string): PortRange | undefined {
  const m = /^(?:(udp|tcp):)?(\d{1,5})(?:-(\d{1,5}))?$/.exec(s.trim().toLowerCase());
  if (!m) return undefined;
  const from = Number(m[2]), to = m[3] === undefined ? from : Number(m[3]);
  if (from < 1 || to > 65535 || to < from) return undefined;
  const r: PortRange = { from, to };
  if (m[1] === "udp" || m[1] === "tcp") r.proto = m[1];
  return r;
}

/** Text of a {@link PortRange}, as {@link parsePortRange} reads it. */
export function formatPortRange(r: PortRange): string {
  const ports = r.from === r.to ? `${r.from}` : `${r.from}-${r.to}`;
  return r.proto ? `${r.proto}:${ports}` : ports;
}

const port = text(PORT_EXPECTED, (s) => parsePortRange(s));

const PROFILE = {
  name: req(text(NAME_EXPECTED, (s) => PROFILE_NAME_RE.test(s) ? s : undefined)),
  description: opt(text("a description", (s) => s)),
  source: opt(text("where the ranges come from (a URL or a sentence)", (s) => s)),
  cidrs: opt(list("a list of CIDRs such as [192.0.2.0/24, 2001:db8::/32]", cidr46, formatCidr46)),
  domains: opt(list("a list of domain names such as [example.com]", domain, (d) => d)),
  ports: opt(list(`a list of ports, each ${PORT_EXPECTED}`, port, formatPortRange)),
};

/**
 * Parses and validates the text of a profile.
 *
 * @param text YAML source.
 * @param file Name used in messages; when it ends in `.yaml` or `.yml`, the `name` key must equal
 *   its base name without the extension (that is how `findProfile` finds it).
 * @throws {ConfigError} listing every mistake, each with line, column and key.
 */
export function parseProfile(text: string, file: string): GameProfile {
  // Profiles reference no other files.
  const noFiles: ReadFile = (p) => {
    throw new Error(`a profile reads no files (asked for ${p})`);
  };
  const root = openDocument(text, file, noFiles);
  const { ctx } = root;
  const m = readMap(root, PROFILE, "a mapping with name, cidrs, domains and ports");
  if (!m) throw ctx.error();
  const v = m.values;
  const expectedName = profileNameOf(file);
  if (v.name !== undefined && expectedName !== undefined && v.name !== expectedName) {
    const at = m.at.name!;
    ctx.report(
      at.offset,
      at.path,
      `expected ${JSON.stringify(expectedName)} (the file's name without its extension), ` +
        `got ${JSON.stringify(v.name)}`,
    );
  }
  const empty = (v.cidrs?.length ?? 0) + (v.domains?.length ?? 0) === 0;
  if (empty && ctx.issues.length === 0) {
    // Either list may be empty, but not both: such a profile would route nothing.
    ctx.report(root.offset, "", "a profile needs at least one entry in cidrs or domains");
  }
  ctx.finish();
  const cidrs = splitCidrs(v.cidrs ?? []);
  const out: GameProfile = {
    name: v.name!,
    cidrs: cidrs.v4,
    cidrs6: cidrs.v6,
    domains: v.domains ?? [],
    ports: v.ports ?? [],
    file,
  };
  if (v.description !== undefined) out.description = v.description;
  if (v.source !== undefined) out.source = v.source;
  return out;
}

/**
 * Reads and validates a profile file.
 *
 * @throws {ConfigError} naming the file and the OS error if it is unreadable, or listing every
 * mistake in it.
 */
export async function loadProfile(path: string): Promise<GameProfile> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new ConfigError(path, [{ line: 0, column: 0, path: "", message: `cannot read: ${why}` }]);
  }
  return parseProfile(text, path);
}

/**
 * The user's profile directories, in search order: `/etc/xvpn/profiles` first (`xvpn connect`
 * runs as root, and this is where root's imports go by default), then
 * `$XDG_CONFIG_HOME/xvpn/profiles`, or `~/.config/xvpn/profiles` when XDG_CONFIG_HOME is unset
 * (left out when neither it nor HOME is set, or the environment cannot be read).
 */
export function DEFAULT_PROFILE_DIRS(): string[] {
  const dirs = ["/etc/xvpn/profiles"];
  let base: string | undefined;
  try {
    base = Deno.env.get("XDG_CONFIG_HOME") || undefined;
    const home = Deno.env.get("HOME");
    if (base === undefined && home) base = `${home.replace(/\/$/, "")}/.config`;
  } catch {
    base = undefined; // no --allow-env: only the system directory
  }
  if (base !== undefined) dirs.push(`${base.replace(/\/$/, "")}/xvpn/profiles`);
  return dirs;
}

/**
 * The `profiles/` directory shipped with xvpn, beside `src/`. A compiled binary finds it too
 * when built with `deno compile --include profiles/`: the included files live in the binary's
 * virtual file system at the same place relative to this module. Undefined when this module
 * was not loaded from a file (then there is nothing to list).
 */
export function shippedProfileDir(): string | undefined {
  const url = new URL("../../profiles/", import.meta.url);
  if (url.protocol !== "file:") return undefined;
  return decodeURIComponent(url.pathname).replace(/\/$/, "");
}

/** The directories searched for `dirs`: them in order, then the shipped directory. */
export function profileSearchPath(dirs: readonly string[]): string[] {
  const shipped = shippedProfileDir();
  const all = dirs.map((d) => d.replace(/(.)\/$/, "$1"));
  if (shipped !== undefined && !all.includes(shipped)) all.push(shipped);
  return all;
}

/** Thrown by {@link findProfile} for a name no directory holds; lists the names there are. */
export class UnknownProfileError extends Error {
  /** The name asked for. */
  readonly profile: string;
  /** Every name found, sorted. */
  readonly available: string[];
  /** The directories searched, in order. */
  readonly searched: string[];
  /** Builds the message from what was searched and found. */
  constructor(profile: string, available: string[], searched: string[]) {
    const why = PROFILE_NAME_RE.test(profile)
      ? `no profile named "${profile}" in ${searched.join(", ")}`
      : `"${profile}" is not a profile name (${NAME_EXPECTED})`;
    super(
      `${why}; ${
        available.length ? `available: ${available.join(", ")}` : "no profiles are installed"
      }`,
    );
    this.name = "UnknownProfileError";
    this.profile = profile;
    this.available = available;
    this.searched = searched;
  }
}

/** One profile file found by {@link listProfiles}. */
export interface ProfileEntry {
  /** The name (the file's name without its extension). */
  name: string;
  /** The file. */
  file: string;
  /** The parsed profile, when the file is valid. */
  profile?: GameProfile;
  /** Why the file could not be used, when it is not valid. */
  error?: Error;
  /** Files of the same name later in the search order, which this one hides. */
  hides: string[];
}

/** What {@link listProfiles} found. */
export interface ProfileListing {
  /** One entry per name, sorted by name; the first file in the search order wins. */
  profiles: ProfileEntry[];
  /** Directories that exist but could not be read, with the reason. */
  unreadable: { dir: string; error: Error }[];
}

/** The profile files in one directory (`*.yaml`, `*.yml`), sorted; [] when it does not exist. */
async function filesIn(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile && !e.isSymlink) continue;
    const name = profileNameOf(e.name);
    if (name !== undefined && PROFILE_NAME_RE.test(name)) out.push(`${dir}/${e.name}`);
  }
  return out.sort();
}

/**
 * Lists the profiles in `dirs` and then the shipped directory, each name once (the first in
 * the search order wins, and records which files it hides). Invalid files are listed with
 * their error rather than failing the listing; missing directories are skipped.
 */
export async function listProfiles(
  dirs: readonly string[] = DEFAULT_PROFILE_DIRS(),
): Promise<ProfileListing> {
  const byName = new Map<string, ProfileEntry>();
  const unreadable: ProfileListing["unreadable"] = [];
  for (const dir of profileSearchPath(dirs)) {
    let files: string[];
    try {
      files = await filesIn(dir);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) continue;
      unreadable.push({ dir, error: e instanceof Error ? e : new Error(String(e)) });
      continue;
    }
    for (const file of files) {
      const name = profileNameOf(file)!;
      const first = byName.get(name);
      if (first) {
        first.hides.push(file);
        continue;
      }
      const entry: ProfileEntry = { name, file, hides: [] };
      try {
        entry.profile = await loadProfile(file);
      } catch (e) {
        entry.error = e instanceof Error ? e : new Error(String(e));
      }
      byName.set(name, entry);
    }
  }
  const profiles = [...byName.values()].sort((a, b) => a.name < b.name ? -1 : 1);
  return { profiles, unreadable };
}

/**
 * Finds the profile `name` in `dirs` and then the shipped directory: the first
 * `<dir>/<name>.yaml` (or `.yml`) wins, and is loaded and validated.
 *
 * @throws {UnknownProfileError} when no directory holds it (listing the names there are).
 * @throws {ConfigError} when the file found is unreadable or invalid.
 */
export async function findProfile(
  name: string,
  dirs: readonly string[] = DEFAULT_PROFILE_DIRS(),
): Promise<GameProfile> {
  const searched = profileSearchPath(dirs);
  if (PROFILE_NAME_RE.test(name)) {
    for (const dir of searched) {
      for (const ext of [".yaml", ".yml"]) {
        const file = `${dir}/${name}${ext}`;
        try {
          if (!(await Deno.stat(file)).isFile) continue;
        } catch {
          continue; // missing (or unreadable: then the listing below says so)
        }
        return await loadProfile(file);
      }
    }
  }
  const { profiles } = await listProfiles(dirs);
  throw new UnknownProfileError(name, profiles.map((p) => p.name), searched);
}
