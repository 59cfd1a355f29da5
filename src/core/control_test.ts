import { assertEquals } from "../../tests/support/assert.ts";
import {
  decodeConfigPush,
  decodePing,
  encodeConfigPush,
  encodePing,
  type SessionConfig,
} from "./control.ts";
import { parseCidr, parseIPv4 } from "../lib/ip.ts";

const config: SessionConfig = {
  address: parseCidr("10.7.0.2/24")!,
  serverAddress: parseIPv4("10.7.0.1")!,
  mtu: 1420,
  routes: [parseCidr("0.0.0.0/0")!, parseCidr("198.51.100.0/24")!],
  dns: [parseIPv4("10.7.0.1")!],
  keepaliveMs: 10_000,
  routes6: [],
  dns6: [],
};

Deno.test("encodeConfigPush() round trips through decodeConfigPush()", () => {
  const wire = encodeConfigPush(config);
  assertEquals(decodeConfigPush(wire.subarray(1)), config);
});

Deno.test("decodeConfigPush() rejects malformed bodies without throwing", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  const good = JSON.parse(new TextDecoder().decode(encodeConfigPush(config).subarray(1)));
  const bad: unknown[] = [
    "",
    "null",
    "[]",
    "{",
    JSON.stringify({ ...good, v: 1 }),
    JSON.stringify({ ...good, mtu: 100 }),
    JSON.stringify({ ...good, mtu: "1420" }),
    JSON.stringify({ ...good, address: "10.7.0.300/24" }),
    JSON.stringify({ ...good, routes: ["x"] }),
    JSON.stringify({ ...good, routes: "10.0.0.0/8" }),
    JSON.stringify({ ...good, dns: [1] }),
    JSON.stringify({ ...good, keepalive_ms: 1.5 }),
  ];
  for (const b of bad) assertEquals(decodeConfigPush(enc(b as string)), undefined, String(b));
  assertEquals(decodeConfigPush(new Uint8Array([0xff, 0xfe])), undefined, "invalid UTF-8");
});

Deno.test("encodePing() round trips and decodePing() wants exactly 8 bytes", () => {
  const p = encodePing(3, 42, 123456789);
  assertEquals(decodePing(p.subarray(1)), [42, 123456789]);
  assertEquals(decodePing(p.subarray(1, 8)), undefined);
  assertEquals(decodePing(new Uint8Array(9)), undefined);
});
