import { assert, assertEquals } from "../../tests/support/assert.ts";
import { TcpCoalescer, VNET_HDR_BYTES } from "./gro.ts";

/** An IPv4/TCP segment with `payload` bytes of `fill`, timestamps option, ACK (|PSH). */
function seg(
  seq: number,
  payload: number,
  opts: { psh?: boolean; sport?: number; fill?: number } = {},
) {
  const hdr = 20 + 32;
  const p = new Uint8Array(hdr + payload);
  p.set([0x45, 0, (hdr + payload) >> 8, (hdr + payload) & 255, 0, 1, 0x40, 0, 64, 6, 0, 0]);
  p.set([10, 77, 0, 2, 10, 201, 2, 2], 12);
  const sport = opts.sport ?? 40000;
  p.set([sport >> 8, sport & 255, 0x14, 0x51], 20);
  p.set([seq >>> 24, (seq >>> 16) & 255, (seq >>> 8) & 255, seq & 255], 24);
  p.set([0, 0, 0, 9, 0x80, opts.psh ? 0x18 : 0x10, 0x01, 0xf5, 0, 0, 0, 0], 28);
  p.set([1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9], 40); // NOP NOP TS
  p.fill(opts.fill ?? 0xab, hdr);
  return p;
}

/** Puts `p` where the loop decrypts to, then offers it. */
function feed(c: TcpCoalescer, p: Uint8Array): boolean {
  c.input.set(p);
  return c.add(p.length);
}

function sum16(b: Uint8Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

Deno.test("TcpCoalescer joins in-order segments of one flow into one GSO packet", () => {
  const c = new TcpCoalescer();
  const a = seg(1000, 1368), b = seg(2368, 1368, { fill: 1 }), d = seg(3736, 500, { psh: true });
  assert(feed(c, a) && feed(c, b) && feed(c, d));
  const n = c.finish();
  const pkt = c.buf.subarray(VNET_HDR_BYTES, n);
  assertEquals(n, VNET_HDR_BYTES + 52 + 1368 * 2 + 500);
  const v = c.buf;
  assertEquals([v[0], v[1]], [1, 1], "NEEDS_CSUM, GSO_TCPV4");
  assertEquals(v[2]! | (v[3]! << 8), 52, "hdr_len");
  assertEquals(v[4]! | (v[5]! << 8), 1368, "gso_size");
  assertEquals([v[6], v[8]], [20, 16], "csum_start, csum_offset");
  assertEquals((pkt[2]! << 8) | pkt[3]!, pkt.length, "IP total length");
  assertEquals(sum16(pkt, 0, 20), 0xffff, "IP header checksum valid");
  assertEquals(pkt[33], 0x18, "PSH of the last segment kept");
  // Pseudo-header sum (not complemented) in the TCP checksum field.
  const tcpLen = pkt.length - 20;
  let ps = sum16(pkt, 12, 20) + 6 + tcpLen;
  while (ps > 0xffff) ps = (ps & 0xffff) + (ps >>> 16);
  assertEquals((pkt[36]! << 8) | pkt[37]!, ps);
  assertEquals(pkt[52 + 1368], 1, "second payload follows the first");
  assertEquals(c.pending, false);
});

Deno.test("TcpCoalescer refuses what the kernel's GRO would not join", () => {
  const cases: [string, Uint8Array][] = [
    ["another flow", seg(2368, 1368, { sport: 40001 })],
    ["a gap in sequence", seg(9999, 1368)],
    ["a larger segment", seg(2368, 1400)],
  ];
  for (const [why, next] of cases) {
    const c = new TcpCoalescer();
    const a = seg(1000, 1368);
    assert(feed(c, a));
    assertEquals(feed(c, next), false, why);
  }
  const c = new TcpCoalescer();
  const p = seg(1000, 1368, { psh: true }), q = seg(2368, 1368);
  assert(feed(c, p));
  assertEquals(feed(c, q), false, "nothing after PSH");
  const udp = seg(1, 100);
  udp[9] = 17;
  assertEquals(feed(new TcpCoalescer(), udp), false, "not TCP");
  const syn = seg(1, 100);
  syn[33] = 0x02;
  assertEquals(feed(new TcpCoalescer(), syn), false, "SYN");
});

Deno.test("TcpCoalescer writes a lone segment as a plain packet", () => {
  const c = new TcpCoalescer();
  const a = seg(1000, 200);
  assert(feed(c, a));
  const n = c.finish();
  assertEquals([...c.buf.subarray(0, VNET_HDR_BYTES)], new Array(10).fill(0));
  assertEquals(c.buf.subarray(VNET_HDR_BYTES, n), a, "bytes unchanged, checksum untouched");
});
