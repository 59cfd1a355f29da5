import { assert, assertEquals, assertThrows } from "../../../tests/support/assert.ts";
import { FakeTun } from "./fake.ts";

Deno.test("FakeTun.read() returns injected packets in order, each owning its bytes", () => {
  const tun = new FakeTun("xvfake0");
  const src = new Uint8Array([0x45, 1, 2, 3]);
  tun.inject(src);
  src[1] = 99; // the queued copy must not change
  tun.inject(new Uint8Array([0x45, 9]));
  assertEquals(tun.pending, 2);
  const buf = new Uint8Array(16);
  assertEquals(tun.read(buf), 4);
  assertEquals([...buf.subarray(0, 4)], [0x45, 1, 2, 3]);
  const small = new Uint8Array(1);
  assertEquals(tun.read(small), 1, "truncated like the kernel");
  assertEquals(tun.read(buf), 0, "0 when nothing is waiting");
});

Deno.test("FakeTun.write() collects copies and honours dropWrite", () => {
  const tun = new FakeTun();
  const buf = new Uint8Array([0x45, 7, 7, 7, 0xff]);
  assertEquals(tun.write(buf, 4), 4);
  buf[1] = 0;
  assertEquals(tun.written.map((p) => [...p]), [[0x45, 7, 7, 7]]);
  tun.dropWrite = () => true;
  assertEquals(tun.write(buf, 4), -1);
  assertEquals(tun.takeWritten().length, 1);
  assertEquals(tun.written.length, 0);
  assertThrows(() => tun.write(buf, 6), RangeError);
});

Deno.test("FakeTun.waitReadable() resolves on inject, wake, timeout and close", async () => {
  const tun = new FakeTun();
  assertEquals(await tun.waitReadable(5), false, "timeout");
  const waiting = tun.waitReadable(-1);
  tun.inject(new Uint8Array([0x45]));
  assertEquals(await waiting, true);
  assertEquals(await tun.waitReadable(-1), true, "already queued");
  tun.read(new Uint8Array(4));

  const woken = tun.waitReadable(-1);
  tun.wake();
  assertEquals(await woken, false);
  tun.wake();
  assertEquals(await tun.waitReadable(-1), false, "a wake is kept for the next wait");

  const last = tun.waitReadable(-1);
  tun.close();
  assertEquals(await last, false);
  assert(tun.closed);
  assertThrows(() => tun.read(new Uint8Array(4)), Error, "closed");
});
