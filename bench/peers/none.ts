/**
 * The baseline: no tunnel, the client routes to the target through the server directly. The
 * route carries the tunnels' MTU, so TCP uses the same segment size as through a tunnel.
 *
 * @module
 */
import type { BenchNet, RunningTunnel, TunnelPeer } from "./types.ts";

/** Plain routing, no encryption: the ceiling the tunnels are measured against. */
export const nonePeer: TunnelPeer = {
  id: "none",
  label: "no tunnel",
  tools: [],
  async start(net: BenchNet): Promise<RunningTunnel> {
    const { topo } = net;
    await topo.exec("client", [
      ...["ip", "route", "add", net.targetSubnet, "via", net.clientNextHop ?? net.serverUnderlay],
      ...["mtu", String(net.mtu)],
    ]);
    return {
      pids: [],
      clientTunAddr: topo.addr("client"),
      targetAddr: net.targetAddr,
      clientDev: net.clientIface ?? topo.iface("client", "server"),
      stop: () => Promise.resolve(),
    };
  },
};
