/**
 * `xvpn profile import`: reads the address lists of two older game accelerators into a game
 * profile. Neither tool's lists ship with xvpn (their licenses do not allow it); users import
 * the files they have.
 *
 * - **Netch text modes** (`mode/*.txt`): a header line `# Remark, Type[, BypassChina]`, then
 *   one rule per line; blank lines and `//` comments are skipped, `#include <file>` pulls in
 *   another mode. Type 1 ("route these CIDRs") is imported. Type 2 ("route everything except
 *   these CIDRs") is refused: a profile says what goes into the tunnel and has no "everything
 *   except" form. Type 0 (process mode) names programs, not addresses, and is refused; so are
 *   the proxy and share types (3-6). `#include` is refused at its line: import the included
 *   file on its own.
 * - **Netch JSON modes** (`mode/*.json`, newer Netch): `{"type": "TunMode", "remark": ...,
 *   "handle": [CIDRs], "bypass": [CIDRs]}`; `type` is a name (`ProcessMode`, `ShareMode`,
 *   `TapMode`, `TunMode`, ...) or the number of one (the numbering changed between versions:
 *   2 is TunMode in the newest, TapMode before, and both route `handle`). `remark` is text or
 *   a map from language code to text. `handle` becomes the profile's ranges; a `bypass` entry
 *   outside every handle range changes nothing and is dropped, one inside a handle range is an
 *   exception a profile cannot express and is refused; a handle of `0.0.0.0/0` is the bypass
 *   form again and is refused.
 * - **SSTap rule files** (`rules/*.rules`): a header line `#Name,Other name,0,0,1,0,1,0,By-...`
 *   (the third field is 1 in bypass lists, which are refused as above), then one CIDR per
 *   line; blank lines and further `#` lines are skipped.
 *
 * In every format a bare address is read as a host (/32, /128), a CIDR with host bits set is
 * narrowed to its network (and counted in the notes), repeats are dropped, and every line that
 * cannot be read is reported with the file and line.
 *
 * @module
 */
import { type Cidr, cidrContains, formatCidr, networkOf, parseCidr } from "../lib/ip.ts";
import { type Cidr6, cidr6Contains, formatCidr6, network6, parseCidr6 } from "../lib/ip6.ts";
import { ConfigError, type ConfigIssue } from "./errors.ts";
import { type ProfileFields } from "./profile_format.ts";
import { PROFILE_NAME_RE } from "./profile.ts";
import { type At, describe, items, openDocument } from "./schema.ts";
import { isMap, isScalar } from "yaml";

export { formatProfile, type ProfileFields } from "./profile_format.ts";

/** The file formats {@link importProfile} reads. */
export type ImportFormat = "netch-text" | "netch-json" | "sstap";

/** How each format is named in messages and in the imported profile's `source`. */
export const IMPORT_FORMAT_NAMES: Record<ImportFormat, string> = {
  "netch-text": "Netch text mode",
  "netch-json": "Netch JSON mode",
  "sstap": "SSTap rule file",
};

/** A profile read from another tool's file, with what was changed on the way. */
export interface ImportedProfile extends ProfileFields {
  /** The format the file was read as. */
  format: ImportFormat;
  /** What the import changed or dropped, one sentence each (written as comments). */
  notes: string[];
}

/** The ranges and title read from one file, before they become a profile. */
interface Raw {
  title: string;
  cidrs: Cidr[];
  cidrs6: Cidr6[];
  notes: string[];
}

const CIDR_EXPECTED = "an IPv4 or IPv6 CIDR such as 192.0.2.0/24 or 2001:db8::/32";

/** One range as read: its family, its network, and whether host bits had to be cleared. */
type Range = { v6: false; c: Cidr; narrowed: boolean } | { v6: true; c: Cidr6; narrowed: boolean };

/** Reads a CIDR or a bare address (a host); a message when it is neither, or is a /0. */
function parseRange(s: string): Range | string {
  const t = s.trim();
  if (t.includes(":")) {
    const c = parseCidr6(t);
    if (!c) return `expected ${CIDR_EXPECTED}, got ${JSON.stringify(t)}`;
    if (c.prefix === 0) return EVERYTHING(t);
    const addr = network6(c);
    return {
      v6: true,
      c: { addr, prefix: c.prefix },
      narrowed: !addr.every((b, i) => b === c.addr[i]),
    };
  }
  const c = parseCidr(t);
  if (!c) return `expected ${CIDR_EXPECTED}, got ${JSON.stringify(t)}`;
  if (c.prefix === 0) return EVERYTHING(t);
  const addr = networkOf(c);
  return { v6: false, c: { addr, prefix: c.prefix }, narrowed: addr !== c.addr };
}

