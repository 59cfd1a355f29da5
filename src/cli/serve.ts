/**
 * `xvpn serve --config server.yaml`.
 *
 * @module
 */
import { loadServerConfig } from "../config/mod.ts";
import { ProcessRunner } from "../io/command.ts";
import { logger, setupLogging } from "../log.ts";
import { keyFileWarning } from "../config/secrets.ts";
import { runServer } from "../runtime/server.ts";
import { shutdownSignal } from "../runtime/signals.ts";

/** Loads the config (refusing a bad file before touching anything) and runs the server. */
export async function serve(configPath: string): Promise<number> {
  const cfg = await loadServerConfig(configPath);
  setupLogging(cfg.log);
  const warning = keyFileWarning(cfg.keySource);
  if (warning) logger("server").warn(warning);
  const { signal, dispose } = shutdownSignal();
  try {
    await runServer(cfg, { runner: new ProcessRunner(), signal });
  } finally {
    dispose();
  }
  return 0;
}
