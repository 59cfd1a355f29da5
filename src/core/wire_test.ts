import { assertEquals } from "../../tests/support/assert.ts";
import {
  classify,
  DATA_OVERHEAD_BYTES,
  HANDSHAKE_INIT_BYTES,
  HANDSHAKE_RESPONSE_BYTES,
  HEADER_BYTES,
  MessageType,
  PROTOCOL_VERSION,
  readCounter,
  readU32,
  writeHeader,
  writeNonce,
} from "./wire.ts";

Deno.test("writeHeader() round trips through classify(), readU32() and readCounter()", () => {
  const counters = [0, 1, 255, 256, 2 ** 32 - 1, 2 ** 32, 2 ** 48 + 12345, 2 ** 53 - 1];
  for (const counter of counters) {
    const d = new Uint8Array(HEADER_BYTES + 40);
    writeHeader(d, MessageType.Data, 0xab, 0xdeadbeef, counter);
    assertEquals(classify(d), MessageType.Data);
    assertEquals(d[2], 0xab);
    assertEquals(readU32(d, 4), 0xdeadbeef);
    assertEquals(readCounter(d), counter, `counter ${counter}`);
  }
});

Deno.test("classify() rejects every truncation of every message type", () => {
  const sizes: [number, number][] = [
    [MessageType.HandshakeInit, HANDSHAKE_INIT_BYTES],
    [MessageType.HandshakeResponse, HANDSHAKE_RESPONSE_BYTES],
    [MessageType.Data, DATA_OVERHEAD_BYTES],
    [MessageType.Control, DATA_OVERHEAD_BYTES],
  ];
  for (const [type, size] of sizes) {
    const d = new Uint8Array(size);
    writeHeader(d, type, 0, 1, 0);
    assertEquals(classify(d), type);
    for (let n = 0; n < size; n++) {
      const v = classify(d.subarray(0, n));
      assertEquals(typeof v, "string", `type ${type} truncated to ${n} bytes`);
    }
  }
});

Deno.test("classify() names the reason for wrong version, type and length", () => {
  const d = new Uint8Array(HANDSHAKE_INIT_BYTES);
  writeHeader(d, MessageType.HandshakeInit, 0, 0, 0);
  assertEquals(classify(d.subarray(0, 10)), "short");
  d[0] = PROTOCOL_VERSION + 1;
  assertEquals(classify(d), "bad_version");
  d[0] = PROTOCOL_VERSION;
  d[1] = 99;
  assertEquals(classify(d), "bad_type");
  d[1] = MessageType.HandshakeInit;
  assertEquals(classify(new Uint8Array([...d, 0])), "bad_length");
});

Deno.test("classify() never throws on random bytes", () => {
  for (let i = 0; i < 5000; i++) {
    const d = crypto.getRandomValues(new Uint8Array(i % 300));
    if (i % 3 === 0 && d.length) d[0] = 1;
    const v = classify(d);
    assertEquals(typeof v === "string" || typeof v === "number", true);
  }
});

Deno.test("readCounter() refuses counters that are not exact integers", () => {
  const d = new Uint8Array(HEADER_BYTES);
  writeHeader(d, MessageType.Data, 0, 0, 0);
  d[8] = 0xff;
  assertEquals(readCounter(d), -1);
});

Deno.test("writeNonce() is 4 zero bytes and the counter little endian (Noise / RFC 8439)", () => {
  const n = new Uint8Array(12).fill(7);
  writeNonce(n, 0x0102030405);
  assertEquals([...n], [0, 0, 0, 0, 5, 4, 3, 2, 1, 0, 0, 0]);
});
