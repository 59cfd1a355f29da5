/**
 * `xvpn connect --config client.yaml`.
 *
 * @module
 */
import { loadClientConfig } from "../config/mod.ts";
import { ProcessRunner } from "../io/command.ts";
import { logger, setupLogging } from "../log.ts";
import { keyFileWarning } from "../config/secrets.ts";
import { runClient } from "../runtime/client.ts";
import { shutdownSignal } from "../runtime/signals.ts";

/** Loads the config and runs the client until Ctrl-C or a refusal. */
export async function connect(configPath: string): Promise<number> {
  const cfg = await loadClientConfig(configPath);
  setupLogging(cfg.log);
  const warning = keyFileWarning(cfg.keySource);
  if (warning) logger("client").warn(warning);
  const { signal, dispose } = shutdownSignal();
  try {
    const exit = await runClient(cfg, { runner: new ProcessRunner(), signal });
    if (exit.code !== 0) throw new Error(exit.reason);
  } finally {
    dispose();
  }
  return 0;
}
