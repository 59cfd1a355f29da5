/**
 * The layering, checked (tailscale's `tstest/deptest`): the import graph of every non-test file
 * and a few things the sans-I/O core must never do. `*_test.ts` files are exempt (tests may
 * reach across layers to set things up).
 *
 * - `src/core/` is synchronous and does no I/O: no `Deno.`, `await`, timers, `Date.now` or
 *   `performance.now`; it imports only itself, `src/lib/` and the AEAD's type.
 * - `src/lib/` (IP addresses, checksums, endpoints) imports nothing else of the project.
 * - `src/io/` imports nothing of the protocol: only itself and `src/lib/`.
 * - `src/cli/` is imported only by `main.ts`, by itself, and by `src/demo/` (for `self.ts`;
 *   tests and benchmarks start xvpn through `src/demo/`).
 * - Nothing in `src/` imports `tests/`.
 * - No file reads outside the repository (a fresh clone has nothing beside it).
 */
import { assert, assertEquals } from "./support/assert.ts";

const ROOT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");

/** Every .ts file under `dir` (relative to the repository). */
function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`${ROOT}/${dir}`)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...walk(p));
    else if (e.name.endsWith(".ts")) out.push(p);
  }
  return out;
}

/** Source without comments and string contents (so that prose never matches a rule). */
function codeOnly(text: string): string {
  return text
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:"'`])\/\/.*$/gm, "$1")
    .replace(/`(?:\\.|[^`\\])*`/g, "``")
    .replace(/"(?:\\.|[^"\\\n])*"/g, '""')
    .replace(/'(?:\\.|[^'\\\n])*'/g, "''");
}

interface Import {
  /** The specifier as written. */
  spec: string;
  /** Repository-relative path for a relative specifier. */
  target?: string;
  /** `import type` / `export type`. */
  typeOnly: boolean;
}

/** Normalizes `a/b/../c` to `a/c`; a path above the repository keeps its leading `..`. */
function normalize(path: string): string {
  const out: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === ".." && out.length > 0 && out[out.length - 1] !== "..") out.pop();
    else out.push(part);
  }
  return out.join("/");
}

function importsOf(file: string): Import[] {
  const text = Deno.readTextFileSync(`${ROOT}/${file}`);
  const dir = file.includes("/") ? file.slice(0, file.lastIndexOf("/")) : "";
  const out: Import[] = [];
  const re =
    /(?:^|\n)\s*(import|export)\s+(type\s+)?(?:[^"';]*?\sfrom\s+)?["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|new URL\(\s*["']([^"']+)["']\s*,\s*import\.meta\.url/g;
  for (const m of text.matchAll(re)) {
    const spec = m[3] ?? m[4] ?? m[5]!;
    const typeOnly = m[2] !== undefined;
    const target = spec.startsWith(".") ? normalize(`${dir}/${spec}`) : undefined;
    out.push({ spec, target, typeOnly });
  }
  return out;
}

const SRC = walk("src").filter((f) => !f.endsWith("_test.ts"));
const ALL = [...walk("src"), ...walk("tests"), ...walk("bench"), "main.ts"];

const under = (p: string | undefined, dir: string) => p !== undefined && p.startsWith(`${dir}/`);

/** Breaks of one rule, as `file: what`. */
function breaks(files: string[], bad: (f: string, i: Import) => boolean): string[] {
  return files.flatMap((f) =>
    importsOf(f).filter((i) => bad(f, i)).map((i) => `${f}: imports ${i.spec}`)
  );
}

Deno.test("layering: src/core/ does no I/O, awaits nothing and reads no clock", () => {
  const rules: [RegExp, string][] = [
    [/\bDeno\./, "Deno."],
    [/\bawait\b/, "await"],
    [/\bset(Timeout|Interval|Immediate)\s*\(/, "a timer"],
    [/\bDate\.now\b/, "Date.now"],
    [/\bperformance\.now\b/, "performance.now"],
    [/\basync\s+(function|\()/, "async"],
  ];
  const found: string[] = [];
  for (const f of SRC.filter((f) => f.startsWith("src/core/"))) {
    const code = codeOnly(Deno.readTextFileSync(`${ROOT}/${f}`));
    for (const [re, what] of rules) if (re.test(code)) found.push(`${f}: ${what}`);
  }
  assertEquals(found, []);
});

Deno.test("layering: src/core/ imports only itself, src/lib/, npm crypto and the AEAD type", () => {
  const core = SRC.filter((f) => f.startsWith("src/core/"));
  assert(core.length > 10, "the walk found the core");
  assertEquals(
    breaks(core, (_f, i) => {
      if (i.target === undefined) return !i.spec.startsWith("@noble/");
      if (under(i.target, "src/core") || under(i.target, "src/lib")) return false;
      return !(i.typeOnly && i.target === "src/crypto/aead.ts");
    }),
    [],
  );
});

Deno.test("layering: src/lib/ imports nothing else of the project", () => {
  assertEquals(
    breaks(SRC.filter((f) => f.startsWith("src/lib/")), (_f, i) => !under(i.target, "src/lib")),
    [],
  );
});

Deno.test("layering: src/io/ imports nothing of the protocol (only itself and src/lib/)", () => {
  assertEquals(
    breaks(
      SRC.filter((f) => f.startsWith("src/io/")),
      (_f, i) =>
        i.target !== undefined && !under(i.target, "src/io") && !under(i.target, "src/lib"),
    ),
    [],
  );
});

Deno.test("layering: only main.ts, src/cli/ and src/demo/ (for self.ts) import src/cli/", () => {
  const files = [...SRC, "main.ts", ...walk("bench"), ...walk("tests")].filter((f) =>
    !f.endsWith("_test.ts")
  );
  assertEquals(
    breaks(files, (f, i) => {
      if (!under(i.target, "src/cli")) return false;
      if (f === "main.ts" || f.startsWith("src/cli/")) return false;
      return !(f.startsWith("src/demo/") && i.target === "src/cli/self.ts");
    }),
    [],
  );
});

Deno.test("layering: nothing in src/ imports tests/", () => {
  assertEquals(breaks(SRC, (_f, i) => under(i.target, "tests")), []);
});

Deno.test("layering: no file reaches outside the repository", () => {
  const outside = ALL.flatMap((f) =>
    importsOf(f).filter((i) => i.target?.startsWith("..")).map((i) => `${f}: ${i.spec}`)
  );
  assertEquals(outside, []);
  const literal = ALL.filter((f) => f !== "tests/layering_test.ts").filter((f) =>
    /\.\.\/shared\/|\/work\/shared/.test(Deno.readTextFileSync(`${ROOT}/${f}`))
  );
  assertEquals(literal, [], "no path to the workplace's shared folder");
});
