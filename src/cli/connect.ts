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
import { findProfile, type GameProfile } from "../config/profile.ts";
import { UsageError } from "./report.ts";

/** Loads the config (and the game profiles it and `--profile` name) and runs the client until
 * Ctrl-C or a refusal. */
export async function connect(
  configPath: string,
  opts: { profiles?: string[]; node?: string } = {},
): Promise<number> {
  const cfg = await loadClientConfig(configPath);
  // Every profile is found and checked before anything is touched.
  const names = [...new Set([...cfg.profiles, ...(opts.profiles ?? [])])];
  const profiles: GameProfile[] = [];
  for (const name of names) profiles.push(await findProfile(name));
  if (opts.node !== undefined && !cfg.nodes.some((n) => n.name === opts.node)) {
    throw new UsageError(
      `connect: --node ${opts.node}: no such node in ${configPath}; it has ${
        cfg.nodes.map((n) => n.name).join(", ")
      }`,
    );
  }
  setupLogging(cfg.log);
  const warning = keyFileWarning(cfg.keySource);
  if (warning) logger("client").warn(warning);
  const { signal, dispose } = shutdownSignal();
  try {
    const exit = await runClient(cfg, {
      runner: new ProcessRunner(),
      signal,
      profiles,
      ...(opts.node !== undefined ? { node: opts.node } : {}),
    });
    if (exit.code !== 0) throw new Error(exit.reason);
  } finally {
    dispose();
  }
  return 0;
}
