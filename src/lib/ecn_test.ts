import { assertEquals } from "../../tests/support/assert.ts";
import { decapsulateEcn, Ecn, ecnOf, markCe, setEcn } from "./ecn.ts";
import { inetChecksum, udpPacket } from "../../tests/support/packets.ts";

const headerValid = (p: Uint8Array) => inetChecksum(p, 0, 20) === 0;

Deno.test("setEcn() changes the field and keeps the header checksum valid", () => {
  for (const tos of [0x00, 0x02, 0xb8, 0xfd]) {
    const p = udpPacket(0x0a000001, 0x0a000002, new Uint8Array(20));
    p[1] = tos;
    p[10] = p[11] = 0;
    const c = inetChecksum(p, 0, 20);
    p[10] = c >> 8;
    p[11] = c & 255;
    for (const ecn of [0, 1, 2, 3]) {
      setEcn(p, 0, ecn);
      assertEquals(ecnOf(p), ecn);
      assertEquals(p[1]! & 0xfc, tos & 0xfc, "DSCP untouched");
      assertEquals(headerValid(p), true, `checksum after TOS ${tos.toString(16)} -> ECN ${ecn}`);
    }
  }
});

Deno.test("markCe() marks ECN-capable packets and refuses Not-ECT ones", () => {
  const p = udpPacket(1, 2, new Uint8Array(4));
  assertEquals(markCe(p), false, "Not-ECT: the caller drops it");
  assertEquals(ecnOf(p), Ecn.NotEct);
  setEcn(p, 0, Ecn.Ect0);
  assertEquals(markCe(p), true);
  assertEquals(ecnOf(p), Ecn.Ce);
  assertEquals(headerValid(p), true);
  assertEquals(markCe(p), true, "already CE");
});

// RFC 6040 section 4.2, figure 4: rows are the inner field, columns the outer one.
Deno.test("decapsulateEcn() follows the RFC 6040 table", () => {
  const { NotEct: N, Ect0: E0, Ect1: E1, Ce: C } = Ecn;
  const table: [number, number[]][] = [
    //        outer: Not-ECT ECT(0) ECT(1)  CE
    [N, [N, N, N, -1]],
    [E0, [E0, E0, E1, C]],
    [E1, [E1, E1, E1, C]],
    [C, [C, C, C, C]],
  ];
  for (const [inner, row] of table) {
    [N, E0, E1, C].forEach((outer, k) => assertEquals(decapsulateEcn(outer, inner), row[k]));
  }
});
