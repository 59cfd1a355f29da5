/**
 * The Linux TUN offloads: TSO super-packets cut into valid segments, and GRO runs joined into
 * one GSO write (lone packets left where they are).
 */
import { assert, assertEquals } from "../../../tests/support/assert.ts";
import {
  GRO_REGION_BYTES,
  ReadKind,
  TcpCoalescer,
  TSO_REGION_BYTES,
  TsoSplitter,
  VNET_HDR_BYTES,
} from "./offload_linux.ts";

/** An arena with a coalescing region at 0 and packet slots of 2 KiB after it. */
function arena(slots = 8) {
  const all = new Uint8Array(GRO_REGION_BYTES + slots * 2048);
  return { all, slot: (i: number) => GRO_REGION_BYTES + i * 2048 };
}
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

/** A coalescer over a fresh arena that places each offered packet in the next slot. */
class Harness {
  readonly a = arena(64);
  readonly c = new TcpCoalescer(this.a.all, 0);
  #next = 0;
  /** Puts `p` in the next slot (as the loop decrypts there) and offers it. */
  feed(p: Uint8Array): boolean {
    const i = this.#next++;
    const off = this.a.slot(i);
    this.a.all.set(p, off);
    return this.c.add(off, p.length, i);
  }
}

function sum16(b: Uint8Array, from: number, to: number, acc = 0): number {
  let s = acc;
  for (let i = from; i < to; i += 2) s += (b[i]! << 8) | b[i + 1]!;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

Deno.test("TcpCoalescer joins in-order segments of one flow into one GSO packet", () => {
  const h = new Harness();
  const a = seg(1000, 1368), b = seg(2368, 1368, { fill: 1 }), d = seg(3736, 500, { psh: true });
  assert(h.feed(a) && h.feed(b) && h.feed(d));
  assertEquals(h.c.segs, 3);
  assertEquals(h.c.firstIndex, -1, "a run of several lives in the region");
  const n = h.c.finish();
  const c = h.c;
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
    const h = new Harness();
    assert(h.feed(seg(1000, 1368)));
    assertEquals(h.feed(next), false, why);
  }
  const h = new Harness();
  assert(h.feed(seg(1000, 1368, { psh: true })));
  assertEquals(h.feed(seg(2368, 1368)), false, "nothing after PSH");
  const udp = seg(1, 100);
  udp[9] = 17;
  assertEquals(new Harness().feed(udp), false, "not TCP");
  const syn = seg(1, 100);
  syn[33] = 0x02;
  assertEquals(new Harness().feed(syn), false, "SYN");
  const ecn = seg(2368, 1368);
  ecn[1] = 3; // CE
  const e = new Harness();
  assert(e.feed(seg(1000, 1368)));
  assertEquals(e.feed(ecn), false, "another TOS (a CE mark) is not joined");
});

Deno.test("TcpCoalescer leaves a lone segment where it is (written without a copy)", () => {
  const h = new Harness();
  const a = seg(1000, 200);
  assert(h.feed(a));
  assertEquals(h.c.firstIndex, 0, "the run of one is buffer 0 itself");
  assertEquals([...h.c.buf.subarray(0, 60)], new Array(60).fill(0), "nothing copied");
  assertEquals(h.a.all.subarray(h.a.slot(0), h.a.slot(0) + a.length), a, "bytes untouched");
  h.c.reset();
  assertEquals(h.c.pending, false);
});

/** True when the TCP checksum of an IPv4 packet verifies (with its pseudo-header). */
function tcpValid(p: Uint8Array): boolean {
  const total = (p[2]! << 8) | p[3]!;
  return sum16(p, 20, total, sum16(p, 12, 20, 6 + total - 20)) === 0xffff;
}

/** A TSO read as the kernel gives it: virtio header, IPv4+TCP headers with the pseudo-header
 * sum in the checksum field, `payload` bytes. */
