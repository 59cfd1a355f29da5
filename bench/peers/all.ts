/**
 * Every tunnel the benchmarks compare, in table order: no tunnel, xvpn, xvpn with its client on
 * the Windows data path over the fake wintun, wireguard-go, OpenVPN.
 *
 * @module
 */
import { nonePeer } from "./none.ts";
import { openvpnPeer } from "./openvpn.ts";
import type { TunnelPeer } from "./types.ts";
import { wireguardPeer } from "./wireguard.ts";
import { xvpnPeer, xvpnWindowsFakePeer } from "./xvpn.ts";

/** All peers, in table order. */
export const ALL_PEERS: readonly TunnelPeer[] = [
  nonePeer,
  xvpnPeer,
  xvpnWindowsFakePeer,
  wireguardPeer,
  openvpnPeer,
];