/** Collects the ranges of one file: parses, narrows, drops repeats, counts what it changed. */
class Ranges {
  readonly v4: Cidr[] = [];
  readonly v6: Cidr6[] = [];
  #seen = new Set<string>();
  #narrowed = 0;
  #repeated = 0;

  /** Adds one entry; returns a message for the caller to report when it cannot be read. */
  add(s: string): string | undefined {
    const r = parseRange(s);
    if (typeof r === "string") return r;
    if (r.narrowed) this.#narrowed++;
    const key = r.v6 ? formatCidr6(r.c) : formatCidr(r.c);
    if (this.#seen.has(key)) {
      this.#repeated++;
      return undefined;
    }
    this.#seen.add(key);
    r.v6 ? this.v6.push(r.c) : this.v4.push(r.c);
    return undefined;
  }

  /** Sentences about what was changed, for the profile's comments. */
  notes(): string[] {
    const out: string[] = [];
    if (this.#narrowed) {
      out.push(`${this.#narrowed} range(s) had host bits set and were narrowed to their network`);
    }
    if (this.#repeated) out.push(`${this.#repeated} repeated range(s) were dropped`);
    return out;
  }
}

const EVERYTHING = (t: string) =>
  `${JSON.stringify(t)} routes everything: that is a full tunnel (the client's full_tunnel ` +
  `setting), not a game profile`;

const BYPASS_WHY = "routes everything except its list; an xvpn profile lists what to route " +
  'into the tunnel and has no "everything except" form, so there is nothing to import ' +
  "(a full tunnel is the client's full_tunnel setting)";

/** Throws one {@link ConfigError} at line 1 of `file`. */
function refuse(file: string, message: string): never {
  throw new ConfigError(file, [{ line: 1, column: 1, path: "", message }]);
}

/** Lines without a byte order mark or carriage returns. */
function linesOf(text: string): string[] {
  return text.replace(/^\uFEFF/, "").split(/\r?\n/);
}

/** 1-based column of the first non-blank character. */
function colOf(line: string): number {
  return line.length - line.trimStart().length + 1;
}

/** Reads the rule lines after a header; `skip` says which lines are comments. */
function readLines(
  lines: string[],
  file: string,
  skip: (t: string) => boolean,
  refuseLine?: (t: string) => string | undefined,
): { ranges: Ranges; issues: ConfigIssue[] } {
  const ranges = new Ranges();
  const issues: ConfigIssue[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!, t = line.trim();
    if (t === "" || skip(t)) continue;
    const why = refuseLine?.(t) ?? ranges.add(t);
    if (why) issues.push({ line: i + 1, column: colOf(line), path: "", message: why });
  }
  if (issues.length) throw new ConfigError(file, issues);
  return { ranges, issues };
}

/**
 * Reads a Netch text mode (see the module docs). Only type 1 is imported.
 *
 * @throws {ConfigError} naming the file and line of every line that cannot be read, or at
 * line 1 why the mode's type cannot be imported.
 */
export function parseNetchText(text: string, file: string): Raw {
  const lines = linesOf(text);
  const header = lines[0] ?? "";
  if (!header.startsWith("#")) {
    refuse(file, `expected a Netch mode header such as "# Remark, 1", got ${describe(header)}`);
  }
  const heads = header.slice(1).split(",").map((h) => h.trim());
  const title = heads[0] ?? "";
  const type = heads[1] || "0";
  const mode = `this is a Netch mode of type ${type}`;
  switch (type) {
    case "1":
      break;
    case "0":
      refuse(
        file,
        `${mode} (process mode): it names programs, not addresses, and xvpn routes by ` +
          `address; run the game and record its addresses with xvpn profile learn --pid N`,
      );
      break;
    case "2":
      refuse(file, `${mode} ("bypass rule IPs"), which ${BYPASS_WHY}`);
      break;
    default:
      refuse(
        file,
        `${mode}, which is a proxy or sharing mode, not a list of addresses; only type 1 ` +
          `("proxy rule IPs") can be imported`,
      );
  }
  const { ranges } = readLines(
    lines,
    file,
    (t) => t.startsWith("//") || (t.startsWith("#") && !t.startsWith("#include")),
    (t) =>
      t.startsWith("#include")
        ? `#include is not followed: import the included mode on its own`
        : undefined,
  );
  return { title, cidrs: ranges.v4, cidrs6: ranges.v6, notes: ranges.notes() };
}

/** The old (Netch 1.8) and new numbering of JSON mode types; both route `handle`. */
const JSON_TYPES: Record<string, string> = {
  "0": "ProcessMode",
  "1": "ShareMode",
  "2": "TunMode", // TapMode in Netch 1.8; both route handle and bypass
  "3": "TunMode",
  "4": "WebMode",
  "5": "WmpMode",
};

/** True when two IPv4 ranges share an address. */
function overlaps4(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b.addr) || cidrContains(b, a.addr);
}

