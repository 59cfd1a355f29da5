/**
 * Config files of `xvpn serve` and `xvpn connect`: YAML in, validated typed settings out, or one
 * {@link ConfigError} listing every mistake with file, line, column and key path.
 *
 * @module
 */
export { ConfigError, type ConfigIssue, formatIssue } from "./errors.ts";
export { formatDuration, parseDuration } from "./duration.ts";
export {
  DATA_PATHS,
  type DataPath,
  type Endpoint,
  LOG_LEVELS,
  type LogConfig,
  type LogLevel,
} from "./common.ts";
export {
  DEFAULT_KEEPALIVE_MS,
  DEFAULT_MTU,
  DEFAULT_SESSION_TIMEOUT_MS,
  DEFAULT_TUN_NAME,
  parseServerConfig,
  serverAddress,
  type ServerClient,
  type ServerConfig,
} from "./server.ts";
export { type ClientConfig, parseClientConfig } from "./client.ts";
export { loadClientConfig, loadServerConfig } from "./load.ts";
export type { ReadFile } from "./schema.ts";
