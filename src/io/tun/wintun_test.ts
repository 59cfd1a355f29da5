import { assert, assertEquals, assertThrows } from "../../../tests/support/assert.ts";
import {
  formatDriverVersion,
  invalidAdapterNameReason,
  openWintun,
  requestedGuid,
} from "./wintun.ts";

Deno.test("openWintun() with a missing DLL says where to get it, and loads nothing", () => {
  const dll = "/nonexistent/xvpn-test/wintun.dll";
  assertThrows(
    () => openWintun("xvpn0", { dll }),
    Error,
    `wintun.dll not found at ${dll}: download the signed DLL from https://www.wintun.net/`,
  );
});

Deno.test("openWintun() rejects a name Windows cannot take before loading anything", () => {
  const dll = "/nonexistent/wintun.dll";
  assertThrows(() => openWintun("", { dll }), Error, "the name is empty");
  assertThrows(() => openWintun("x".repeat(128), { dll }), Error, "at most 127");
  assertEquals(invalidAdapterNameReason("x".repeat(127)), undefined);
  assertEquals(invalidAdapterNameReason("xvpn Game Tunnel"), undefined, "spaces are fine");
});

Deno.test("requestedGuid(): stable per name, different across names, RFC 4122 v5 bits", () => {
  const a = requestedGuid("xvpn0");
  assertEquals([...a], [...requestedGuid("xvpn0")]);
  assert(a.some((b, i) => b !== requestedGuid("xvpn1")[i]), "another name, another GUID");
  assertEquals(a.length, 16);
  assertEquals(a[7]! >> 4, 5, "version 5 in Data3's high nibble (little-endian: byte 7)");
  assertEquals(a[8]! >> 6, 0b10, "the RFC 4122 variant");
});

Deno.test("formatDriverVersion(): major in the high word, minor in the low one", () => {
  assertEquals(formatDriverVersion(14), "0.14");
  assertEquals(formatDriverVersion((1 << 16) | 2), "1.2");
  assertEquals(formatDriverVersion(0), "unknown");
});
