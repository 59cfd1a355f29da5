/**
 * A small table-driven reader over a parsed YAML document. Each setting is a {@link Field} whose
 * {@link Parser} turns a YAML node into a typed value or records an issue pointing at that node;
 * mappings refuse unknown keys, because a misspelt key silently falling back to a default is how
 * a VPN ends up routing traffic around the tunnel. Shared by the server and client configs.
 *
 * @module
 */
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, visit } from "yaml";
import type { Document } from "yaml";
import { type Cidr, formatCidr, formatIPv4, networkOf, parseCidr, parseIPv4 } from "../lib/ip.ts";
import { decodeKey } from "../core/keys.ts";
import {
  type Cidr6,
  formatCidr6,
  formatIPv6,
  network6,
  parseCidr6,
  parseIPv6,
} from "../lib/ip6.ts";
import { ConfigError, type ConfigIssue } from "./errors.ts";
import { parseDuration } from "./duration.ts";

/** Reads a file as text; injected so tests need no disk. Throws when the file is unreadable. */
export type ReadFile = (path: string) => string;

/** Parsing state of one config file: where positions come from and where issues go. */
export class Ctx {
  /** Every issue recorded so far. */
  readonly issues: ConfigIssue[] = [];

  /** Wraps one parsed document of `file`. */
  constructor(
    /** The config file as named to the loader; relative paths inside it resolve against its dir. */
    readonly file: string,
    /** Reads referenced files such as `private_key_file`. */
    readonly readFile: ReadFile,
    private readonly lines: LineCounter,
    private readonly doc: Document,
  ) {}

  /** Records an issue at a source offset. */
  report(offset: number, path: string, message: string): void {
    const { line, col } = this.lines.linePos(offset);
    this.issues.push({ line, column: col, path, message });
  }

  /** The 1-based line of a source offset, for "already used at line N" messages. */
  lineOf(offset: number): number {
    return this.lines.linePos(offset).line;
  }

  /** Follows a YAML alias (`*name`) to the node it names, so anchors work like plain values. */
  resolve(node: unknown): unknown {
    return isAlias(node) ? node.resolve(this.doc) ?? null : node;
  }

