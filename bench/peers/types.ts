/**
 * The contract between the tunnel benchmark and each tunnel implementation it compares: a peer
 * brings a tunnel up between the client and server hosts of a {@link BenchNet}, and the shared
 * measurement code (bench/measure.ts) does the rest.
 *
 * @module
 */
import type { Topology } from "../../src/demo/topology.ts";

/** Fixed addressing of the benchmark network; see bench/net.ts. */
export interface BenchNet {
  /** The namespaces: `client`, `server`, `target` (behind the server). */
  topo: Topology;
  /** Server address on the client-server link (where tunnels listen). */
  serverUnderlay: string;
  /** Target host address, reached from the client through the tunnel. */
  targetAddr: string;
  /** Target subnet, routed into the tunnel on the client. */
  targetSubnet: string;
  /** Tunnel MTU every peer uses. */
  mtu: number;
  /** A private temporary directory for keys, configs and logs of this peer. */
  dir: string;
  /** The client's next hop towards the server (default: the server itself, a direct link). */
  clientNextHop?: string;
  /** The client's interface towards the server (default: its link to `server`). */
  clientIface?: string;
  /** Lines appended to xvpn's client.yaml (other peers ignore it), e.g. shaping. */
  xvpnClientExtra?: string;
}

/** A process whose CPU time and memory count as the tunnel's cost. */
export interface TunnelProcess {
  /** `client` or `server`. */
  role: string;
  /** Its pid (in the host pid namespace, for /proc). */
  pid: number;
}

/** A tunnel that is up and carrying traffic from the client to the target. */
export interface RunningTunnel {
  /** Tunnel processes (empty for the no-tunnel baseline). */
  pids: TunnelProcess[];
  /** The client's address inside the tunnel. */
  clientTunAddr: string;
  /** What the client sends to. */
  targetAddr: string;
  /** The client interface traffic to the target must leave through (checked by the runner). */
  clientDev: string;
  /** Stops the tunnel processes (the namespaces are removed separately). */
  stop(): Promise<void>;
}

/** One implementation under comparison. */
export interface TunnelPeer {
  /** Short id used by `--only`: `none`, `xvpn`, `wireguard`, `openvpn`. */
  id: string;
  /** Column title. */
  label: string;
  /** Programs it needs (installed with apt-get when missing). */
  tools: string[];
  /** Brings the tunnel up; throws with a reason when it cannot. */
  start(net: BenchNet): Promise<RunningTunnel>;
}
