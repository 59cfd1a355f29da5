// The CLI of `xvpn profile`, called in-process with its output captured. Fixtures are written
// here with documentation ranges: no Netch or SSTap list is copied.
import { deepStrictEqual as eq, ok, rejects } from "node:assert/strict";
import { parseIPv4 } from "../lib/ip.ts";
import { loadProfile } from "../config/profile.ts";
import { ConfigError } from "../config/errors.ts";
import { FakeLearner } from "../io/learn/learner.ts";
import { PROFILE_HELP, profileCommand, type ProfileIo } from "./profile.ts";
import { UsageError } from "./report.ts";

/** Runs `xvpn profile ...args` and returns its exit code and output lines. */
async function run(args: string[], io: Partial<ProfileIo> = {}) {
  const out: string[] = [], err: string[] = [];
  const code = await profileCommand(args, {
    out: (l) => out.push(...l.split("\n")),
    err: (l) => err.push(l),
    ...io,
  });
  return { code, out, err };
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "xvpn-cli-profile-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("cli profile: import, then list and show what was written", async () => {
  await withTemp(async (dir) => {
    const mode = `${dir}/Test Game.txt`;
    await Deno.writeTextFile(
      mode,
      "# Test Game, 1\n192.0.2.0/24\n198.51.100.9/24\n2001:db8::/32\n",
    );
    const profiles = `${dir}/profiles`;
    const imp = await run(["import", mode, "--dir", profiles]);
    eq(imp.code, 0);
    eq(imp.out, [
      `wrote ${profiles}/test-game.yaml: 3 ranges, 0 domains, 0 ports`,
      "  note: 1 range(s) had host bits set and were narrowed to their network",
    ]);
    const written = await Deno.readTextFile(`${profiles}/test-game.yaml`);
    ok(written.startsWith(`# Imported by xvpn profile import from ${mode} (Netch text mode).\n`));
    ok(written.includes(`source: "imported from \\"${mode}\\" (Netch text mode)"`), written);
    eq((await loadProfile(`${profiles}/test-game.yaml`)).cidrs[1], {
      addr: parseIPv4("198.51.100.0")!,
      prefix: 24,
    });

    const listed = await run(["list", "--dir", profiles]);
    eq(listed.code, 0);
    ok(listed.out.some((l) => /^example\s+4 ranges, 1 domains, 1 ports: Example profile/.test(l)));
    ok(listed.out.includes(`           ${profiles}/test-game.yaml`), listed.out.join("\n"));
    ok(listed.out.some((l) => l.startsWith("test-game  3 ranges, 0 domains, 0 ports: Test Game")));

    const shown = await run(["show", "test-game", "--dir", profiles]);
    eq(shown.out.slice(0, 3), [
      `# ${profiles}/test-game.yaml: 3 ranges, 0 domains, 0 ports`,
      'name: "test-game"',
      'description: "Test Game"',
    ]);
    ok(shown.out.includes("  - 2001:db8::/32"));

    // A second import of the same name is refused, unless forced; --name renames.
    await rejects(run(["import", mode, "--dir", profiles]), (e: Error) => {
      ok(e instanceof UsageError && e.message.includes("exists; give --force"), e.message);
      return true;
    });
    eq((await run(["import", mode, "--dir", profiles, "--force"])).code, 0);
    eq(
      (await run(["import", mode, "--out", dir, "--name", "other"])).out[0]!,
      `wrote ${dir}/other.yaml: 3 ranges, 0 domains, 0 ports`,
    );
  });
});

Deno.test("cli profile: unknown names, bad files and bad usage are refused clearly", async () => {
  await withTemp(async (dir) => {
    await rejects(run(["show", "nothere", "--dir", dir]), (e: Error) => {
      ok(e instanceof UsageError, String(e));
      ok(
        e.message.includes('no profile named "nothere"') &&
          e.message.includes("available: example"),
      );
      return true;
    });
    await Deno.writeTextFile(`${dir}/bypass.txt`, "# Bypass, 2\n10.0.0.0/8\n");
    await rejects(run(["import", `${dir}/bypass.txt`, "--out", dir]), (e: Error) => {
      ok(e instanceof ConfigError && e.message.includes("type 2"), e.message);
      return true;
    });
    await rejects(run(["import", `${dir}/missing.rules`, "--out", dir]), /cannot read/);
    await rejects(run(["frobnicate"]), /unknown subcommand "frobnicate"/);
    await rejects(run(["show"]), /a profile NAME is required/);
    await rejects(run(["list", "extra"]), /unexpected argument "extra"/);
    await rejects(run(["list", "--pid", "3"]), /--pid does not apply here/);
    await rejects(run(["list", "--bogus"]), UsageError);
    await rejects(run(["learn", "--seconds", "5"]), /--pid N is required/);
    await rejects(run(["learn", "--pid", "x"]), /--pid must be an integer/);
    await rejects(run(["import", "f.txt", "--name", "../x"]), /--name must be/);
  });
});

Deno.test("cli profile: learn writes host routes of public addresses, private ones on request", async () => {
  await withTemp(async (dir) => {
    const learner = new FakeLearner({
      comm: "My Game",
      v4: ["198.51.100.7", "10.1.2.3", "192.0.2.1", "127.0.0.1"],
      v6: ["2001:db8::5", "fe80::1"],
      notes: ["cgroup method not used: test"],
    });
    const r = await run(["learn", "--pid", String(Deno.pid), "--seconds", "3", "--out", dir], {
      learner,
    });
    eq(learner.calls.map((c) => [c.pid, c.seconds]), [[Deno.pid, 3]]);
    const name = `learned-${
      (await Deno.readTextFile(`/proc/${Deno.pid}/comm`).catch(() => "")).trim().toLowerCase() ||
      Deno.pid
    }`;
    eq(r.out, [
      `wrote ${dir}/${name}.yaml: 3 ranges, 0 domains, 0 ports`,
      "  192.0.2.1/32",
      "  198.51.100.7/32",
      "  2001:db8::5/128",
    ]);
    ok(r.err.includes("  note: 1 private address(es) left out (--keep-private keeps them)"));
    ok(r.err.includes("  note: 2 loopback, link-local or multicast address(es) left out"));
    const p = await loadProfile(`${dir}/${name}.yaml`);
    ok(p.source?.startsWith(`learned by xvpn profile learn from pid ${Deno.pid} (My Game)`));

    const kept = await run(
      ["learn", "--pid", "1", "--name", "kept", "--keep-private", "--out", dir],
      { learner },
    );
    ok(kept.out.includes("  10.1.2.3/32") && !kept.out.includes("  127.0.0.1/32"));

    const empty = new FakeLearner({ v4: ["10.0.0.1"], v6: [] });
    await rejects(
      run(["learn", "--pid", "1", "--name", "none", "--out", dir], { learner: empty }),
      /learned no addresses from pid 1 .*1 private address\(es\) left out/,
    );
  });
});

Deno.test("cli profile: --help prints PROFILE_HELP", async () => {
  const r = await run(["--help"]);
  eq(r.out.join("\n"), PROFILE_HELP.trimEnd());
  eq((await run([])).out.join("\n"), PROFILE_HELP.trimEnd());
  for (const word of ["list", "show NAME", "import FILE", "learn --pid N", "--keep-private"]) {
    ok(PROFILE_HELP.includes(word), word);
  }
});
