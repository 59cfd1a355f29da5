/**
 * `xvpn diag mtu`: measures the path MTU to a running server, compares both TUN MTUs, and says
 * what to change.
 *
 * ```text
 * xvpn diag mtu --config client.yaml [--json] [--tries N] [--timeout MS]
 * xvpn diag mtu --server host:port --server-public-key KEY --private-key-file FILE [--tun NAME]
 *               [--no-tunnel-check]
 * ```
 *
 * Exit codes: 0 healthy, 1 a problem found (the verdict says which), 2 bad arguments or nothing
 * could be measured (no handshake, server unreachable); see `report.ts` for the first two.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadClientConfig } from "../config/mod.ts";
import { DEFAULT_TUN_NAME } from "../config/server.ts";
import { decodeKey } from "../core/keys.ts";
import { ProcessRunner } from "../io/command.ts";
import { resolveHost } from "../io/resolve.ts";
import { diagnoseMtu } from "../diag/mtu.ts";
import { type DiagPlatform, linuxDiagPlatform, windowsDiagPlatform } from "../diag/platform.ts";
import { WINTUN_DLL_ENV } from "../io/tun/wintun_dll.ts";
import { formatReport } from "../diag/mtu_report.ts";
import { DEFAULT_TRIES } from "../diag/search.ts";
import { EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UsageError } from "./report.ts";

/**
 * Exit code when nothing could be measured. Shares its value with {@link EXIT_USAGE}: either
 * way the command produced no answer, and scripts can tell that from a verdict (1).
 */
export const EXIT_UNMEASURED = EXIT_USAGE;

const DIAG_USAGE = "usage: xvpn diag mtu --config client.yaml [--json] [--tries N] " +
  "[--timeout MS], or --server host:port --server-public-key KEY --private-key-file FILE " +
  "[--tun NAME] instead of --config; --no-tunnel-check skips the pings through a running tunnel";

/** Runs `xvpn diag <what> ...`; returns the exit code. */
export async function diag(args: string[]): Promise<number> {
  const [what, ...rest] = args;
  if (what !== "mtu") {
    throw new UsageError(
      what === undefined
        ? `diag: what to diagnose? ${DIAG_USAGE}`
        : `diag: unknown "${what}"; ${DIAG_USAGE}`,
    );
  }
  if (Deno.build.os !== "linux" && Deno.build.os !== "windows") {
    // Its probes set DF and read the path MTU through socket options Linux and Windows have
    // (IP_MTU_DISCOVER, IP_MTU); macOS has IP_DONTFRAG and no IP_MTU: not built.
    throw new Error(
      `diag mtu runs on Linux and Windows (this is ${Deno.build.os}); the macOS probes are ` +
        `not built yet`,
    );
  }
  return await diagMtu(rest);
}

/**
 * The system's side of the diagnosis: Windows' (Winsock, PowerShell) on Windows, and on Linux
 * when the test hook `XVPN_WINTUN_DLL` names the fake wintun library, which stands in for
 * ws2_32 too (its PowerShell questions then find no `powershell` and go unanswered).
 */
function platformOf(runner: ProcessRunner): DiagPlatform {
  if (Deno.build.os === "windows") return windowsDiagPlatform(runner);
  const fake = Deno.env.get(WINTUN_DLL_ENV);
  return fake ? windowsDiagPlatform(runner, fake) : linuxDiagPlatform(runner);
}

interface Target {
  host: string;
  port: number;
  serverPublicKey: Uint8Array;
  privateKey: Uint8Array;
  tunName: string;
}

async function targetOf(v: Record<string, string | boolean | undefined>): Promise<Target> {
  const explicit = ["server", "server-public-key", "private-key-file"].filter((k) => v[k]);
  if (typeof v.config === "string") {
    if (explicit.length) {
      throw new UsageError(`diag mtu: --${explicit[0]} cannot be combined with --config`);
    }
    const cfg = await loadClientConfig(v.config);
    return {
      host: cfg.server.host,
      port: cfg.server.port,
      serverPublicKey: cfg.serverPublicKey,
      privateKey: cfg.privateKey,
      tunName: typeof v.tun === "string" ? v.tun : cfg.tun.name,
    };
  }
  if (explicit.length < 3) {
    throw new UsageError(
      `diag mtu: give --config, or all of --server, --server-public-key and ` +
        `--private-key-file`,
    );
  }
  const m = /^([^:[\]]+):(\d{1,5})$/.exec(String(v.server));
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535) {
    throw new UsageError(
      `diag mtu: --server must be host:port (IPv4 or a name), got "${v.server}"`,
    );
  }
  const serverPublicKey = decodeKey(String(v["server-public-key"]));
  if (!serverPublicKey) {
    throw new UsageError(`diag mtu: --server-public-key must be a base64 key of 32 bytes`);
  }
  const file = String(v["private-key-file"]);
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    throw new UsageError(
      `diag mtu: cannot read --private-key-file "${file}": ${(err as Error).message}`,
    );
  }
  const privateKey = decodeKey(text.trim());
  if (!privateKey) {
    throw new UsageError(`diag mtu: "${file}" does not hold a base64 key of 32 bytes`);
  }
  return {
    host: m[1]!,
    port,
    serverPublicKey,
    privateKey,
    tunName: typeof v.tun === "string" ? v.tun : DEFAULT_TUN_NAME,
  };
}

function intFlag(v: string | undefined, name: string, min: number, max: number, dflt: number) {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < min || n > max) {
    throw new UsageError(
      `diag mtu: --${name} must be an integer from ${min} to ${max}, got "${v}"`,
    );
  }
  return n;
}

async function diagMtu(args: string[]): Promise<number> {
  const { values: v, positionals } = parseArgs({
    args,
    options: {
      config: { type: "string", short: "c" },
      server: { type: "string" },
      "server-public-key": { type: "string" },
      "private-key-file": { type: "string" },
      tun: { type: "string" },
      json: { type: "boolean" },
      tries: { type: "string" },
      timeout: { type: "string" },
      "no-tunnel-check": { type: "boolean" },
    },
    allowPositionals: true,
  });
  if (positionals.length) throw new UsageError(`diag mtu: unexpected argument "${positionals[0]}"`);
  const tries = intFlag(v.tries, "tries", 1, 20, DEFAULT_TRIES);
  const timeoutMs = intFlag(v.timeout, "timeout", 50, 10_000, 400);
  const t = await targetOf(v);
  const where = `${t.host}:${t.port}`;
  let report;
  try {
    report = await diagnoseMtu({
      server: { hostname: await resolveHost(t.host), port: t.port },
      privateKey: t.privateKey,
      serverPublicKey: t.serverPublicKey,
      tunName: t.tunName,
      tries,
      timeoutMs,
      platform: platformOf(new ProcessRunner()),
      noTunnelCheck: v["no-tunnel-check"] === true,
    });
  } catch (err) {
    // Whatever stopped the measurement (no handshake, unreachable, no `ip`), there is no answer.
    const message = err instanceof Error ? err.message : String(err);
    if (v.json) {
      console.log(JSON.stringify({ status: "unmeasured", server: where, error: message }, null, 2));
    }
    Deno.stderr.writeSync(
      new TextEncoder().encode(`xvpn: diag mtu: could not measure: ${message}\n`),
    );
    return EXIT_UNMEASURED;
  }
  console.log(v.json ? JSON.stringify(report, null, 2) : formatReport(report));
  return report.status === "healthy" ? EXIT_OK : EXIT_FAILURE;
}
