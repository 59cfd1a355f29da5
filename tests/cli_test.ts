/**
 * The CLI as a black box: the real `main.ts` in a child process, exit codes and messages.
 */
import { assertEquals, assertStringIncludes } from "./support/assert.ts";
import { decodeKey, encodeKey, publicKeyOf } from "../src/core/keys.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function xvpn(args: string[], stdin?: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", MAIN, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("xvpn genkey | xvpn pubkey prints a key and its public key", async () => {
  const gen = await xvpn(["genkey"]);
  assertEquals(gen.code, 0);
  const priv = decodeKey(gen.stdout)!;
  const pub = await xvpn(["pubkey"], gen.stdout);
  assertEquals(pub.code, 0);
  assertEquals(pub.stdout.trim(), encodeKey(publicKeyOf(priv)));
  const bad = await xvpn(["pubkey"], "not a key\n");
  assertEquals(bad.code, 2);
  assertStringIncludes(bad.stderr, "expected a base64 private key");
});

Deno.test("xvpn usage mistakes exit 2 and say what is wrong", async () => {
  for (
    const [args, text] of [
      [["serve"], "--config <file> is required"],
      [["connect", "--bogus"], 'unknown option "--bogus"'],
      [["serve", "-c"], "-c needs a file"],
      [["frobnicate"], 'unknown command "frobnicate"'],
    ] as const
  ) {
    const r = await xvpn([...args]);
    assertEquals(r.code, 2, args.join(" "));
    assertStringIncludes(r.stderr, text);
  }
});

Deno.test("xvpn serve refuses a bad config with file, line, key and expectation, touching nothing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/server.yaml`;
    await Deno.writeTextFile(file, "listen: 0.0.0.0:51820\npool: 10.7.0.0/33\n");
    const r = await xvpn(["serve", `--config=${file}`]);
    assertEquals(r.code, 2);
    assertStringIncludes(r.stderr, `${file}:2:7: pool: expected an IPv4 CIDR`);
    assertStringIncludes(r.stderr, "private_key: missing required key");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
