/**
 * MTU words and arithmetic, in one place, because every MTU bug starts with two people meaning
 * different things by "the MTU".
 *
 * Glossary (IPv4 underlay; every figure counts whole IP packets unless it says "payload"):
 *
 * - **Wire MTU** (link MTU, device MTU): the largest IP packet one network device sends
 *   without fragmenting, e.g. 1500 on Ethernet. `ip link show` prints it. A host knows only
 *   its own devices' wire MTUs.
 * - **Path MTU** (PMTU): the smallest wire MTU on the whole way from us to the server, the
 *   largest IP packet that reaches the server in one piece. Nobody prints it; it is found by
 *   sending packets with DF ("don't fragment") set: a router that cannot forward one answers
 *   ICMP "fragmentation needed" with its next-hop MTU (RFC 1191), and the kernel caches that
 *   value per destination (`IP_MTU` on a connected socket reads it). When such ICMPs are
 *   filtered, too-big packets vanish without a word: a **PMTU black hole**; only probing with
 *   acknowledged packets of different sizes finds the limit then.
 * - **UDP payload**: what one xvpn datagram carries; path MTU = largest payload + 28 (IPv4 20 +
 *   UDP 8). `xvpn diag mtu` probes payload sizes and reports the path MTU.
 * - **Tunnel overhead**: what xvpn adds around each inner packet: IPv4 20 + UDP 8 + xvpn header
 *   16 + Poly1305 tag 16 = 60 bytes.
 * - **TUN MTU** (inner MTU): the MTU of the `xvpn0` devices, the largest inner packet the
 *   tunnel carries whole. An inner packet of TUN MTU bytes becomes an outer IP packet of
 *   TUN MTU + 60 bytes, so the largest TUN MTU that never needs outer fragmentation is
 *   path MTU - 60 (the rule wg-quick uses, with WireGuard's own overhead). A larger TUN MTU
 *   still works, since the kernel fragments and reassembles the outer datagrams, but each
 *   full-size packet then costs two IP packets and is lost when either fragment is.
 * - Both ends' TUN MTUs must be **equal** (field notes, trap 2): a packet that fits the client's
 *   TUN but not the server's is refused by the server kernel with ICMP "fragmentation needed"
 *   (to a game server that often ignores it) and never arrives.
 *
 * @module
 */
import { DATA_OVERHEAD_BYTES } from "./wire.ts";

/** IPv4 header without options. */
export const IPV4_HEADER_BYTES = 20;
/** UDP header. */
export const UDP_HEADER_BYTES = 8;
/** IPv4 + UDP headers: path MTU = largest UDP payload + this. */
export const IPV4_UDP_HEADERS_BYTES = IPV4_HEADER_BYTES + UDP_HEADER_BYTES;
/** xvpn header + AEAD tag around every inner packet (inside the UDP payload). */
export const XVPN_OVERHEAD_BYTES = DATA_OVERHEAD_BYTES;
/** Everything xvpn adds to an inner packet on an IPv4 underlay: 20 + 8 + 16 + 16 = 60. */
export const TUNNEL_OVERHEAD_BYTES = IPV4_UDP_HEADERS_BYTES + XVPN_OVERHEAD_BYTES;
/** IPv6 header (no extension headers). */
export const IPV6_HEADER_BYTES = 40;
/** Everything xvpn adds on an IPv6 underlay: 40 + 8 + 16 + 16 = 80. */
export const TUNNEL_OVERHEAD6_BYTES = IPV6_HEADER_BYTES + UDP_HEADER_BYTES + XVPN_OVERHEAD_BYTES;
/** Smallest TUN MTU a config may set (every IPv4 host must accept 576-byte datagrams). */
export const MIN_TUN_MTU = 576;
/** Largest TUN MTU a config may set (jumbo frames). */
export const MAX_TUN_MTU = 9000;
/** Path MTU whose UDP payload every IPv4 path must carry (RFC 791's 576). */
export const MIN_PATH_MTU = 576;

/** The path MTU proven by a UDP payload of `payload` bytes that arrived whole. */
export function pathMtuOfPayload(payload: number, headers = IPV4_UDP_HEADERS_BYTES): number {
  return payload + headers;
}

/** The largest UDP payload that fits a path MTU. */
export function payloadOfPathMtu(pathMtu: number, headers = IPV4_UDP_HEADERS_BYTES): number {
  return pathMtu - headers;
}

/** The largest TUN MTU whose packets cross a path of `pathMtu` without outer fragmentation. */
export function innerMtuForPath(pathMtu: number): number {
  return pathMtu - TUNNEL_OVERHEAD_BYTES;
}

/** The size of the outer IP packet that carries an inner packet of `inner` bytes. */
export function outerPacketBytes(inner: number): number {
  return inner + TUNNEL_OVERHEAD_BYTES;
}

/**
 * How many IPv4 fragments an outer packet of `packet` bytes (header included) becomes on a
 * path of `pathMtu`: 1 when it fits. Every fragment but the last carries a multiple of 8 data
 * bytes (RFC 791), so a fragment holds floor((mtu - 20) / 8) * 8 of them.
 */
export function fragmentsFor(packet: number, pathMtu: number): number {
  if (packet <= pathMtu) return 1;
  const perFragment = Math.floor((pathMtu - IPV4_HEADER_BYTES) / 8) * 8;
  return Math.ceil((packet - IPV4_HEADER_BYTES) / perFragment);
}

/** `1400 - 60 = 1340`: the inner-MTU rule written out, for reports and logs. */
export function innerMtuArithmetic(pathMtu: number): string {
  return `${pathMtu} - ${TUNNEL_OVERHEAD_BYTES} = ${innerMtuForPath(pathMtu)}`;
}

/** What the automatic TUN MTU rule decided (see {@link autoTunMtu}). */
export interface AutoTunMtu {
  /** The TUN MTU to use. */
  mtu: number;
  /** The rule written out, e.g. `1500 - 60 = 1440`, plus any clamping. */
  arithmetic: string;
}

/**
 * The TUN MTU for an underlay device of `deviceMtu` bytes: device MTU - 60 (wg-quick's rule with
 * xvpn's overhead), or - 80 when the underlay may be IPv6 (`v6`: a server listening on an IPv6
 * address, `::` included, since its IPv6 clients need the larger overhead), kept within the
 * range a config may set.
 */
export function autoTunMtu(deviceMtu: number, v6 = false): AutoTunMtu {
  const overhead = v6 ? TUNNEL_OVERHEAD6_BYTES : TUNNEL_OVERHEAD_BYTES;
  const raw = deviceMtu - overhead;
  const mtu = Math.min(MAX_TUN_MTU, Math.max(MIN_TUN_MTU, raw));
  let arithmetic = `${deviceMtu} - ${overhead} = ${raw}`;
  if (mtu !== raw) arithmetic += `, kept within ${MIN_TUN_MTU}-${MAX_TUN_MTU}: ${mtu}`;
  return { mtu, arithmetic };
}
