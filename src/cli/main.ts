/**
 * Command-line entry: parses the command and its flags, runs it, maps errors to exit codes
 * (src/cli/report.ts). Commands compose modules; they hold no logic of their own.
 *
 * @module
 */
import { connect } from "./connect.ts";
import { genkey, pubkey } from "./keys.ts";
import { EXIT_OK, report, UsageError } from "./report.ts";
import { serve } from "./serve.ts";
import { HELP, wantsHelp } from "./help.ts";
import { parseFlags } from "./flags.ts";

/** xvpn's version. */
export const VERSION = "0.1.0";

const USAGE = `xvpn ${VERSION}: a userspace VPN for game acceleration

Usage:
  xvpn serve   --config server.yaml   run the server (root: creates a TUN device)
  xvpn connect --config client.yaml   connect to a node (root: TUN, address, routes)
               [--profile NAME]... [--node NAME]
  xvpn status  [--tun NAME] [--json] [--watch]   what a running connect or serve is doing
  xvpn ping    --config client.yaml   RTT, jitter and loss to every node (--json)
  xvpn control [--tun NAME] reconnect | node NAME   steer a running connect (root)
  xvpn profile list | show NAME | import FILE | learn --pid N   game profiles
  xvpn genkey                         print a new private key (base64)
  xvpn pubkey                         read a private key on stdin, print its public key
  xvpn diag mtu --config client.yaml  path MTU to the server, both TUN MTUs, what to change
                                      (--json, --tries N; exit 0 healthy, 1 problem, 2 no answer)
  xvpn demo                           build network namespaces and run a real tunnel (root)
  xvpn tcp-check sink|source ...      checksummed TCP transfer (used by demo and tests)
  xvpn help | version                 xvpn <command> --help for a command's own help

Exit codes: 0 ok, 1 runtime failure, 2 bad usage or configuration.
`;

/**
 * `--config FILE` / `-c FILE` / `--config=FILE`, and nothing else. Parsed by hand: serve and
 * connect run for days, and `node:util` would add ~4 MB of resident memory to each for one flag.
 */
function configFlag(command: string, args: string[]): string {
  let config: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--config" || a === "-c") {
      config = args[++i];
      if (config === undefined) throw new UsageError(`${command}: ${a} needs a file`);
    } else if (a.startsWith("--config=")) {
      config = a.slice("--config=".length);
    } else if (a.startsWith("-")) {
      throw new UsageError(`${command}: unknown option "${a}"`);
    } else {
      throw new UsageError(`${command}: unexpected argument "${a}"`);
    }
  }
  if (!config) throw new UsageError(`${command}: --config <file> is required`);
  return config;
}

/** Runs xvpn with `args` (without the program name); returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    if (command !== undefined && wantsHelp(rest)) {
      const text = HELP[command];
      if (!text) throw new UsageError(`unknown command "${command}"`);
      console.log(text);
      return EXIT_OK;
    }
    switch (command) {
      case "serve":
        return await serve(configFlag("serve", rest));
      case "connect": {
        const p = parseFlags("connect", rest, {
          config: { kind: "string", short: "c" },
          profile: { kind: "list", short: "p" },
          node: { kind: "string", short: "n" },
        });
        if (p.positional.length) {
          throw new UsageError(`connect: unexpected argument "${p.positional[0]}"`);
        }
        if (typeof p.flags.config !== "string") {
          throw new UsageError("connect: --config <file> is required");
        }
        return await connect(p.flags.config, {
          profiles: (p.flags.profile as string[] | undefined) ?? [],
          node: p.flags.node as string | undefined,
        });
      }
      case "status": {
        const { status } = await import("./status.ts");
        return await status(rest);
      }
      case "control": {
        const { control } = await import("./status.ts");
        return await control(rest);
      }
      case "ping": {
        const { ping } = await import("./ping.ts");
        return await ping(rest);
      }
      case "profile": {
        const { profileCommand } = await import("./profile.ts");
        return await profileCommand(rest);
      }
      case "genkey":
        return genkey();
      case "pubkey":
        return await pubkey();
      case "tcp-check": {
        const { tcpCheck } = await import("./tcpcheck.ts");
        return await tcpCheck(rest);
      }
      case "diag": {
        const { diag } = await import("./diag.ts");
        return await diag(rest);
      }
      case "demo": {
        const { demo } = await import("./demo.ts");
        return await demo(rest);
      }
      case "version":
      case "--version":
        console.log(VERSION);
        return EXIT_OK;
      case undefined:
      case "help":
      case "--help":
      case "-h":
        console.log(USAGE);
        return EXIT_OK;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof TypeError && (err as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
      return report(new UsageError(err.message));
    }
    return report(err);
  }
}
