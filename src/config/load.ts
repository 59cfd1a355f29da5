/**
 * Reading config files from disk. Parsing itself lives in `server.ts` / `client.ts` and is pure,
 * apart from reading referenced key files.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import { type ClientConfig, parseClientConfig } from "./client.ts";
import { parseServerConfig, type ServerConfig } from "./server.ts";

async function readConfig(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new ConfigError(path, [{ line: 0, column: 0, path: "", message: `cannot read: ${why}` }]);
  }
}

/**
 * Reads and validates a server config file.
 *
 * @throws {ConfigError} naming the file and the OS error if it is unreadable, or listing every
 * mistake in it.
 */
export async function loadServerConfig(path: string): Promise<ServerConfig> {
  return parseServerConfig(await readConfig(path), path);
}

/**
 * Reads and validates a client config file.
 *
 * @throws {ConfigError} naming the file and the OS error if it is unreadable, or listing every
 * mistake in it.
 */
export async function loadClientConfig(path: string): Promise<ClientConfig> {
  return parseClientConfig(await readConfig(path), path);
}