  /** Resolves a path from the config against the config file's directory (absolute stays as is). */
  resolvePath(path: string): string {
    if (path.startsWith("/")) return path;
    const slash = this.file.lastIndexOf("/");
    if (slash < 0) return path;
    return `${this.file.slice(0, slash) || "/"}/${path}`.replace(/^\/\//, "/");
  }

  /** A {@link ConfigError} holding every issue recorded so far. */
  error(): ConfigError {
    return new ConfigError(this.file, this.issues);
  }

  /** Throws a {@link ConfigError} holding every issue, if there are any. */
  finish(): void {
    if (this.issues.length) throw this.error();
  }
}

/** A value at a place in the document: its YAML node, key path, and the offset to point at. */
export interface At {
  /** State of the file being read. */
  ctx: Ctx;
  /** The YAML node (aliases resolved); null when a key has no value. */
  node: unknown;
  /** Key path such as `clients[1].address`. */
  path: string;
  /** Source offset that issues about this value point at. */
  offset: number;
}

/** Turns the value at a place into `T`, or records an issue there and returns undefined. */
export type Parser<T> = ((at: At) => T | undefined) & {
  /** What a good value looks like, for messages: `expected <this>, got ...`. */
  expected: string;
};

/** A complete message explaining why a value was refused, instead of the generic one. */
export class Refusal {
  /** Wraps the message to report. */
  constructor(readonly message: string) {}
}

/** Describes a YAML value for the `got ...` part of a message. */
export function describe(node: unknown): string {
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  const v = isScalar(node) ? node.value : node;
  if (v === null || v === undefined) return "nothing";
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}

/** Records `expected <expected>, got <value>` at `at`; returns undefined for convenience. */
export function fail(at: At, expected: string): undefined {
  at.ctx.report(at.offset, at.path, `expected ${expected}, got ${describe(at.node)}`);
  return undefined;
}

/** Builds a {@link Parser} from a function and its `expected` description. */
export function parser<T>(expected: string, parse: (at: At) => T | undefined): Parser<T> {
  return Object.assign(parse, { expected });
}

/**
 * A parser of scalar text. Plain numbers and booleans are read by their source text, so a client
 * named `2024` stays "2024". `conv` returns undefined for the generic message, or a
 * {@link Refusal} with a more specific one.
 */
export function text<T>(
  expected: string,
  conv: (s: string, at: At) => T | Refusal | undefined,
): Parser<T> {
  return parser(expected, (at) => {
    const n = at.node;
    if (!isScalar(n) || n.value === null) return fail(at, expected);
    const s = typeof n.value === "string" ? n.value : n.source ?? String(n.value);
    const r = conv(s, at);
    if (r instanceof Refusal) {
      at.ctx.report(at.offset, at.path, r.message);
      return undefined;
    }
    return r === undefined ? fail(at, expected) : r;
  });
}

/** `true` or `false` (YAML 1.2: `yes`/`on` are strings, and refused here). */
export const bool: Parser<boolean> = parser("true or false", (at) => {
  const v = isScalar(at.node) ? at.node.value : undefined;
  return typeof v === "boolean" ? v : fail(at, "true or false");
});

/** An integer from `min` to `max`. */
export function int(min: number, max: number): Parser<number> {
  const expected = `an integer from ${min} to ${max}`;
  return parser(expected, (at) => {
    const v = isScalar(at.node) ? at.node.value : undefined;
    return Number.isInteger(v) && (v as number) >= min && (v as number) <= max
      ? (v as number)
      : fail(at, expected);
  });
}

/** A duration in milliseconds (see {@link parseDuration}). */
export const duration: Parser<number> = parser(
  "a duration such as 10s, 1500ms, 2m or a number of seconds",
  (at) =>
    parseDuration(isScalar(at.node) ? at.node.value : undefined) ?? fail(at, duration.expected),
);

/** One of a fixed set of words, suggesting the closest one on a near miss. */
export function oneOf<W extends string>(words: readonly W[]): Parser<W> {
  const expected = `one of ${words.join(", ")}`;
  return text(expected, (s) => {
    if ((words as readonly string[]).includes(s)) return s as W;
    const near = suggest(s, words);
    return near
      ? new Refusal(`expected ${expected}, got ${JSON.stringify(s)}; did you mean ` + `"${near}"?`)
      : undefined;
  });
}

/** A non-empty path; relative paths resolve against the config file's directory. */
export const filePath: Parser<string> = text(
  "a file path",
  (s, at) => s === "" ? undefined : at.ctx.resolvePath(s),
);

/** A network interface name as Linux accepts it: 1-15 characters of `A-Za-z0-9_.-`. */
export const ifName: Parser<string> = text(
  "an interface name of 1-15 letters, digits or _.- such as xvpn0",
  (s) => /^[A-Za-z0-9_.-]{1,15}$/.test(s) && s !== "." && s !== ".." ? s : undefined,
);

/** A dotted-quad IPv4 address as a u32. */
export const ipv4: Parser<number> = text("an IPv4 address such as 10.7.0.2", (s) => parseIPv4(s));

/**
 * An IPv4 CIDR such as `10.7.0.0/24` (a bare address is refused: write `/32` when meant), with a
 * prefix of at most `maxPrefix`. Host bits must be clear: `ip route` refuses `10.1.2.3/16`
 * anyway, and it is more often a typo for a host address than meant as a network.
 */
export function cidr(maxPrefix = 32, why = ""): Parser<Cidr> {
  return text("an IPv4 CIDR such as 10.7.0.0/24", (s) => {
    const c = parseCidr(s);
    if (!c || !s.includes("/")) return undefined;
    if (c.prefix > maxPrefix) {
      return new Refusal(
        `expected a prefix of at most /${maxPrefix}${why}, got ${JSON.stringify(s)}`,
      );
    }
    if (networkOf(c) !== c.addr) {
      return new Refusal(
        `expected a network address, got ${JSON.stringify(s)} which has host bits set; ` +
          `did you mean ${formatCidr(c)}?`,
      );
    }
    return c;
  });
}

/** An IPv4 or IPv6 CIDR (host bits clear), tagged with its family. */
export type AnyCidr = { v6: false; c: Cidr } | { v6: true; c: Cidr6 };

/** An IPv4 CIDR as {@link cidr} reads it, or an IPv6 one such as `::/0` or `2001:db8::/32`. */
export const cidr46: Parser<AnyCidr> = (() => {
  const expected = "an IPv4 or IPv6 CIDR such as 10.7.0.0/24 or ::/0";
  const v4 = cidr();
  const v6 = text(expected, (s): Cidr6 | Refusal | undefined => {
    const c = parseCidr6(s);
    if (!c || !s.includes("/")) return undefined;
    if (!network6(c).every((b, i) => b === c.addr[i])) {
      return new Refusal(
        `expected a network address, got ${JSON.stringify(s)} which has host bits set; ` +
          `did you mean ${formatCidr6(c)}?`,
      );
    }
    return c;
  });
  return parser(expected, (at): AnyCidr | undefined => {
    const n = at.node;
    const str = isScalar(n) && typeof n.value === "string" ? n.value : "";
    if (!str.includes(":")) {
      const c = v4(at);
      return c && { v6: false, c };
    }
    const c = v6(at);
    return c && { v6: true, c };
  });
})();

/** An IPv6 pool such as `fd00:77::/64`: a prefix of /64 to /96 (the low 32 bits number the
 * clients, after their IPv4 addresses), host bits clear. */
export const pool6: Parser<Cidr6> = text(
  "an IPv6 prefix of /64 to /96 such as fd00:77::/64",
  (s) => {
    const c = parseCidr6(s);
    if (!c || !s.includes("/")) return undefined;
    if (c.prefix < 64 || c.prefix > 96) {
      return new Refusal(`expected a prefix of /64 to /96, got ${JSON.stringify(s)}`);
    }
    if (!network6(c).every((b, i) => b === c.addr[i])) {
      return new Refusal(
        `expected a network address, got ${JSON.stringify(s)}; did you mean ${formatCidr6(c)}?`,
      );
    }
    return c;
  },
);

/** Text of an {@link AnyCidr}, for duplicate checks and messages. */
export function formatCidr46(a: AnyCidr): string {
  return a.v6 ? formatCidr6(a.c) : formatCidr(a.c);
}

/** An IPv4 address (u32) or an IPv6 one (16 bytes). */
export type AnyIp = { v6: false; ip: number } | { v6: true; ip: Uint8Array };

/** An IPv4 or IPv6 address. */
export const ip46: Parser<AnyIp> = text(
  "an IPv4 or IPv6 address such as 1.1.1.1 or 2606:4700::1111",
  (s) => {
    const v4 = parseIPv4(s);
    if (v4 !== undefined) return { v6: false, ip: v4 };
    const v6 = s.includes(":") ? parseIPv6(s) : undefined;
    return v6 && !s.includes("%") ? { v6: true, ip: v6 } : undefined;
  },
);

/** Text of an {@link AnyIp}. */
export function formatIp46(a: AnyIp): string {
  return a.v6 ? formatIPv6(a.ip) : formatIPv4(a.ip);
}

/** Splits a mixed list of prefixes by family. */
export function splitCidrs(list: readonly AnyCidr[]): { v4: Cidr[]; v6: Cidr6[] } {
  const v4: Cidr[] = [], v6: Cidr6[] = [];
  for (const a of list) a.v6 ? v6.push(a.c) : v4.push(a.c);
  return { v4, v6 };
}

/** What a key field expects, for messages. */
export const KEY_EXPECTED = "a base64 key of 32 bytes (44 characters, as printed by xvpn genkey)";

/** A base64 X25519 public key. */
export const key: Parser<Uint8Array> = text(KEY_EXPECTED, (s) => decodeKey(s));

/** A base64 X25519 private key; a bad one is never echoed, since it may be nearly right. */
export const secretKey: Parser<Uint8Array> = text(KEY_EXPECTED, (s) =>
  decodeKey(s) ??
    new Refusal(`expected ${KEY_EXPECTED}, got ${s.length} characters (not shown: it is secret)`));

/** A path to a file holding a base64 X25519 key; the file is read (and trimmed) right away. */
export const keyFile: Parser<Uint8Array> = text("a path to a key file", (s, at) => {
  if (s === "") return undefined;
  const path = at.ctx.resolvePath(s);
  let content: string;
  try {
    content = at.ctx.readFile(path);
  } catch (e) {
    return new Refusal(`cannot read key file "${path}": ${e instanceof Error ? e.message : e}`);
  }
  return decodeKey(content.trim()) ??
    new Refusal(`key file "${path}" does not hold ${KEY_EXPECTED}`);
});

/**
 * A `host:port` endpoint. The server listens on an IPv4 address, an IPv6 one in brackets, or
 * `[::]` (all addresses, IPv4 included: dual stack); the client may also name the server by
 * hostname. A bracketed host is returned bare, in RFC 5952 form.
 */
export function endpoint(allowHostname: boolean): Parser<{ host: string; port: number }> {
  const expected = allowHostname
    ? "host:port such as vpn.example.com:51820 (port 1-65535)"
    : "address:port such as 0.0.0.0:51820 or [::]:51820 (port 1-65535)";
  return text(expected, (s) => {
    const m = /^(?:\[([^\]]*)\]|([^:[\]]+)):(\d{1,5})$/.exec(s);
    if (!m) return undefined;
    const port = Number(m[3]);
    if (port < 1 || port > 65535) return undefined;
    if (m[1] !== undefined) {
      const v6 = parseIPv6(m[1]);
      return v6 && !m[1].includes("%") ? { host: formatIPv6(v6), port } : undefined;
    }
    const host = m[2]!;
    if (parseIPv4(host) !== undefined) return { host, port };
    // Digits-and-dots that failed as IPv4 (`10.0.0.300`) are a typo, not a hostname.
    if (!allowHostname || /^[\d.]+$/.test(host) || !isHostname(host)) return undefined;
    return { host, port };
  });
}

