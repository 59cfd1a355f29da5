/**
 * Hand-built IPv4 packets for tests that do not need a kernel.
 *
 * @module
 */

/** Internet checksum (RFC 1071) over buf[from..to). */
export function inetChecksum(buf: Uint8Array, from = 0, to = buf.length): number {
  let sum = 0;
  for (let i = from; i + 1 < to; i += 2) sum += (buf[i]! << 8) | buf[i + 1]!;
  if ((to - from) & 1) sum += buf[to - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An IPv4/UDP packet from src to dst (u32 addresses) carrying `payload`. */
export function udpPacket(
  src: number,
  dst: number,
  payload: Uint8Array,
  ports = [1000, 2000],
): Uint8Array {
  const total = 20 + 8 + payload.length;
  const p = new Uint8Array(total);
  p[0] = 0x45;
  p[2] = total >> 8;
  p[3] = total & 255;
  p[8] = 64;
  p[9] = 17;
  for (let i = 0; i < 4; i++) {
    p[12 + i] = (src >>> (24 - 8 * i)) & 255;
    p[16 + i] = (dst >>> (24 - 8 * i)) & 255;
  }
  const c = inetChecksum(p, 0, 20);
  p[10] = c >> 8;
  p[11] = c & 255;
  p[20] = ports[0]! >> 8;
  p[21] = ports[0]! & 255;
  p[22] = ports[1]! >> 8;
  p[23] = ports[1]! & 255;
  p[24] = (8 + payload.length) >> 8;
  p[25] = (8 + payload.length) & 255;
  p.set(payload, 28);
  return p;
}

/** An IPv6 UDP packet from `src` to `dst` (16 bytes each) carrying `payload` (checksum 0: the
 * cores do not look at it). */
export function udp6Packet(
  src: Uint8Array,
  dst: Uint8Array,
  payload: Uint8Array,
  ports = [1000, 2000],
  trafficClass = 0,
): Uint8Array {
  const p = new Uint8Array(40 + 8 + payload.length);
  p[0] = 0x60 | (trafficClass >> 4);
  p[1] = (trafficClass & 15) << 4;
  p[4] = (8 + payload.length) >> 8;
  p[5] = (8 + payload.length) & 255;
  p[6] = 17;
  p[7] = 64;
  p.set(src, 8);
  p.set(dst, 24);
  p[40] = ports[0]! >> 8;
  p[41] = ports[0]! & 255;
  p[42] = ports[1]! >> 8;
  p[43] = ports[1]! & 255;
  p[44] = (8 + payload.length) >> 8;
  p[45] = (8 + payload.length) & 255;
  p.set(payload, 48);
  return p;
}
