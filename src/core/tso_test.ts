import { assert, assertEquals } from "../../tests/support/assert.ts";
import { ReadKind, TsoSplitter } from "./tso.ts";
import { VNET_HDR_BYTES } from "./gro.ts";

function sum16(b: Uint8Array, from: number, to: number, acc = 0): number {
  let i = from;
  for (; i + 1 < to; i += 2) acc += (b[i]! << 8) | b[i + 1]!;
  if (i < to) acc += b[i]! << 8;
  while (acc > 0xffff) acc = (acc & 0xffff) + (acc >>> 16);
  return acc;
}

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
  const t = new TsoSplitter();
  t.read.set(b);
  assertEquals(t.begin(b.length), ReadKind.Segments);
  assertEquals(t.count, 4);
  let payload = new Uint8Array(0);
  for (let i = 0; i < t.count; i++) {
    const n = t.segment(i);
    const seg = t.seg.slice(0, n);
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
  const t = new TsoSplitter();
  t.read.set(b);
  assertEquals(t.begin(b.length), ReadKind.Plain);
  assert(tcpValid(t.readPacket));
  const plain = superPacket(300, 1000);
  plain[0] = plain[1] = 0;
  plain[VNET_HDR_BYTES + 36] = 0xab;
  t.read.set(plain);
  assertEquals(t.begin(plain.length), ReadKind.Plain);
  assertEquals(t.readPacket[36], 0xab, "a complete packet is left alone");
});

Deno.test("TsoSplitter refuses unknown GSO types and truncated reads", () => {
  const t = new TsoSplitter();
  const udp = superPacket(3000, 1000);
  udp[1] = 3; // VIRTIO_NET_HDR_GSO_UDP
  t.read.set(udp);
  assertEquals(t.begin(udp.length), ReadKind.Bad);
  assertEquals(t.begin(8), ReadKind.Bad);
  t.read.set(superPacket(3000, 1000));
  assertEquals(t.begin(VNET_HDR_BYTES + 30), ReadKind.Bad);
});
