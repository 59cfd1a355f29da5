/**
 * `xvpn ping --config client.yaml`: RTT p50/p99, jitter and loss to every node of the config at
 * once, over authenticated diagnostic sessions (no address taken, a running tunnel untouched).
 *
 * @module
 */
import { loadClientConfig } from "../config/mod.ts";
import { type NodeResult, pingNodes } from "../diag/nodes.ts";
import { intFlag, parseFlags } from "./flags.ts";
import { UsageError } from "./report.ts";

/** Runs `xvpn ping`; exit 0 when some node answered, 1 when none did. */
export async function ping(args: string[]): Promise<number> {
  const p = parseFlags("ping", args, {
    config: { kind: "string", short: "c" },
    count: { kind: "string", short: "n" },
    interval: { kind: "string", short: "i" },
    json: { kind: "bool" },
  });
  if (p.positional.length) throw new UsageError(`ping: unexpected argument "${p.positional[0]}"`);
  if (typeof p.flags.config !== "string") throw new UsageError("ping: --config <file> is required");
  const count = intFlag("ping", p, "count", 10, 1, 10_000);
  const intervalMs = intFlag("ping", p, "interval", 200, 10, 60_000);
  const cfg = await loadClientConfig(p.flags.config);
  const results = await pingNodes(
    cfg.nodes.map((n) => ({
      name: n.name,
      region: n.region,
      host: n.server.host,
      port: n.server.port,
      publicKey: n.publicKey,
    })),
    { privateKey: cfg.privateKey, count, intervalMs },
  );
  const best = [...results].filter((r) => r.reachable).sort((a, b) => a.score - b.score)[0];
  if (p.flags.json) {
    console.log(JSON.stringify(
      {
        format: 1,
        count,
        interval_ms: intervalMs,
        best: best?.name ?? null,
        nodes: results.map(jsonOf),
      },
      null,
      2,
    ));
  } else {
    console.log(formatPing(results, best?.name));
  }
  return best ? 0 : 1;
}

/** One node in `--json` (snake_case, stable; documented in the README). */
function jsonOf(r: NodeResult): Record<string, unknown> {
  return {
    name: r.name,
    region: r.region ?? null,
    endpoint: r.endpoint,
    reachable: r.reachable,
    error: r.error ?? null,
    handshake_ms: r.handshakeMs,
    p50_ms: r.rtt.p50Ms,
    p99_ms: r.rtt.p99Ms,
    min_ms: r.rtt.minMs,
    jitter_ms: r.rtt.jitterMs,
    loss_pct: r.rtt.lossPct,
    sent: r.rtt.sent,
    answered: r.rtt.answered,
    score: Number.isFinite(r.score) ? Math.round(r.score * 100) / 100 : null,
  };
}

/** The table `xvpn ping` prints, best node marked. */
export function formatPing(results: NodeResult[], best?: string): string {
  const ms = (v: number) => (v < 0 ? "-" : v.toFixed(1));
  const rows = [["", "node", "endpoint", "p50", "p99", "jitter", "loss", "score"]];
  for (const r of results) {
    rows.push([
      r.name === best ? "*" : "",
      r.region ? `${r.name} (${r.region})` : r.name,
      r.endpoint,
      ms(r.rtt.p50Ms),
      ms(r.rtt.p99Ms),
      ms(r.rtt.jitterMs),
      r.reachable ? `${r.rtt.lossPct}%` : "-",
      Number.isFinite(r.score) ? r.score.toFixed(1) : "-",
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  const lines = rows.map((row) =>
    row.map((cell, c) => (c >= 3 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join("  ")
      .trimEnd()
  );
  for (const r of results) if (r.error) lines.push(`${r.name}: ${r.error}`);
  lines.push(
    best
      ? `best: ${best} (times in ms; score = p50 + 2 x jitter + 10 ms per % loss)`
      : "no node answered",
  );
  return lines.join("\n");
}
