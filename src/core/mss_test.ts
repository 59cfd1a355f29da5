import { assert, assertEquals } from "../../tests/support/assert.ts";
import { clampMss, mssForMtu } from "./mss.ts";

function sum16(buf: Uint8Array, from: number, to: number, init = 0): number {
  let s = init;
  for (let i = from; i + 1 < to; i += 2) s += (buf[i]! << 8) | buf[i + 1]!;
  if ((to - from) & 1) s += buf[to - 1]! << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/** Full TCP checksum over the pseudo-header and segment; 0 when the stored one is right. */
function tcpChecksumResidue(p: Uint8Array): number {
  const ihl = (p[0]! & 15) * 4;
  const total = (p[2]! << 8) | p[3]!;
  const tcpLen = total - ihl;
  let s = sum16(p, 12, 20); // source and destination addresses
  s += 6 + tcpLen;
  s = sum16(p, ihl, total, s);
  return ~s & 0xffff;
}

function syn(mss: number, opts: number[] = [], flags = 0x02): Uint8Array {
  const options = [...opts, 2, 4, mss >> 8, mss & 255];
  while (options.length % 4) options.push(1);
  const tcpLen = 20 + options.length;
  const p = new Uint8Array(20 + tcpLen);
  p.set([0x45, 0, 0, p.length, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 7, 0, 2, 198, 51, 100, 7]);
  p.set([0x9c, 0x40, 0, 80, 1, 2, 3, 4, 0, 0, 0, 0, (tcpLen / 4) << 4, flags, 0xff, 0xff], 20);
  p.set(options, 40);
  const c = ~sum16(p, 12, 20, 6 + tcpLen + sum16(p, 20, p.length)) & 0xffff;
  p[36] = c >> 8;
  p[37] = c & 255;
  assertEquals(tcpChecksumResidue(p), 0, "test packet has a valid checksum");
  return p;
}

/** The MSS option's value. */
function mssOf(p: Uint8Array): number {
  for (let j = 40; j + 3 < p.length; j++) {
    if (p[j] === 2 && p[j + 1] === 4) return (p[j + 2]! << 8) | p[j + 3]!;
  }
  return -1;
}

Deno.test("clampMss() lowers a 1460 MSS to the tunnel's and keeps the checksum valid", () => {
  const p = syn(1460);
  assert(clampMss(p, p.length, mssForMtu(1420)));
  assertEquals(mssOf(p), 1380);
  assertEquals(tcpChecksumResidue(p), 0);
});

Deno.test("clampMss() fixes checksums for many MSS values and option layouts", () => {
  for (let mss = 1000; mss < 9000; mss += 37) {
    for (const opts of [[], [1, 1], [4, 2], [1, 3, 3, 7]]) {
      const p = syn(mss, opts, mss % 2 ? 0x12 : 0x02); // SYN or SYN-ACK
      const changed = clampMss(p, p.length, 1380);
      assertEquals(changed, mss > 1380);
      assertEquals(mssOf(p), Math.min(mss, 1380));
      assertEquals(tcpChecksumResidue(p), 0, `mss ${mss} opts ${opts}`);
    }
  }
});

Deno.test("clampMss() leaves non-SYN, non-TCP, fragments and malformed options alone", () => {
  const ack = syn(1460, [], 0x10);
  assertEquals(clampMss(ack, ack.length, 1380), false);
  const udp = syn(1460);
  udp[9] = 17;
  assertEquals(clampMss(udp, udp.length, 1380), false);
  const frag = syn(1460);
  frag[7] = 8;
  assertEquals(clampMss(frag, frag.length, 1380), false);
  const bad = syn(1460);
  bad[41] = 40; // option length runs past the header
  assertEquals(clampMss(bad, bad.length, 1380), false);
  for (let n = 0; n < 44; n++) clampMss(syn(1460), n, 1380); // truncations never throw
});
