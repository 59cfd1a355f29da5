/**
 * xvpn through its real command line, as a user would run it: keys from `xvpn genkey` /
 * `xvpn pubkey`, YAML configs, `xvpn serve` in the server namespace and `xvpn connect` in the
 * client namespace. The server pushes the target subnet, so the client's route to the target
 * is xvpn's own doing (the runner checks that traffic leaves through xvpn0).
 *
 * @module
 */
import { assertRunning, tail, waitFor } from "../net.ts";
import type { BenchNet, RunningTunnel, TunnelPeer } from "./types.ts";

const PORT = 51820;
const POOL = { cidr: "10.77.0.0/24", server: "10.77.0.1", client: "10.77.0.2" };
const DEV = "xvpn0";
const MAIN = new URL("../../main.ts", import.meta.url).pathname;
const CONFIG = new URL("../../deno.json", import.meta.url).pathname;

/**
 * `deno run -A main.ts <args>` with the deno running this benchmark; the config is named since
 * the working directory may be anywhere.
 */
function xvpn(...args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", "--config", CONFIG, MAIN, ...args];
}

async function keypair(net: BenchNet, role: string): Promise<{ priv: string; pub: string }> {
  const priv = (await net.topo.exec(role, xvpn("genkey"))).stdout.trim();
  const pub = (await net.topo.exec(role, xvpn("pubkey"), { stdin: priv + "\n" })).stdout.trim();
  if (!priv || !pub) throw new Error("xvpn genkey/pubkey printed nothing");
  return { priv, pub };
}

/** The project under test. */
export const xvpnPeer: TunnelPeer = xvpnPeerWith({ id: "xvpn", label: "xvpn" });

/**
 * xvpn with its client on the Windows data path (the Worker over Wintun and Winsock by FFI,
 * with the flow scheduler) over the fake wintun library, which stands in for wintun.dll, ws2_32
 * and kernel32 on Linux (tests/support/fakewintun/). Not a Windows figure: it shows what that
 * code costs against the Linux Worker on the same machine.
 */
export const xvpnWindowsFakePeer: TunnelPeer = xvpnPeerWith({
  id: "xvpn-win",
  label: "xvpn Windows path (fake)",
  clientEnv: async () => {
    const { buildFakeWintun } = await import("../../tests/support/fakewintun/build.ts");
    return { XVPN_WINTUN_DLL: await buildFakeWintun() };
  },
});

/** An xvpn peer; `clientEnv` gives the client's extra environment. */
function xvpnPeerWith(o: {
  id: string;
  label: string;
  clientEnv?: () => Promise<Record<string, string>>;
}): TunnelPeer {
  return {
    id: o.id,
    label: o.label,
    tools: o.clientEnv ? ["gcc"] : [],
    start: async (net) => startXvpn(net, await o.clientEnv?.()),
  };
}

/** Brings xvpn up (see the module docs); `clientEnv` goes to `xvpn connect`. */
async function startXvpn(
  net: BenchNet,
  clientEnv?: Record<string, string>,
): Promise<RunningTunnel> {
  const { topo, dir } = net;
  const server = await keypair(net, "server");
  const client = await keypair(net, "client");
  const endpoint = `${net.serverUnderlay}:${PORT}`;
  await Deno.writeTextFile(
    `${dir}/server.yaml`,
    [
      `listen: "${endpoint}"`,
      `private_key: "${server.priv}"`,
      `tun: {name: ${DEV}, mtu: ${net.mtu}}`,
      `pool: ${POOL.cidr}`,
      `routes: [${net.targetSubnet}]`,
      `keepalive: 10s`,
      `nat: false`,
      `clients: [{name: bench, public_key: "${client.pub}"}]`,
      `log: {level: info}`,
      ``,
    ].join("\n"),
  );
  await Deno.writeTextFile(
    `${dir}/client.yaml`,
    [
      `server: "${endpoint}"`,
      `server_public_key: "${server.pub}"`,
      `private_key: "${client.priv}"`,
      `tun: {name: ${DEV}}`,
      `log: {level: info}`,
      net.xvpnClientExtra ?? "",
      ``,
    ].join("\n"),
  );
  const procs = [
    {
      role: "server",
      log: `${dir}/xvpn-server.log`,
      child: topo.spawn("server", xvpn("serve", "--config", `${dir}/server.yaml`), {
        logFile: `${dir}/xvpn-server.log`,
      }),
    },
  ];
  procs.push({
    role: "client",
    log: `${dir}/xvpn-client.log`,
    child: topo.spawn("client", xvpn("connect", "--config", `${dir}/client.yaml`), {
      logFile: `${dir}/xvpn-client.log`,
      env: clientEnv,
    }),
  });
  try {
    // The address comes first and the pushed routes right after it: wait for both.
    await waitFor(
      `${DEV} in the client to get ${POOL.client} and the route`,
      15_000,
      async () => {
        for (const p of procs) await assertRunning(p.child, `xvpn ${p.role}`, p.log);
        const r = await topo.exec("client", ["ip", "-j", "addr", "show", "dev", DEV], {
          allowFailure: true,
        });
        if (r.code !== 0 || !r.stdout.includes(`"${POOL.client}"`)) return false;
        const route = await topo.exec("client", ["ip", "route", "get", net.targetAddr], {
          allowFailure: true,
        });
        return route.code === 0 && route.stdout.includes(`dev ${DEV}`);
      },
    );
  } catch (err) {
    const logs = await Promise.all(procs.map(async (p) => `${p.role}:\n${await tail(p.log)}`));
    throw new Error(`${(err as Error).message}\n${logs.join("\n")}`);
  }
  return {
    pids: procs.map((p) => ({ role: p.role, pid: p.child.pid })),
    clientTunAddr: POOL.client,
    targetAddr: net.targetAddr,
    clientDev: DEV,
    async stop() {
      for (const p of [...procs].reverse()) {
        try {
          p.child.kill("SIGTERM");
        } catch {
          // already gone
        }
        await p.child.status;
      }
    },
  };
}
