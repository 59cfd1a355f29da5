/**
 * `xvpn profile`: list, show, import and learn game profiles (see `src/config/profile.ts` for
 * the format and where they are looked for).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { formatCidr, parseIPv4 } from "../lib/ip.ts";
import { formatCidr6, parseIPv6 } from "../lib/ip6.ts";
import {
  DEFAULT_PROFILE_DIRS,
  findProfile,
  type GameProfile,
  listProfiles,
  parseProfile,
  PROFILE_NAME_RE,
  UnknownProfileError,
} from "../config/profile.ts";
import { formatProfile, type ProfileFields } from "../config/profile_format.ts";
import { IMPORT_FORMAT_NAMES, importProfile } from "../config/profile_import.ts";
import type { AddressLearner } from "../io/learn/learner.ts";
import { LinuxLearner } from "../io/learn/linux.ts";
import { scopeOf } from "../io/learn/scope.ts";
import { EXIT_OK, UsageError } from "./report.ts";

/** Help for `xvpn profile` (printed by `xvpn profile --help`). */
export const PROFILE_HELP = `xvpn profile: game profiles (which addresses and domains a game uses)

Usage:
  xvpn profile list                   every profile found: name, counts, description, file
  xvpn profile show NAME              the profile as xvpn reads it
  xvpn profile import FILE [--name NAME] [--out DIR] [--force]
                                      a Netch mode (.txt, .json) or an SSTap rule file
                                      (.rules) as DIR/NAME.yaml
  xvpn profile learn --pid N [--seconds S] [--name NAME] [--out DIR] [--force]
                     [--keep-private]
                                      record where a running game sends (UDP and TCP,
                                      unconnected UDP sockets included) for S seconds
                                      (default 60; Ctrl-C stops early) and write the
                                      addresses as /32 and /128 ranges (Linux, root)

Options:
  --dir DIR        look in DIR instead of the default directories (repeatable); the
                   profiles shipped with xvpn are always looked at last
  --name NAME      the profile's name (default: from the file, or learned-<process name>)
  --out DIR        where import and learn write (default: the first directory searched)
  --force          overwrite DIR/NAME.yaml if it exists
  --keep-private   learn: keep private addresses (10/8, 172.16/12, 192.168/16,
                   100.64/10, fc00::/7), left out by default; loopback, link-local and
                   multicast are always left out

Directories, in search order: ${DEFAULT_PROFILE_DIRS().join(", ")}
(or $XDG_CONFIG_HOME/xvpn/profiles), then the profiles shipped with xvpn.
`;

/** Where `xvpn profile` writes, and what it learns with; tests replace them. */
export interface ProfileIo {
  /** Prints a line of the command's output. */
  out(line: string): void;
  /** Prints a line of progress or a warning. */
  err(line: string): void;
  /** The learner for `learn` (default: {@link LinuxLearner}, which needs root on Linux). */
  learner?: AddressLearner;
}

const defaultIo: ProfileIo = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

