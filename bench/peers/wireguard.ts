/**
 * wireguard-go (Debian's userspace WireGuard) in foreground mode, one process per namespace,
 * configured with `wg set` and `ip` exactly as wg-quick would, minus the kernel module.
 *
 * @module
 */
import { assertRunning, waitFor } from "../net.ts";
import type { BenchNet, RunningTunnel, TunnelPeer } from "./types.ts";

const PORT = 51820;
const POOL = { server: "10.78.0.1", client: "10.78.0.2", prefix: 24 };

/** wireguard-go as the reference userspace WireGuard. */
export const wireguardPeer: TunnelPeer = {
  id: "wireguard",
  label: "wireguard-go",
  tools: ["wireguard-go", "wg"],
  async start(net: BenchNet): Promise<RunningTunnel> {
    const { topo, dir } = net;
    // wireguard-go's control socket is /var/run/wireguard/<iface>.sock, shared by all
    // namespaces: interface names carry the run prefix so parallel runs do not collide.
    const dev = { client: `${topo.prefix}wc`, server: `${topo.prefix}ws` };
    const keys: Record<string, { priv: string; pub: string }> = {};
    for (const role of ["client", "server"]) {
      const priv = (await topo.exec(role, ["wg", "genkey"])).stdout.trim();
      const pub = (await topo.exec(role, ["wg", "pubkey"], { stdin: priv + "\n" })).stdout.trim();
      await Deno.writeTextFile(`${dir}/wg-${role}.key`, priv + "\n", { mode: 0o600 });
      keys[role] = { priv, pub };
    }
    const children: { role: string; child: Deno.ChildProcess; log: string }[] = [];
    for (const role of ["server", "client"] as const) {
      const log = `${dir}/wireguard-go-${role}.log`;
      const child = topo.spawn(role, ["wireguard-go", "-f", dev[role]], {
        logFile: log,
        env: { LOG_LEVEL: "error" },
      });
      children.push({ role, child, log });
      await waitFor(`wireguard-go ${role} control socket`, 5000, async () => {
        await assertRunning(child, `wireguard-go (${role})`, log);
        return await Deno.stat(`/var/run/wireguard/${dev[role]}.sock`).then(
          () => true,
          () => false,
        );
      });
    }
    await topo.exec("server", [
      ...["wg", "set", dev.server, "private-key", `${dir}/wg-server.key`, "listen-port", `${PORT}`],
      ...["peer", keys.client!.pub, "allowed-ips", `${POOL.client}/32`],
    ]);
    await topo.exec("client", [
      ...["wg", "set", dev.client, "private-key", `${dir}/wg-client.key`],
      ...["peer", keys.server!.pub, "endpoint", `${net.serverUnderlay}:${PORT}`],
      ...["allowed-ips", `${POOL.server}/32,${net.targetSubnet}`],
    ]);
    for (const role of ["server", "client"] as const) {
      const ip = (args: string[]) => topo.exec(role, ["ip", ...args]);
      await ip(["addr", "add", `${POOL[role]}/${POOL.prefix}`, "dev", dev[role]]);
      await ip(["link", "set", "dev", dev[role], "mtu", String(net.mtu), "up"]);
    }
    await topo.exec("client", ["ip", "route", "add", net.targetSubnet, "dev", dev.client]);
    return {
      pids: children.map((c) => ({ role: c.role, pid: c.child.pid })),
      clientTunAddr: POOL.client,
      targetAddr: net.targetAddr,
      clientDev: dev.client,
      async stop() {
        for (const c of children) {
          try {
            c.child.kill("SIGTERM");
          } catch {
            // already gone
          }
          await c.child.status;
        }
      },
    };
  },
};