/** True when two IPv6 ranges share an address. */
function overlaps6(a: Cidr6, b: Cidr6): boolean {
  return cidr6Contains(a, b.addr) || cidr6Contains(b, a.addr);
}

/**
 * Reads a Netch JSON mode (see the module docs): `TunMode`/`TapMode` are imported.
 *
 * @throws {ConfigError} naming file, line and column of every entry that cannot be read, or
 * why the mode cannot be imported.
 */
export function parseNetchJson(text: string, file: string): Raw {
  // JSON is YAML, so the config reader gives positions for every value.
  const root = openDocument(text.replace(/^\uFEFF/, ""), file, () => {
    throw new Error("a mode file reads no other files");
  });
  const { ctx } = root;
  const top = root.node;
  if (!isMap(top)) {
    ctx.report(root.offset, "", `expected a Netch JSON mode (an object), got ${describe(top)}`);
    throw ctx.error();
  }
  const field = (key: string): At | undefined => {
    for (const pair of top.items) {
      const k = ctx.resolve(pair.key);
      if (!isScalar(k) || k.value !== key) continue;
      const node = ctx.resolve(pair.value);
      const range = (node as { range?: [number] } | null)?.range;
      return { ctx, node, path: key, offset: range?.[0] ?? root.offset };
    }
    return undefined;
  };
  const typeAt = field("type");
  const rawType = typeAt && isScalar(typeAt.node) ? typeAt.node.value : undefined;
  const type = typeof rawType === "number"
    ? JSON_TYPES[String(rawType)]
    : typeof rawType === "string"
    ? Object.values(JSON_TYPES).find((t) => t.toLowerCase() === rawType.toLowerCase())
    : undefined;
  if (!typeAt || type === undefined) {
    const at = typeAt ?? root;
    ctx.report(
      at.offset,
      "type",
      `expected a Netch mode type such as "TunMode", got ${
        typeAt ? describe(typeAt.node) : "none"
      }`,
    );
    throw ctx.error();
  }
  if (type !== "TunMode") {
    ctx.report(
      typeAt.offset,
      "type",
      type === "ProcessMode"
        ? `this is a Netch ProcessMode: it names programs, not addresses, and xvpn routes by ` +
          `address; run the game and record its addresses with xvpn profile learn --pid N`
        : `this is a Netch ${type}, which is not a list of addresses; only TunMode (and ` +
          `TapMode) can be imported`,
    );
    throw ctx.error();
  }
  const remarkAt = field("remark");
  let title = "";
  if (remarkAt && isScalar(remarkAt.node)) title = String(remarkAt.node.value ?? "");
  else if (remarkAt && isMap(remarkAt.node)) {
    const texts = new Map<string, string>();
    for (const pair of remarkAt.node.items) {
      const k = ctx.resolve(pair.key), v = ctx.resolve(pair.value);
      if (isScalar(k) && isScalar(v)) texts.set(String(k.value), String(v.value ?? ""));
    }
    title = texts.get("en") ?? texts.get("en-US") ?? texts.values().next().value ?? "";
  }
  const entries = (key: string): At[] => {
    const at = field(key);
    if (!at || (isScalar(at.node) && at.node.value === null)) return [];
    return items(at, `a list of ${CIDR_EXPECTED}`) ?? [];
  };
  const entryText = (it: At) =>
    isScalar(it.node) && typeof it.node.value === "string" ? it.node.value : describe(it.node);
  const handle = new Ranges();
  for (const it of entries("handle")) {
    const why = handle.add(entryText(it));
    if (why) ctx.report(it.offset, it.path, why);
  }
  // A bypass entry inside a handled range is an exception; one outside every handled range
  // excludes something that was never routed, and changes nothing.
  let dropped = 0;
  for (const it of entries("bypass")) {
    const r = parseRange(entryText(it));
    if (typeof r === "string") {
      ctx.report(it.offset, it.path, r);
      continue;
    }
    const inside = r.v6
      ? handle.v6.find((h) => overlaps6(h, r.c))
      : handle.v4.find((h) => overlaps4(h, r.c));
    if (inside === undefined) {
      dropped++;
      continue;
    }
    const shown = (c: Cidr | Cidr6) =>
      typeof c.addr === "number" ? formatCidr(c as Cidr) : formatCidr6(c as Cidr6);
    ctx.report(
      it.offset,
      it.path,
      `bypass ${shown(r.c)} overlaps handled ${shown(inside)}: a profile has no exceptions ` +
        `inside its ranges, so this mode cannot be imported as it means`,
    );
  }
  ctx.finish();
  const notes = handle.notes();
  if (dropped) {
    notes.push(`${dropped} bypass range(s) outside every handled range were dropped (no effect)`);
  }
  return { title, cidrs: handle.v4, cidrs6: handle.v6, notes };
}