function isHostname(s: string): boolean {
  const label = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
  return s.length <= 253 && new RegExp(`^${label}(?:\\.${label})*\\.?$`).test(s);
}

/** The items of a YAML list, each as an {@link At}; records an issue if the node is not a list. */
export function items(at: At, expected: string): At[] | undefined {
  const n = at.node;
  if (!isSeq(n)) return fail(at, expected);
  return n.items.map((raw, i) => {
    const node = at.ctx.resolve(raw);
    return { ctx: at.ctx, node, path: `${at.path}[${i}]`, offset: offsetOf(node) ?? at.offset };
  });
}

/** A list of values of one kind. Repeated values are refused: they are almost always typos. */
export function list<T>(expected: string, item: Parser<T>, show: (v: T) => string): Parser<T[]> {
  return parser(expected, (at) => {
    const all = items(at, expected);
    if (!all) return undefined;
    const out: T[] = [];
    const seen = new Map<string, At>();
    for (const it of all) {
      const v = item(it);
      if (v === undefined) continue;
      const first = seen.get(show(v));
      if (first) {
        const line = at.ctx.lineOf(first.offset);
        at.ctx.report(it.offset, it.path, `${show(v)} is already listed at line ${line}`);
        continue;
      }
      seen.set(show(v), it);
      out.push(v);
    }
    return out;
  });
}

