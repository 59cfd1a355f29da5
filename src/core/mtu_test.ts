import { assertEquals } from "../../tests/support/assert.ts";
import {
  autoTunMtu,
  fragmentsFor,
  innerMtuArithmetic,
  innerMtuForPath,
  outerPacketBytes,
  pathMtuOfPayload,
  payloadOfPathMtu,
  TUNNEL_OVERHEAD_BYTES,
} from "./mtu.ts";

Deno.test("mtu: the tunnel overhead is IPv4 20 + UDP 8 + header 16 + tag 16", () => {
  assertEquals(TUNNEL_OVERHEAD_BYTES, 60);
});

Deno.test("mtu: payload and path MTU differ by the IPv4 and UDP headers", () => {
  assertEquals(pathMtuOfPayload(1372), 1400);
  assertEquals(payloadOfPathMtu(1500), 1472);
});

Deno.test("mtu: inner MTU is path MTU - 60, and an inner packet grows by 60", () => {
  assertEquals(innerMtuForPath(1500), 1440);
  assertEquals(innerMtuForPath(1400), 1340);
  assertEquals(outerPacketBytes(1340), 1400);
  assertEquals(innerMtuArithmetic(1400), "1400 - 60 = 1340");
});

Deno.test("mtu: fragments of an outer packet", () => {
  assertEquals(fragmentsFor(1400, 1400), 1);
  assertEquals(fragmentsFor(1401, 1400), 2);
  // 1420 + 60 = 1480 over 1400: 1460 data bytes, 1376 per fragment (a multiple of 8).
  assertEquals(fragmentsFor(outerPacketBytes(1420), 1400), 2);
  assertEquals(fragmentsFor(9000, 1500), 7);
});

Deno.test("mtu: automatic TUN MTU follows the device, within the config range", () => {
  assertEquals(autoTunMtu(1500), { mtu: 1440, arithmetic: "1500 - 60 = 1440" });
  assertEquals(autoTunMtu(1400), { mtu: 1340, arithmetic: "1400 - 60 = 1340" });
  assertEquals(autoTunMtu(65536).mtu, 9000);
  assertEquals(autoTunMtu(65536).arithmetic, "65536 - 60 = 65476, kept within 576-9000: 9000");
  assertEquals(autoTunMtu(600).mtu, 576);
});
