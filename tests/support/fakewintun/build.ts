/**
 * Builds the fake wintun (`wintun_fake.c`) into a shared library with the system's gcc, once
 * per content: the library goes under the OS temp dir, named by a hash of the source and the
 * compiler flags, so test runs reuse it and a changed source gets a fresh build.
 *
 * @module
 */
import { createHash } from "node:crypto";

const SOURCE = new URL("./wintun_fake.c", import.meta.url);
const FLAGS = ["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden"];

function tempDir(): string {
  return Deno.env.get("TMPDIR") || "/tmp";
}

/** Compiles the fake (or finds the cached build) and returns the path of the `.so`. */
export async function buildFakeWintun(): Promise<string> {
  const source = await Deno.readFile(SOURCE);
  const hash = createHash("sha256").update(source).update(FLAGS.join(" ")).digest("hex");
  const dir = `${tempDir()}/xvpn-fakewintun-${hash.slice(0, 16)}`;
  const lib = `${dir}/libwintun_fake.so`;
  try {
    if ((await Deno.stat(lib)).isFile) return lib;
  } catch {
    // not built yet
  }
  await Deno.mkdir(dir, { recursive: true });
  // Built under a temporary name and renamed: a concurrent run never loads a half-written file.
  const partial = `${lib}.${Deno.pid}.tmp`;
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("gcc", {
      args: [...FLAGS, "-o", partial, SOURCE.pathname],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(
        "gcc not found: the fake wintun is compiled by the test; install gcc and libc6-dev " +
          "(scripts/setup.sh does, as root)",
      );
    }
    throw err;
  }
  if (!out.success) {
    await Deno.remove(partial).catch(() => {});
    throw new Error(
      `gcc failed to build ${SOURCE.pathname}:\n${new TextDecoder().decode(out.stderr)}`,
    );
  }
  await Deno.rename(partial, lib);
  return lib;
}