const OPTIONS = {
  dir: { type: "string", multiple: true },
  name: { type: "string" },
  out: { type: "string" },
  force: { type: "boolean" },
  pid: { type: "string" },
  seconds: { type: "string" },
  "keep-private": { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

type Flags = {
  dir?: string[];
  name?: string;
  out?: string;
  force?: boolean;
  pid?: string;
  seconds?: string;
  "keep-private"?: boolean;
  help?: boolean;
};

/** Which flags each subcommand takes (`--dir` and `--help` go with all of them). */
const ALLOWED: Record<string, (keyof Flags)[]> = {
  list: [],
  show: [],
  import: ["name", "out", "force"],
  learn: ["pid", "seconds", "name", "out", "force", "keep-private"],
};

/** Runs `xvpn profile <subcommand> ...`; returns the exit code (errors are thrown, for
 * `report.ts`). */
export async function profileCommand(args: string[], io: Partial<ProfileIo> = {}): Promise<number> {
  const cio: ProfileIo = { ...defaultIo, ...io };
  let parsed: { values: Flags; positionals: string[] };
  try {
    parsed = parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(`profile: ${(e as Error).message}`);
  }
  const { values: v, positionals } = parsed;
  const [sub, ...rest] = positionals;
  if (v.help || sub === undefined || sub === "help") {
    cio.out(PROFILE_HELP.trimEnd());
    return EXIT_OK;
  }
  const allowed = ALLOWED[sub];
  if (allowed === undefined) {
    throw new UsageError(
      `profile: unknown subcommand "${sub}"; expected list, show, import or learn`,
    );
  }
  for (const k of Object.keys(v) as (keyof Flags)[]) {
    if (k !== "dir" && k !== "help" && !allowed.includes(k)) {
      throw new UsageError(`profile ${sub}: --${k} does not apply here`);
    }
  }
  const dirs = v.dir ?? DEFAULT_PROFILE_DIRS();
  const want = (n: number, what: string) => {
    if (rest.length !== n) {
      throw new UsageError(
        rest.length > n
          ? `profile ${sub}: unexpected argument "${rest[n]}"`
          : `profile ${sub}: ${what} is required`,
      );
    }
  };
  switch (sub) {
    case "list":
      want(0, "");
      return await list(dirs, cio);
    case "show":
      want(1, "a profile NAME");
      return await show(rest[0]!, dirs, cio);
    case "import":
      want(1, "a FILE to import");
      return await importFile(rest[0]!, v, v.out ?? dirs[0]!, cio);
    default:
      want(0, "");
      return await learn(v, v.out ?? dirs[0]!, cio);
  }
}

function counts(p: GameProfile): string {
  return `${p.cidrs.length + p.cidrs6.length} ranges, ${p.domains.length} domains, ` +
    `${p.ports.length} ports`;
}

async function list(dirs: string[], io: ProfileIo): Promise<number> {
  const { profiles, unreadable } = await listProfiles(dirs);
  for (const u of unreadable) io.err(`xvpn: cannot read ${u.dir}: ${u.error.message}`);
  if (profiles.length === 0) {
    io.out(`no profiles in ${dirs.join(", ")} or the shipped ones`);
    return EXIT_OK;
  }
  const width = Math.max(...profiles.map((p) => p.name.length));
  for (const e of profiles) {
    const what = e.profile
      ? `${counts(e.profile)}${e.profile.description ? `: ${e.profile.description}` : ""}`
      : `invalid: ${e.error?.message.split("\n")[0] ?? "?"}`;
    io.out(`${e.name.padEnd(width)}  ${what}`);
    io.out(`${"".padEnd(width)}  ${e.file}`);
    for (const h of e.hides) io.out(`${"".padEnd(width)}  (hides ${h})`);
  }
  return EXIT_OK;
}

async function find(name: string, dirs: string[]): Promise<GameProfile> {
  try {
    return await findProfile(name, dirs);
  } catch (e) {
    if (e instanceof UnknownProfileError) throw new UsageError(e.message);
    throw e;
  }
}

async function show(name: string, dirs: string[], io: ProfileIo): Promise<number> {
  const p = await find(name, dirs);
  io.out(formatProfile(p, [`${p.file}: ${counts(p)}`]).trimEnd());
  return EXIT_OK;
}

/** Where a profile goes; refuses to overwrite without --force (before any work is done). */
async function target(dir: string, name: string, force: boolean | undefined): Promise<string> {
  const path = `${dir.replace(/(.)\/$/, "$1")}/${name}.yaml`;
  if (!force) {
    try {
      await Deno.lstat(path);
      throw new UsageError(`${path} exists; give --force to overwrite it`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  return path;
}

/** Writes `p` to `path` after checking that it reads back as a valid profile. */
async function write(
  path: string,
  p: ProfileFields,
  comment: string[],
): Promise<GameProfile> {
  const text = formatProfile(p, comment);
  const back = parseProfile(text, path); // what we write must be what xvpn reads
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")) || "/", { recursive: true });
  await Deno.writeTextFile(path, text);
  return back;
}

function checkName(name: string | undefined): void {
  if (name !== undefined && !PROFILE_NAME_RE.test(name)) {
    throw new UsageError(
      `profile: --name must be 1-64 letters, digits, '.', '_' or '-' (not first), got "${name}"`,
    );
  }
}

async function importFile(file: string, v: Flags, out: string, io: ProfileIo): Promise<number> {
  checkName(v.name);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new Error(`cannot read ${file}: ${(e as Error).message}`);
  }
  const p = importProfile(text, file, v.name);
  const path = await target(out, p.name, v.force);
  const comment = [
    `Imported by xvpn profile import from ${file} (${IMPORT_FORMAT_NAMES[p.format]}).`,
    ...p.notes.map((n) => `Note: ${n}.`),
  ];
  const { format: _f, notes: _n, ...fields } = p;
  const written = await write(path, fields, comment);
  io.out(`wrote ${path}: ${counts(written)}`);
  for (const n of p.notes) io.out(`  note: ${n}`);
  return EXIT_OK;
}

function intFlag(v: string | undefined, name: string, min: number, max: number, dflt?: number) {
  if (v === undefined) {
    if (dflt === undefined) throw new UsageError(`profile learn: --${name} N is required`);
    return dflt;
  }
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) {
    throw new UsageError(
      `profile learn: --${name} must be an integer from ${min} to ${max}, got "${v}"`,
    );
  }
  return n;
}

/** Orders IPv6 addresses as numbers. */
function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}

/** A profile name from a process name: `learned-<comm>`, made safe. */
function learnedName(comm: string | undefined, pid: number): string {
  const safe = (comm ?? "").toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(
    /^[-._]+|[-._]+$/g,
    "",
  );
  return `learned-${safe || pid}`.slice(0, 64);
}

async function learn(v: Flags, out: string, io: ProfileIo): Promise<number> {
  const pid = intFlag(v.pid, "pid", 1, 2 ** 22);
  const seconds = intFlag(v.seconds, "seconds", 1, 86_400, 60);
  checkName(v.name);
  let learner = io.learner;
  if (!learner) {
    if (Deno.build.os !== "linux") throw new Error("profile learn works on Linux only");
    if (Deno.uid() !== 0) throw new Error("profile learn needs root (it adds an nftables table)");
    learner = new LinuxLearner();
  }
  const comm = (await Deno.readTextFile(`/proc/${pid}/comm`).catch(() => "")).trim() || undefined;
  const name = v.name ?? learnedName(comm, pid);
  const path = await target(out, name, v.force);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? [] : ["SIGINT", "SIGTERM"];
  for (const s of signals) Deno.addSignalListener(s, onSignal);
  io.err(
    `learning where pid ${pid}${comm ? ` (${comm})` : ""} sends for ${seconds} s; ` +
      `Ctrl-C stops early`,
  );
  let r;
  try {
    r = await learner.learn({ pid, seconds, signal: stop.signal });
  } finally {
    for (const s of signals) Deno.removeSignalListener(s, onSignal);
  }
  const left = { private: 0, local: 0 };
  const keep = (a: string) => {
    const scope = scopeOf(a);
    if (scope === "public" || (scope === "private" && v["keep-private"])) return true;
    left[scope === "private" ? "private" : "local"]++;
    return false;
  };
  const v4 = r.v4.filter(keep).map((a) => parseIPv4(a)!).sort((a, b) => a - b);
  const v6 = r.v6.filter(keep).map((a) => parseIPv6(a)!)
    .sort(compareBytes);
  const skipped = [
    left.private ? `${left.private} private address(es) left out (--keep-private keeps them)` : "",
    left.local ? `${left.local} loopback, link-local or multicast address(es) left out` : "",
  ].filter((s) => s);
  for (const n of [...r.notes, ...skipped]) io.err(`  note: ${n}`);
  if (v4.length + v6.length === 0) {
    throw new Error(
      `learned no addresses from pid ${pid} in ${r.seconds} s` +
        (r.exited ? " (it exited)" : "") + (skipped.length ? `; ${skipped.join("; ")}` : ""),
    );
  }
  const who = `pid ${pid}${r.comm ? ` (${r.comm})` : ""}`;
  const fields: ProfileFields = {
    name,
    description: `Addresses ${r.comm ?? `pid ${pid}`} sent to while learning`,
    source: `learned by xvpn profile learn from ${who} over ${r.seconds} s on ` +
      `${new Date().toISOString()} (by ${r.methods.join(" and ")})`,
    cidrs: v4.map((addr) => ({ addr, prefix: 32 })),
    cidrs6: v6.map((addr) => ({ addr, prefix: 128 })),
    domains: [],
    ports: [],
  };
  const written = await write(path, fields, [
    `Learned by xvpn profile learn from ${who}: every address it sent to, as a host route.`,
    ...[...r.notes, ...skipped].map((n) => `Note: ${n}.`),
  ]);
  io.out(
    `wrote ${path}: ${counts(written)}${
      r.exited ? ` (pid ${pid} exited after ${r.seconds} s)` : ""
    }`,
  );
  for (const c of [...written.cidrs.map(formatCidr), ...written.cidrs6.map(formatCidr6)]) {
    io.out(`  ${c}`);
  }
  return EXIT_OK;
}
