import { assertEquals, assertThrows } from "../../tests/support/assert.ts";
import { IpPool, PoolExhaustedError } from "./pool.ts";
import { formatIPv4, parseCidr, parseIPv4 } from "../lib/ip.ts";

const cidr = (s: string) => parseCidr(s)!;

Deno.test("IpPool.allocate() gives the server the first address and clients the next", () => {
  const pool = new IpPool(cidr("10.7.0.0/24"));
  assertEquals(formatIPv4(pool.serverAddress), "10.7.0.1");
  assertEquals(formatIPv4(pool.allocate("a").address), "10.7.0.2");
  assertEquals(formatIPv4(pool.allocate("b").address), "10.7.0.3");
  assertEquals(pool.capacity, 253);
});

Deno.test("IpPool.allocate() is idempotent for a live owner", () => {
  const pool = new IpPool(cidr("10.7.0.0/24"));
  const a = pool.allocate("a");
  assertEquals(pool.allocate("a"), a);
  assertEquals(pool.size, 1);
});

Deno.test("IpPool.allocate() is sticky: a released owner gets its address back", () => {
  const pool = new IpPool(cidr("10.7.0.0/24"));
  const a1 = pool.allocate("a");
  pool.allocate("b");
  pool.release("a");
  pool.allocate("c"); // must not take a's remembered address while others are free
  const a2 = pool.allocate("a");
  assertEquals(a2.address, a1.address);
});

Deno.test("IpPool.allocate() throws PoolExhaustedError when full, and release frees", () => {
  const pool = new IpPool(cidr("10.7.0.0/29")); // .1 server, .2-.6 clients
  for (const o of ["a", "b", "c", "d", "e"]) pool.allocate(o);
  assertThrows(() => pool.allocate("f"), PoolExhaustedError, "10.7.0.0/29 is exhausted");
  pool.release("c");
  assertEquals(formatIPv4(pool.allocate("f").address), "10.7.0.4");
});

Deno.test("IpPool.reserve() keeps static addresses for their owner only", () => {
  const pool = new IpPool(cidr("10.7.0.0/29"));
  pool.reserve("s", parseIPv4("10.7.0.2")!);
  assertEquals(formatIPv4(pool.allocate("a").address), "10.7.0.3");
  assertEquals(formatIPv4(pool.allocate("s").address), "10.7.0.2");
  assertThrows(() => pool.reserve("x", parseIPv4("10.7.0.1")!), Error, "not a client address");
});