/**
 * Reads an SSTap rule file (see the module docs).
 *
 * @throws {ConfigError} naming the file and line of every line that cannot be read.
 */
export function parseSstapRules(text: string, file: string): Raw {
  const lines = linesOf(text);
  const header = lines[0] ?? "";
  const fields = header.slice(1).split(",").map((f) => f.trim());
  if (!header.startsWith("#") || fields.length < 3) {
    refuse(
      file,
      `expected an SSTap rule header such as "#Name,Other name,0,0,1,0,1,0,By-author", ` +
        `got ${describe(header)}`,
    );
  }
  if (fields[2] === "1") refuse(file, `this SSTap rule file is a bypass list, which ${BYPASS_WHY}`);
  const names = [fields[0]!, fields[1]!].filter((n, i, all) => n && all.indexOf(n) === i);
  const { ranges } = readLines(lines, file, (t) => t.startsWith("#"));
  return { title: names.join(" / "), cidrs: ranges.v4, cidrs6: ranges.v6, notes: ranges.notes() };
}

/**
 * The format of a file: by its extension (`.json`, `.rules`, `.txt`), else by its content (a
 * `{` first; a header of eight or more comma-separated fields is SSTap's, a shorter one
 * Netch's).
 */
export function detectFormat(text: string, file: string): ImportFormat {
  const lower = file.toLowerCase();
  if (lower.endsWith(".json")) return "netch-json";
  if (lower.endsWith(".rules")) return "sstap";
  if (lower.endsWith(".txt")) return "netch-text";
  const t = text.replace(/^\uFEFF/, "").trimStart();
  if (t.startsWith("{")) return "netch-json";
  const header = t.split(/\r?\n/, 1)[0] ?? "";
  return header.split(",").length >= 8 ? "sstap" : "netch-text";
}

/**
 * A profile name for an imported file: its base name without the extension, lower case, with
 * every run of other characters than letters, digits, `.`, `_` and `-` made one `-`. Undefined
 * when nothing usable is left (a name in another script, say): then the user must give one.
 */
export function importedProfileName(file: string): string | undefined {
  const base = file.slice(file.lastIndexOf("/") + 1).replace(/\.[^.]*$/, "");
  const name = base.toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[-._]+|[-._]+$/g, "")
    .slice(0, 64);
  return PROFILE_NAME_RE.test(name) ? name : undefined;
}

/**
 * Reads a Netch mode or an SSTap rule file into a profile named `name` (default
 * {@link importedProfileName}), with a `source` naming the file and its format.
 *
 * @param text The file's content.
 * @param file The file as named by the user (in messages and in `source`).
 * @throws {ConfigError} for lines that cannot be read, modes that cannot be imported, a file
 * with no ranges, or no usable name.
 */
export function importProfile(text: string, file: string, name?: string): ImportedProfile {
  const format = detectFormat(text, file);
  const raw = format === "netch-json"
    ? parseNetchJson(text, file)
    : format === "sstap"
    ? parseSstapRules(text, file)
    : parseNetchText(text, file);
  if (raw.cidrs.length + raw.cidrs6.length === 0) {
    refuse(file, `this ${IMPORT_FORMAT_NAMES[format]} holds no address ranges`);
  }
  const profileName = name ?? importedProfileName(file);
  if (profileName === undefined || !PROFILE_NAME_RE.test(profileName)) {
    refuse(
      file,
      name === undefined
        ? `cannot make a profile name from the file's name; give one with --name`
        : `${JSON.stringify(name)} is not a profile name: use 1-64 letters, digits, '.', '_' ` +
          `or '-' (not first)`,
    );
  }
  const out: ImportedProfile = {
    name: profileName,
    source: `imported from ${JSON.stringify(file)} (${IMPORT_FORMAT_NAMES[format]})`,
    cidrs: raw.cidrs,
    cidrs6: raw.cidrs6,
    domains: [],
    ports: [],
    format,
    notes: raw.notes,
  };
  if (raw.title) out.description = raw.title;
  return out;
}