function superPacket(payload: number, gso: number, flags = 0x18): Uint8Array {
  const total = 40 + payload;
  const b = new Uint8Array(VNET_HDR_BYTES + total);
  b.set([1, 1, 40, 0, gso & 255, gso >> 8, 20, 0, 16, 0]);
  const p = b.subarray(VNET_HDR_BYTES);
  p.set([0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 201, 2, 2, 10, 77, 0, 2]);
  p.set([0x14, 0x51, 0x9c, 0x40, 0xff, 0xff, 0xff, 0x00, 0, 0, 0, 1, 0x50, flags, 1, 0], 20);
  p[2] = total >> 8;
  p[3] = total & 255;
  for (let i = 40; i < total; i++) p[i] = i * 7;
  const ps = sum16(p, 12, 20, 6 + total - 20);
  p[36] = ps >> 8;
  p[37] = ps & 255;
  return b;
}

Deno.test("TsoSplitter cuts a super-packet into valid segments", () => {
  const b = superPacket(3500, 1000);
  const all = new Uint8Array(TSO_REGION_BYTES + 2048);
  const t = new TsoSplitter(all, 0);
  t.read.set(b);
  assertEquals(t.begin(b.length), ReadKind.Segments);
  assertEquals(t.count, 4);
  let payload = new Uint8Array(0);
  for (let i = 0; i < t.count; i++) {
    const n = t.segment(i, TSO_REGION_BYTES);
    const seg = all.slice(TSO_REGION_BYTES, TSO_REGION_BYTES + n);
    assertEquals(n, 40 + (i < 3 ? 1000 : 500));
    assertEquals((seg[2]! << 8) | seg[3]!, n, "IP total length");
    assertEquals(sum16(seg, 0, 20), 0xffff, "IP checksum");
    assert(tcpValid(seg), `TCP checksum of segment ${i}`);
    assertEquals((seg[4]! << 8) | seg[5]!, 0x1234 + i, "IP id increments");
    const seq = ((seg[24]! << 24) | (seg[25]! << 16) | (seg[26]! << 8) | seg[27]!) >>> 0;
    assertEquals(seq, (0xffffff00 + i * 1000) >>> 0, "sequence (wraps)");
    assertEquals(seg[33], i === 3 ? 0x18 : 0x10, "PSH only on the last");
    const joined = new Uint8Array(payload.length + n - 40);
    joined.set(payload);
    joined.set(seg.subarray(40), payload.length);
    payload = joined;
  }
  assertEquals(payload, b.slice(VNET_HDR_BYTES + 40), "payload bytes in order");
});

Deno.test("TsoSplitter completes the checksum of a plain packet that needs it", () => {
  const b = superPacket(300, 1000);
  b[1] = 0; // no GSO, NEEDS_CSUM still set
  const all = new Uint8Array(TSO_REGION_BYTES);
  const t = new TsoSplitter(all, 0);
  t.read.set(b);
  assertEquals(t.begin(b.length), ReadKind.Plain);
  const readPacket = all.subarray(t.plainOff);
  assert(tcpValid(readPacket));
  const plain = superPacket(300, 1000);
  plain[0] = plain[1] = 0;
  plain[VNET_HDR_BYTES + 36] = 0xab;
  t.read.set(plain);
  assertEquals(t.begin(plain.length), ReadKind.Plain);
  assertEquals(readPacket[36], 0xab, "a complete packet is left alone");
});

Deno.test("TsoSplitter refuses unknown GSO types and truncated reads", () => {
  const t = new TsoSplitter(new Uint8Array(TSO_REGION_BYTES), 0);
  const udp = superPacket(3000, 1000);
  udp[1] = 3; // VIRTIO_NET_HDR_GSO_UDP
  t.read.set(udp);
  assertEquals(t.begin(udp.length), ReadKind.Bad);
  assertEquals(t.begin(8), ReadKind.Bad);
  t.read.set(superPacket(3000, 1000));
  assertEquals(t.begin(VNET_HDR_BYTES + 30), ReadKind.Bad);
});
