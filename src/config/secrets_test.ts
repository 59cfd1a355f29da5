import { assert, assertEquals } from "../../tests/support/assert.ts";
import { keyFileWarning, scrubKeys } from "./secrets.ts";
import { encodeKey, generatePrivateKey } from "../core/keys.ts";
import { parseClientConfig } from "./client.ts";
import { ConfigError } from "./errors.ts";

Deno.test("keyFileWarning() warns for a key file group or others can read, as wg does", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/server.key`;
    await Deno.writeTextFile(path, encodeKey(generatePrivateKey()) + "\n");
    await Deno.chmod(path, 0o644); // what `xvpn genkey > server.key` makes under umask 022
    const w = keyFileWarning(path);
    assert(w, "a 0644 key file gets a warning");
    assert(w.includes("mode 0644") && w.includes(`chmod 600 ${path}`), w);
    await Deno.chmod(path, 0o600);
    assertEquals(keyFileWarning(path), undefined);
    await Deno.chmod(path, 0o640);
    assert(keyFileWarning(path), "group-readable too");
    assertEquals(keyFileWarning(`${dir}/missing.key`), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scrubKeys() hides anything that decodes as a key, and only that", () => {
  const k = encodeKey(generatePrivateKey());
  assertEquals(scrubKeys(`got "${k}" here`), `got "<a key, not shown>" here`);
  assertEquals(scrubKeys("expected a duration, got 10x"), "expected a duration, got 10x");
});

Deno.test("a private key pasted into the wrong field is never echoed in the config error", () => {
  const k = encodeKey(generatePrivateKey());
  const text = `server: ${k}\nserver_public_key: ${encodeKey(generatePrivateKey())}\n` +
    `private_key: ${encodeKey(generatePrivateKey())}\n`;
  let err: unknown;
  try {
    parseClientConfig(text, "client.yaml");
  } catch (e) {
    err = e;
  }
  assert(err instanceof ConfigError, "the bad server field is an error");
  assert(err.message.includes("client.yaml:1"), err.message);
  assert(err.message.includes("server"), err.message);
  assert(!err.message.includes(k), `the key is not shown: ${err.message}`);
});