/** One setting of a mapping: how to parse it and whether it must be present. */
export interface Field<T> {
  /** Parser of the value. */
  parse: Parser<T>;
  /** True when a missing key is an error. */
  required: boolean;
}

/** A required setting. */
export function req<T>(parse: Parser<T>): Field<T> {
  return { parse, required: true };
}

/** An optional setting (absent or empty means the caller's default). */
export function opt<T>(parse: Parser<T>): Field<T> {
  return { parse, required: false };
}

/** The settings of one mapping, keyed by their YAML names. */
export type Spec = Record<string, Field<unknown>>;

/** Parsed values of a {@link Spec}; undefined when absent or invalid. */
export type Values<S extends Spec> = {
  [K in keyof S]: S[K] extends Field<infer T> ? T | undefined : never;
};

/** Result of {@link readMap}: the parsed values and where each key's value sits. */
export interface MapRead<S extends Spec> {
  /** Parsed values. */
  values: Values<S>;
  /** Position of each present (non-empty) key's value. */
  at: Partial<Record<keyof S, At>>;
  /** Position of the key itself, for issues about the key rather than its value. */
  keyAt: Partial<Record<keyof S, At>>;
}

/**
 * Reads a mapping against a spec: parses known keys, refuses unknown ones (with a suggestion),
 * and reports missing required keys at the mapping itself. Returns undefined if not a mapping.
 */
