import { deepStrictEqual as eq, ok } from "node:assert/strict";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../core/keys.ts";
import { ConfigError } from "./errors.ts";
import { loadClientConfig, loadServerConfig } from "./load.ts";

const examples = new URL("../../docs/examples/", import.meta.url).pathname;

Deno.test("load: both example files parse and belong together", async () => {
  const server = await loadServerConfig(`${examples}server.yaml`);
  const client = await loadClientConfig(`${examples}client.yaml`);
  eq(encodeKey(publicKeyOf(server.privateKey)), encodeKey(client.serverPublicKey));
  const laptop = server.clients.find((c) => c.name === "laptop");
  eq(laptop && encodeKey(laptop.publicKey), encodeKey(publicKeyOf(client.privateKey)));
  eq(server.clients.length, 2);
  eq(client.server, { host: "vpn.example.com", port: 51820 });
});

Deno.test("load: an unreadable file names the file and the OS error", async () => {
  const path = "/nonexistent/xvpn/server.yaml";
  let e: unknown;
  try {
    await loadServerConfig(path);
  } catch (err) {
    e = err;
  }
  ok(e instanceof ConfigError);
  eq(e.file, path);
  ok(e.message.startsWith(`${path}: cannot read: `), e.message);
  ok(e.message.includes("No such file or directory"), e.message);
});

Deno.test("load: private_key_file resolves against the config file's directory", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const key = generatePrivateKey();
    await Deno.writeTextFile(`${dir}/client.key`, `${encodeKey(key)}\n`);
    await Deno.writeTextFile(
      `${dir}/client.yaml`,
      `server: vpn.example.com:51820
server_public_key: ${encodeKey(publicKeyOf(generatePrivateKey()))}
private_key_file: client.key
`,
    );
    const c = await loadClientConfig(`${dir}/client.yaml`);
    eq(c.privateKey, key);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
