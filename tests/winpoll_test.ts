/**
 * The Windows data path's poller and batch socket over the fake kernel32 and Winsock, without
 * root: WinPoller reports every signalled handle (WaitForMultipleObjects names only the lowest),
 * consumes auto-reset events, reports what each entry asked for, and POLLOUT at once for an entry
 * that knows it has room; WinsockBatchUdp moves batches through loopback, marks a datagram too
 * long for its slot, keeps the FD_WRITE a receive took out of the record, and reads its receive
 * queue's depth.
 * Needs gcc.
 */
import { assert, assertEquals, assertThrows } from "./support/assert.ts";
import { buildFakeWintun } from "./support/fakewintun/build.ts";
import { KERNEL32_SYMBOLS } from "../src/io/tun/wintun_abi.ts";
import { WinPoller } from "../src/io/win_poll.ts";
import { POLLIN, POLLOUT } from "../src/io/poll.ts";
import { WinsockBatchUdp } from "../src/io/udp/winsock_batch.ts";
import { parseIPv4 } from "../src/lib/ip.ts";

const linuxOnly = Deno.build.os !== "linux";
const handleOf = (p: Deno.PointerObject) => BigInt(Deno.UnsafePointer.value(p));

Deno.test({
  name: "WinPoller: every signalled handle is reported, not just the lowest; auto-reset consumed",
  ignore: linuxOnly,
  fn: async () => {
    const dll = await buildFakeWintun();
    const lib = Deno.dlopen(dll, KERNEL32_SYMBOLS);
    const k = lib.symbols;
    const ev = [0, 1, 2].map(() => k.CreateEventW(null, 0, 0, null)!);
    const manual = k.CreateEventW(null, 1, 0, null)!;
    const poller = new WinPoller(4, dll);
    try {
      ev.forEach((e, i) => poller.set(i, { fd: -1, handle: handleOf(e) }, POLLIN));
      poller.set(3, { fd: -1, handle: handleOf(manual) }, POLLIN | POLLOUT);
      const t0 = performance.now();
      assertEquals(poller.wait(40), 0, "nothing set: the timeout");
      assert(performance.now() - t0 >= 30);

      // 0 and 2 set: WaitForMultipleObjects names 0, the sweep finds 2 as well.
      k.SetEvent(ev[0]!);
      k.SetEvent(ev[2]!);
      assertEquals(poller.wait(1000), 2);
      assertEquals([0, 1, 2, 3].map((i) => poller.revents(i)), [POLLIN, 0, POLLIN, 0]);
      assertEquals(poller.wait(0), 0, "both auto-reset events were consumed by that wait");

      // A manual-reset event stays signalled and reports both events its entry asked for.
      k.SetEvent(manual);
      assertEquals(poller.wait(0), 1);
      assertEquals(poller.revents(3), POLLIN | POLLOUT);
      poller.setEvents(3, POLLIN);
      assertEquals(poller.wait(0), 1);
      assertEquals(poller.revents(3), POLLIN, "what the entry asks for now");
      assertEquals(poller.revents(0), 0, "revents are cleared by each wait");

      assertThrows(() => poller.set(0, { fd: 3 }, POLLIN), TypeError, "no Windows HANDLE");

      // A socket that took FD_WRITE out of its record (its event no longer set) says so:
      // asked for POLLOUT, it is ready at once; asked for POLLIN only, it waits.
      let room = true;
      poller.setEvents(3, 0); // the manual-reset event above is still set: not asked about now
      poller.set(1, { fd: -1, handle: handleOf(ev[1]!), writable: () => room }, POLLIN | POLLOUT);
      const t1 = performance.now();
      assertEquals(poller.wait(5000), 1);
      assert(performance.now() - t1 < 1000, "no wait");
      assertEquals(poller.revents(1), POLLOUT);
      poller.setEvents(1, POLLIN);
      assertEquals(poller.wait(30), 0, "not asked for POLLOUT: waits");
      poller.setEvents(1, POLLIN | POLLOUT);
      room = false;
      assertEquals(poller.wait(30), 0, "no room: waits");
    } finally {
      poller.close();
      for (const e of [...ev, manual]) k.CloseHandle(e);
      lib.close();
    }
  },
});

Deno.test({
  name: "WinsockBatchUdp: batches through loopback, a too-long datagram marked, FD_WRITE at select",
  ignore: linuxOnly,
  fn: async () => {
    const dll = await buildFakeWintun();
    const slots = (n: number, bytes: number) =>
      Array.from({ length: n }, () => new Uint8Array(bytes));
    const a = WinsockBatchUdp.open({
      dll,
      host: "127.0.0.1",
      port: 0,
      rxSlots: slots(8, 1500),
      txSlots: slots(8, 1500),
      sndbuf: 64 << 10,
      rcvbuf: 256 << 10,
    });
    const bigTx = slots(2, 4000);
    const b = WinsockBatchUdp.open({
      dll,
      host: "127.0.0.1",
      port: 0,
      rxSlots: slots(8, 1500),
      txSlots: bigTx,
    });
    const poller = new WinPoller(1, dll);
    try {
      assert(a.localPort > 0 && a.localPort !== b.localPort);
      poller.set(0, a, POLLIN | POLLOUT);
      assertEquals(poller.wait(0), 1, "FD_WRITE is recorded once when selected: the event is set");
      assertEquals(poller.revents(0), POLLIN | POLLOUT, "(an event says not which)");
      // A receive takes the record (WSAEnumNetworkEvents), resetting the event without losing
      // the FD_WRITE: the socket says it has room, and the poller reports POLLOUT alone.
      assertEquals(a.recv(), 0, "nothing yet");
      assertEquals(a.writable(), true);
      assertEquals(poller.wait(0), 1);
      assertEquals(poller.revents(0), POLLOUT);
      poller.setEvents(0, POLLIN);
      assertEquals(poller.wait(30), 0, "asked to read only: the event is reset, the wait runs out");

      // b sends a datagram that fits and one longer than a's 1500-byte slots.
      const lo = parseIPv4("127.0.0.1")!;
      bigTx[0]!.fill(7, 0, 100);
      bigTx[1]!.fill(9, 0, 3000);
      for (const [i, len] of [[0, 100], [1, 3000]] as const) {
        b.txLen[i] = len;
        b.txIp[i] = lo;
        b.txPort[i] = a.localPort;
      }
      assertEquals(b.send(2), 2);
      assertEquals(poller.wait(1000), 1, "FD_READ wakes the wait");
      assertEquals(poller.revents(0), POLLIN);
      // The receive queue's depth (FIONREAD), against the buffer asked for: what shedding reads.
      const mem = { rxQueued: 0, rxLimit: 0, txQueued: 0, txLimit: 0, rxDrops: 0 };
      assertEquals(a.memory(mem), true);
      assert(mem.rxQueued >= 3100, `both datagrams wait (${mem.rxQueued} bytes)`);
      assertEquals(mem.rxLimit, 256 << 10);
      assertEquals(a.recv(), 2);
      assertEquals([a.rxLen[0], a.rxIp[0], a.rxPort[0]], [100, lo, b.localPort]);
      assertEquals(a.rxLen[1], -1, "too long for the slot: marked for the caller to drop");
      assertEquals(a.recv(), 0, "drained");
      assertEquals(poller.wait(0), 0, "and the event was reset by the receive");
      assertEquals(a.setSendBuffer(16 << 10), 16 << 10);
      assertEquals(a.memory(mem), true);
      assertEquals(mem.rxQueued, 0, "drained");
    } finally {
      poller.close();
      a.close();
      b.close();
    }
  },
});
