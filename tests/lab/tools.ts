/**
 * The external programs topologies, impairments and benchmarks rely on, and the Debian packages
 * that provide them, so that a missing one is reported as "install iputils-ping" rather than as
 * a failing `ip netns exec`.
 *
 * @module
 */
import { type CommandRunner, ProcessRunner } from "../../src/io/command.ts";

/** Debian package of each program used here. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  ip: "iproute2",
  tc: "iproute2",
  ping: "iputils-ping",
  nft: "nftables",
  sysctl: "procps",
  timeout: "coreutils",
  iperf3: "iperf3",
  tcpdump: "tcpdump",
  "wireguard-go": "wireguard-go",
  wg: "wireguard-tools",
  openvpn: "openvpn",
  openssl: "openssl",
  gcc: "gcc",
};

/** True when `name` is an executable file in PATH (plus the sbin directories root expects). */
export async function hasTool(name: string): Promise<boolean> {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/sbin"]);
  for (const dir of dirs.filter(Boolean)) {
    try {
      const st = await Deno.stat(`${dir}/${name}`);
      if (st.isFile && ((st.mode ?? 0o111) & 0o111)) return true;
    } catch {
      // not here
    }
  }
  return false;
}

/** The programs of `names` that are not installed. */
export async function missingTools(names: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const n of names) if (!(await hasTool(n))) missing.push(n);
  return missing;
}

function packagesFor(names: readonly string[]): string[] {
  return [...new Set(names.map((n) => TOOL_PACKAGES[n] ?? n))];
}

/** Throws an error naming the missing programs and the `apt-get install` line that adds them. */
export async function requireTools(names: readonly string[]): Promise<void> {
  const missing = await missingTools(names);
  if (!missing.length) return;
  throw new Error(
    `missing programs: ${missing.join(", ")}; install them with ` +
      `\`apt-get install -y ${packagesFor(missing).join(" ")}\``,
  );
}

/**
 * Installs the Debian packages of the missing programs of `names` with apt-get (root). Runs
 * `apt-get update` first only when a plain install fails, since the package lists are usually
 * there already.
 */
export async function installTools(
  names: readonly string[],
  runner: CommandRunner = new ProcessRunner(),
): Promise<void> {
  const missing = await missingTools(names);
  if (!missing.length) return;
  const install = ["apt-get", "install", "-y", "-q", ...packagesFor(missing)];
  const env = { DEBIAN_FRONTEND: "noninteractive" };
  const first = await runner.run(
    ["env", ...Object.entries(env).map(([k, v]) => `${k}=${v}`)]
      .concat(install),
    { allowFailure: true },
  );
  if (first.code !== 0) {
    await runner.run(["apt-get", "update", "-q"]);
    await runner.run(["env", "DEBIAN_FRONTEND=noninteractive", ...install]);
  }
  await requireTools(names);
}
