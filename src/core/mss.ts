/**
 * TCP MSS clamping inside the data path: SYN and SYN-ACK packets crossing the tunnel get their
 * MSS option lowered to fit the tunnel MTU, so TCP never sends segments that only fit after
 * fragmentation (or, with ICMP filtered somewhere, never fit at all). Done here rather than
 * with an iptables rule, so it also covers devices whose traffic a client forwards (a console
 * behind a PC announces an MSS from its 1500-byte LAN).
 *
 * Only the TCP checksum changes; it is updated incrementally (RFC 1624, eqn. 3), so the cost is
 * a few byte reads for SYNs and one flag test for everything else.
 *
 * @module
 */

/** IPv4 + TCP header bytes without options: MSS = MTU - 40 (RFC 879). */
export const IPV4_TCP_HEADERS_BYTES = 40;

const PROTO_TCP = 6;
const TCP_FLAG_SYN = 0x02;
const OPT_END = 0;
const OPT_NOP = 1;
const OPT_MSS = 2;

/** The largest MSS that fits a tunnel MTU. */
export function mssForMtu(mtu: number): number {
  return mtu - IPV4_TCP_HEADERS_BYTES;
}

/**
 * Lowers the MSS option of a TCP SYN in `pkt[0..len)` to `maxMss` (the IPv4 figure, MTU - 40;
 * an IPv6 SYN gets 20 less, MTU - 60) when it is larger. Returns true when the packet was
 * changed. Anything that is not a well-formed first-fragment IPv4 TCP SYN, or an IPv6 one with
 * TCP as its first header, with an MSS option, is left alone.
 */
export function clampMss(pkt: Uint8Array, len: number, maxMss: number): boolean {
  let tcp: number;
  if (pkt[0]! >> 4 === 6) {
    // IPv6: TCP right after the fixed header (a SYN with extension headers is left alone), and
    // 20 more header bytes than IPv4 to take off the MSS.
    if (len < 60 || pkt[6] !== PROTO_TCP) return false;
    tcp = 40;
    maxMss -= 20;
  } else {
    if (len < 40 || pkt[0]! >> 4 !== 4 || pkt[9] !== PROTO_TCP) return false;
    // Fragment offset must be 0 (only the first fragment carries the TCP header).
    if ((((pkt[6]! & 0x1f) << 8) | pkt[7]!) !== 0) return false;
    tcp = (pkt[0]! & 15) * 4;
  }
  if (tcp + 20 > len || (pkt[tcp + 13]! & TCP_FLAG_SYN) === 0) return false;
  const dataOff = (pkt[tcp + 12]! >> 4) * 4;
  const end = tcp + dataOff;
  if (dataOff < 20 || end > len) return false;
  let i = tcp + 20;
  while (i < end) {
    const kind = pkt[i]!;
    if (kind === OPT_END) return false;
    if (kind === OPT_NOP) {
      i++;
      continue;
    }
    if (i + 1 >= end) return false;
    const optLen = pkt[i + 1]!;
    if (optLen < 2 || i + optLen > end) return false;
    if (kind === OPT_MSS && optLen === 4) {
      const old = (pkt[i + 2]! << 8) | pkt[i + 3]!;
      if (old <= maxMss) return false;
      pkt[i + 2] = maxMss >> 8;
      pkt[i + 3] = maxMss & 255;
      // RFC 1624: HC' = ~(~HC + ~m + m'), in ones' complement arithmetic.
      const hc = (pkt[tcp + 16]! << 8) | pkt[tcp + 17]!;
      let sum = (~hc & 0xffff) + (~old & 0xffff) + maxMss;
      sum = (sum & 0xffff) + (sum >>> 16);
      sum = (sum & 0xffff) + (sum >>> 16);
      const c = ~sum & 0xffff;
      pkt[tcp + 16] = c >> 8;
      pkt[tcp + 17] = c & 255;
      return true;
    }
    i += optLen;
  }
  return false;
}