export function readMap<S extends Spec>(at: At, spec: S, expected: string): MapRead<S> | undefined {
  const n = at.node;
  if (!isMap(n)) return fail(at, expected);
  const values: Record<string, unknown> = {};
  const where: Record<string, At> = {};
  const keyWhere: Record<string, At> = {};
  const join = (k: string) => (at.path ? `${at.path}.${k}` : k);
  for (const pair of n.items) {
    const k = at.ctx.resolve(pair.key);
    const keyOffset = offsetOf(k) ?? at.offset;
    if (!isScalar(k) || typeof k.value !== "string") {
      at.ctx.report(keyOffset, at.path, `expected a setting name, got ${describe(k)}`);
      continue;
    }
    const name = k.value;
    const field = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (!field) {
      const near = suggest(name, Object.keys(spec));
      at.ctx.report(
        keyOffset,
        join(name),
        near
          ? `unknown key; did you mean "${near}"?`
          : `unknown key; expected one of ${Object.keys(spec).join(", ")}`,
      );
      continue;
    }
    const node = at.ctx.resolve(pair.value);
    const empty = node === null || (isScalar(node) && node.value === null);
    // `key:` with no value: point at the key, since the empty value has no useful position.
    const v: At = {
      ctx: at.ctx,
      node,
      path: join(name),
      offset: empty ? keyOffset : offsetOf(node) ?? keyOffset,
    };
    // An empty optional setting means "use the default", exactly like leaving it out.
    if (empty && !field.required) continue;
    where[name] = v;
    keyWhere[name] = { ...v, offset: keyOffset };
    values[name] = field.parse(v);
  }
  for (const [name, field] of Object.entries(spec)) {
    if (field.required && !(name in where)) {
      at.ctx.report(
        at.offset,
        join(name),
        `missing required key; expected ${field.parse.expected}`,
      );
    }
  }
  return {
    values: values as Values<S>,
    at: where as MapRead<S>["at"],
    keyAt: keyWhere as MapRead<S>["at"],
  };
}

/** A nested mapping as a parser: undefined (with issues recorded) if any of its settings fail. */
export function struct<S extends Spec>(spec: S, expected: string): Parser<Values<S>> {
  return parser(expected, (at) => {
    const before = at.ctx.issues.length;
    const r = readMap(at, spec, expected);
    return r && at.ctx.issues.length === before ? r.values : undefined;
  });
}

function offsetOf(node: unknown): number | undefined {
  const range = (node as { range?: [number, number, number] } | null)?.range;
  return range?.[0];
}

/**
 * The known word closest to `word`, if close enough to be a likely typo: the same letters ignoring
 * case, `_` and `-` (so `privateKey` finds `private_key`), a prefix of it (`warn` finds
 * `warning`), or within an edit distance of a third of its length (at least 1), counting a swap
 * of neighbours as one edit.
 */
export function suggest(word: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_]/g, "");
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestScore = Infinity;
  for (const k of known) {
    const d = norm(k) === norm(word)
      ? 0
      : w.length >= 3 && k.startsWith(w)
      ? 1
      : editDistance(w, k);
    if (d < bestScore && d <= Math.max(1, Math.floor(k.length / 3))) {
      best = k;
      bestScore = d;
    }
  }
  return best;
}

/** Optimal string alignment distance: insertions, deletions, substitutions, adjacent swaps. */
function editDistance(a: string, b: string): number {
  const d: number[][] = [];
  for (let i = 0; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        row.push(j);
        continue;
      }
      const up = d[i - 1]!;
      let v = Math.min(up[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1), up[j]! + 1, row[j - 1]! + 1);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      }
      row.push(v);
    }
    d.push(row);
  }
  return d[a.length]![b.length]!;
}

/**
 * Parses YAML text into the root {@link At} of the document. Syntax errors are thrown at once as
 * a {@link ConfigError}: checking settings of a half-parsed document would only add noise.
 */
export function openDocument(text: string, file: string, readFile: ReadFile): At {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  const ctx = new Ctx(file, readFile, lines, doc);
  for (const e of [...doc.errors, ...doc.warnings]) {
    ctx.report(e.pos[0], "", `YAML syntax: ${e.message.split("\n")[0]}`);
  }
  // The parser only notices an alias without an anchor when converting to JS, so look here.
  visit(doc, {
    Alias(_, alias) {
      if (alias.resolve(doc) === undefined) {
        ctx.report(
          alias.range?.[0] ?? 0,
          "",
          `YAML syntax: alias *${alias.source} names no anchor`,
        );
      }
    },
  });
  ctx.finish();
  const root = doc.contents;
  return { ctx, node: root, path: "", offset: offsetOf(root) ?? 0 };
}
