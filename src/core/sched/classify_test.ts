/** The flow hash and priority rules on IPv4 fragments: a datagram's fragments stay together. */
import { assert, assertEquals } from "../../../tests/support/assert.ts";
import { udpPacket } from "../../../tests/support/packets.ts";
import { parseIPv4 } from "../../lib/ip.ts";
import { flowHash, matchesPriority, type PriorityRule } from "./classify.ts";

const A = parseIPv4("10.7.0.2")!, B = parseIPv4("198.51.100.7")!;

/** A UDP datagram's fragment: the first (MF, offset 0) or a later one (offset in 8-byte units). */
function fragment(first: boolean, ports: [number, number]): Uint8Array {
  const p = udpPacket(A, B, new Uint8Array(64), ports);
  if (first) p[6] = 0x20; // MF
  else p[7] = 9; // offset 72 bytes, no MF: the last fragment, whose "ports" are payload
  return p;
}

Deno.test("flowHash: every fragment of a datagram lands in the same flow", () => {
  const first = fragment(true, [27015, 27016]), last = fragment(false, [27015, 27016]);
  assertEquals(flowHash(first, first.length, 7), flowHash(last, last.length, 7));
  const whole = udpPacket(A, B, new Uint8Array(64), [27015, 27016]);
  const other = udpPacket(A, B, new Uint8Array(64), [27015, 27017]);
  assert(flowHash(whole, whole.length, 7) !== flowHash(other, other.length, 7), "ports count");
});

Deno.test("matchesPriority: a later fragment's payload is not read as ports", () => {
  const rules: PriorityRule[] = [{ ports: [[27015, 27015]], protocols: [17] }];
  const whole = udpPacket(A, B, new Uint8Array(64), [5000, 27015]);
  assert(matchesPriority(whole, whole.length, rules, true));
  const later = fragment(false, [5000, 27015]);
  assert(!matchesPriority(later, later.length, rules, true));
});
