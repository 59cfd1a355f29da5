import { assert, assertEquals } from "../../tests/support/assert.ts";
import { cidr6Contains, formatCidr6, formatIPv6, parseCidr6, parseIPv6, sourceKey } from "./ip6.ts";

Deno.test("parseIPv6() and formatIPv6() round-trip RFC 5952 text", () => {
  for (
    const [input, canonical] of <[string, string][]> [
      ["fd00::1", "fd00::1"],
      ["::", "::"],
      ["::1", "::1"],
      ["2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // the first longest zero run
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group stays
      ["[fe80::1%eth0]", "fe80::1"],
      ["::ffff:192.0.2.1", "::ffff:192.0.2.1"],
      ["64:ff9b::198.51.100.7", "64:ff9b::c633:6407"],
      ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
    ]
  ) {
    const b = parseIPv6(input);
    assert(b, input);
    assertEquals(formatIPv6(b), canonical, input);
  }
});

Deno.test("parseIPv6() refuses what is not an address", () => {
  for (
    const bad of [
      "",
      "1.2.3.4",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "12345::",
      "g::1",
      "::1.2.3.256",
      "1:2:3:4:5:6:7::8",
    ]
  ) assertEquals(parseIPv6(bad), undefined, bad);
});

Deno.test("parseCidr6() and cidr6Contains() honour partial bytes", () => {
  const c = parseCidr6("fd00:7::/33")!;
  assertEquals(formatCidr6(c), "fd00:7::/33");
  assert(cidr6Contains(c, parseIPv6("fd00:7:7fff::1")!));
  assert(!cidr6Contains(c, parseIPv6("fd00:7:8000::1")!));
  assert(cidr6Contains(parseCidr6("::/0")!, parseIPv6("2001:db8::1")!));
  assertEquals(parseCidr6("fd00::/129"), undefined);
  assertEquals(parseCidr6("fd00::1")!.prefix, 128);
});

Deno.test("sourceKey() files IPv6 sources per /64 and IPv4 per address", () => {
  assertEquals(sourceKey("2001:db8:1:2::7"), "2001:db8:1:2::/64");
  assertEquals(sourceKey("2001:db8:1:2:ffff::9"), sourceKey("2001:db8:1:2::7"));
  assert(sourceKey("2001:db8:1:3::7") !== sourceKey("2001:db8:1:2::7"));
  assertEquals(sourceKey("::ffff:198.51.100.7"), "198.51.100.7");
  assertEquals(sourceKey("198.51.100.7"), "198.51.100.7");
});
