import { assert, assertEquals, assertThrows } from "../../tests/support/assert.ts";
import {
  describePathIndex,
  fastPathSockets,
  formatPathReport,
  openPortablePathSocket,
} from "./multipath.ts";

const PATHS = [{ interface: "wlan0" }, { source: "127.0.0.1" }];

Deno.test("multipath: per-path log figures read like 'Path 1 (wlan0): rtt 12.3 ms, loss 2.0%'", () => {
  const line = `${describePathIndex(PATHS, 0)}: ${
    formatPathReport({ index: 0, up: true, rttMs: 12.34, lossPct: 2, probes: 50 })
  }`;
  assertEquals(line, "Path 1 (wlan0): rtt 12.3 ms, loss 2.0%");
  assertEquals(
    formatPathReport({ index: 1, up: false, rttMs: -1, lossPct: 100, probes: 5 }),
    "rtt unknown, loss 100.0%, down",
  );
  assertEquals(describePathIndex(PATHS, 1), "Path 2 (127.0.0.1)");
});

Deno.test("multipath: the fast path binds a device or an address per path", () => {
  assertEquals(fastPathSockets(PATHS), [
    { host: "0.0.0.0", device: "wlan0" },
    { host: "127.0.0.1" },
  ]);
});

Deno.test("multipath: the portable path binds source addresses and refuses interfaces clearly", () => {
  const err = assertThrows(() => openPortablePathSocket(PATHS, 0));
  assert(err.message.includes("needs the fast data path (SO_BINDTODEVICE)"), err.message);
  const s = openPortablePathSocket(PATHS, 1);
  try {
    assertEquals(s.local.hostname, "127.0.0.1");
    assert(s.local.port > 0);
  } finally {
    s.close();
  }
});
