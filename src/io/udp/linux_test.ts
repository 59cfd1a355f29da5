/**
 * Tests for the batching FFI UDP socket, over 127.0.0.1 only; no root needed.
 *
 * Loopback delivers synchronously inside the sender's system call, so a datagram is in the
 * receiver's queue by the time send() returns; the helpers still retry briefly to be safe.
 */
import { assert, assertEquals, assertThrows } from "../../../tests/support/assert.ts";
import { Errno, ErrnoError, libc, SOL_SOCKET } from "../_libc.ts";
import { type LinuxUdpOptions, LinuxUdpSocket } from "./linux.ts";
import { rootTest } from "../../../tests/support/root.ts";

const LOCALHOST = 0x7f000001;

/** `n` slots of `size` bytes, each its own ArrayBuffer. */
function slots(n: number, size: number): Uint8Array[] {
  return Array.from({ length: n }, () => new Uint8Array(size));
}

/** `n` slots of `size` bytes as distinct regions of one ArrayBuffer. */
function sharedSlots(n: number, size: number): Uint8Array[] {
  const all = new Uint8Array(n * size);
  return Array.from({ length: n }, (_, i) => all.subarray(i * size, (i + 1) * size));
}

/** Opens a socket on 127.0.0.1 with an ephemeral port. */
function open(o: Partial<LinuxUdpOptions> = {}): LinuxUdpSocket {
  return LinuxUdpSocket.open({
    host: "127.0.0.1",
    port: 0,
    rxSlots: slots(16, 2048),
    txSlots: slots(16, 2048),
    ...o,
  });
}

/** Fills `buf[0, len)` with a pattern that identifies datagram `id`. */
function fill(buf: Uint8Array, len: number, id: number): void {
  for (let i = 0; i < len; i++) buf[i] = (id * 31 + i * 7) & 0xff;
}

/** Whether `buf[0, len)` holds the pattern of datagram `id`. */
function holds(buf: Uint8Array, len: number, id: number): boolean {
  for (let i = 0; i < len; i++) if (buf[i] !== ((id * 31 + i * 7) & 0xff)) return false;
  return true;
}

/** Puts datagram `id` of `len` bytes into tx slot `j` of `s`, addressed to `to`. */
function stage(
  s: LinuxUdpSocket,
  slotsOf: Uint8Array[],
  j: number,
  id: number,
  len: number,
  to: LinuxUdpSocket,
): void {
  fill(slotsOf[j]!, len, id);
  s.txLen[j] = len;
  s.txIp[j] = LOCALHOST;
  s.txPort[j] = to.localPort;
}

/** A received datagram, copied out of its slot. */
interface Got {
  len: number;
  ip: number;
  port: number;
  bytes: Uint8Array;
}

/** Receives until `want` datagrams arrived (or 2 s passed), copying each out of its slot. */
async function receive(s: LinuxUdpSocket, rx: Uint8Array[], want: number): Promise<Got[]> {
  const out: Got[] = [];
  const end = Date.now() + 2000;
  while (out.length < want && Date.now() < end) {
    const n = s.recv();
    for (let i = 0; i < n; i++) {
      const len = s.rxLen[i]!;
      out.push({
        len,
        ip: s.rxIp[i]!,
        port: s.rxPort[i]!,
        bytes: len < 0 ? new Uint8Array(0) : rx[i]!.slice(0, len),
      });
    }
    if (n === 0) await new Promise((r) => setTimeout(r, 1));
  }
  return out;
}

Deno.test("LinuxUdpSocket round-trips datagrams of 0..1472 and 9000 bytes with their source", async () => {
  const rx = sharedSlots(64, 9216); // regions of one ArrayBuffer
  const tx = slots(32, 9216);
  const a = open({ txSlots: tx });
  const b = open({ rxSlots: rx });
  try {
    assertEquals(a.localHost, "127.0.0.1");
    assert(a.localPort > 0 && a.localPort !== b.localPort);
    const sizes = [...Array.from({ length: 1473 }, (_, i) => i), 9000];
    for (let at = 0; at < sizes.length; at += tx.length) {
      const batch = sizes.slice(at, at + tx.length);
      batch.forEach((len, j) => stage(a, tx, j, at + j, len, b));
      assertEquals(a.send(batch.length), batch.length);
      const got = await receive(b, rx, batch.length);
      assertEquals(got.length, batch.length);
      got.forEach((g, j) => {
        assertEquals([g.len, g.ip, g.port], [batch[j], LOCALHOST, a.localPort]);
        assert(holds(g.bytes, g.len, at + j), `datagram ${at + j} has the wrong bytes`);
      });
    }
    assertEquals(a.txDropped, 0);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("LinuxUdpSocket.recv() returns a batch", async () => {
  const tx = slots(16, 2048);
  const rx = slots(16, 2048);
  const a = open({ txSlots: tx });
  const b = open({ rxSlots: rx });
  try {
    for (let j = 0; j < 10; j++) stage(a, tx, j, j, 100 + j, b);
    assertEquals(a.send(10), 10);
    const n = b.recv();
    assert(n > 1, `expected a batch, got ${n}`);
    const rest = await receive(b, rx, 10 - n);
    assertEquals(n + rest.length, 10);
    assertEquals(b.rxLen[0], 100);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("LinuxUdpSocket.recv() returns 0 on an empty socket (EAGAIN)", () => {
  const s = open();
  try {
    assertEquals(s.recv(), 0);
    assertEquals(s.recv(), 0);
  } finally {
    s.close();
  }
});

Deno.test("LinuxUdpSocket.recv() reports a datagram longer than its slot as rxLen -1", async () => {
  const tx = slots(4, 2048);
  const rx = slots(4, 100);
  const a = open({ txSlots: tx });
  const b = open({ rxSlots: rx });
  try {
    stage(a, tx, 0, 1, 200, b);
    stage(a, tx, 1, 2, 100, b);
    stage(a, tx, 2, 3, 50, b);
    assertEquals(a.send(3), 3);
    const got = await receive(b, rx, 3);
    assertEquals(got.map((g) => g.len), [-1, 100, 50]);
    assert(holds(got[1]!.bytes, 100, 2) && holds(got[2]!.bytes, 50, 3));
    assertEquals(got[0]!.port, a.localPort);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("LinuxUdpSocket.send() with GSO delivers every segment in order with its bytes", async () => {
  const tx = slots(128, 2048);
  const rx = slots(128, 2048);
  const a = open({ txSlots: tx, gso: true });
  const b = open({ rxSlots: rx, rcvbuf: 1 << 20 }); // no UDP_GRO: sees single datagrams
  const cRx = slots(16, 2048);
  const c = open({ rxSlots: cRx });
  try {
    assert(a.gsoEnabled, "kernel refused UDP_SEGMENT on loopback");
    // Runs: 70 x 1000 (longer than one GSO message), a short tail, a new size, an empty
    // datagram, a detour to another socket, a size that grows (no merge), single ones.
    const plan: Array<[number, LinuxUdpSocket]> = [];
    for (let i = 0; i < 70; i++) plan.push([1000, b]);
    plan.push([300, b]);
    for (let i = 0; i < 5; i++) plan.push([500, b]);
    plan.push([0, b], [500, b], [500, c], [500, b], [600, b], [700, b], [1472, b], [1472, b]);
    for (let i = 0; i < 40; i++) plan.push([1400, b]);
    plan.push([1400, c]);
    plan.forEach(([len, to], j) => stage(a, tx, j, j, len, to));
    assertEquals(a.send(plan.length), plan.length);
    const toB = plan.map(([len, to], j) => ({ len, to, j })).filter((p) => p.to === b);
    const got = await receive(b, rx, toB.length);
    assertEquals(got.map((g) => g.len), toB.map((p) => p.len));
    got.forEach((g, i) => {
      assert(holds(g.bytes, g.len, toB[i]!.j), `datagram ${toB[i]!.j} has the wrong bytes`);
      assertEquals([g.ip, g.port], [LOCALHOST, a.localPort]);
    });
    const gotC = await receive(c, cRx, 2);
    assertEquals(gotC.length, 2);
    assertEquals(a.gsoEnabled, true);
    assertEquals(a.txDropped, 0);
  } finally {
    a.close();
    b.close();
    c.close();
  }
});

Deno.test("LinuxUdpSocket.send() resends a GSO run the kernel refuses as single datagrams", async () => {
  const tx = slots(16, 2048);
  const rx = slots(16, 2048);
  const a = open({ txSlots: tx, gso: true });
  const b = open({ rxSlots: rx });
  try {
    // SO_NO_CHECK (asm-generic/socket.h: 11) turns off UDP checksums, which GSO needs: the
    // kernel then refuses every UDP_SEGMENT message with EINVAL (udp_send_skb), while single
    // datagrams still go out. EIO (no checksum offload before Linux 6.11, or an IPsec route)
    // takes the same path and also turns GSO off; this kernel cannot be made to produce it.
    const one = new Uint8Array(new Int32Array([1]).buffer);
    assertEquals(libc().setsockopt(a.fd, SOL_SOCKET, 11, one, 4), 0);
    for (let j = 0; j < 12; j++) stage(a, tx, j, j, j < 10 ? 800 : 100 + j, b);
    assertEquals(a.send(12), 12);
    const got = await receive(b, rx, 12);
    assertEquals(got.map((g) => g.len), [...Array(10).fill(800), 110, 111]);
    got.forEach((g, j) => assert(holds(g.bytes, g.len, j), `datagram ${j} has the wrong bytes`));
    assertEquals([a.txDropped, a.gsoEnabled], [0, true]);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("LinuxUdpSocket.send(count, first) sends a later part of the slots", async () => {
  const tx = slots(8, 2048);
  const rx = slots(8, 2048);
  const a = open({ txSlots: tx });
  const b = open({ rxSlots: rx });
  try {
    for (let j = 0; j < 8; j++) stage(a, tx, j, j, 10 + j, b);
    assertEquals(a.send(3, 5), 3);
    const got = await receive(b, rx, 3);
    assertEquals(got.map((g) => g.len), [15, 16, 17]);
    assertThrows(() => a.send(4, 5), RangeError, "outside the 8 tx slots");
    a.txLen[0] = 2049;
    assertThrows(() => a.send(1), RangeError, "txLen[0] = 2049");
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("LinuxUdpSocket.send() skips a datagram the kernel refuses and sends the rest", async () => {
  const tx = slots(4, 2048);
  const rx = slots(4, 2048);
  const a = open({ txSlots: tx });
  const b = open({ rxSlots: rx });
  try {
    stage(a, tx, 0, 0, 10, b);
    stage(a, tx, 1, 1, 11, b);
    a.txPort[1] = 0; // port 0: EINVAL for this datagram only
    stage(a, tx, 2, 2, 12, b);
    assertEquals(a.send(3), 3);
    assertEquals([a.txDropped, a.lastTxErrno], [1, Errno.EINVAL]);
    const got = await receive(b, rx, 2);
    assertEquals(got.map((g) => g.len), [10, 12]);
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("LinuxUdpSocket interoperates with Deno.listenDatagram both ways", async () => {
  const tx = slots(4, 2048);
  const rx = slots(4, 2048);
  const s = open({ txSlots: tx, rxSlots: rx });
  const d = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  try {
    const dPort = (d.addr as Deno.NetAddr).port;
    const payload = new Uint8Array(1200);
    fill(payload, payload.length, 7);
    await d.send(payload, { transport: "udp", hostname: "127.0.0.1", port: s.localPort });
    const got = await receive(s, rx, 1);
    assertEquals(got.length, 1);
    assertEquals([got[0]!.len, got[0]!.ip, got[0]!.port], [1200, LOCALHOST, dPort]);
    assert(holds(got[0]!.bytes, 1200, 7));

    fill(tx[0]!, 900, 8);
    s.txLen[0] = 900;
    s.txIp[0] = LOCALHOST;
    s.txPort[0] = dPort;
    assertEquals(s.send(1), 1);
    const [data, from] = await d.receive();
    assertEquals(data.length, 900);
    assert(holds(data, 900, 8));
    assertEquals((from as Deno.NetAddr).port, s.localPort);
  } finally {
    s.close();
    d.close();
  }
});

Deno.test("LinuxUdpSocket moves 200k datagrams without growing the heap", () => {
  const tx = slots(32, 1500);
  const txGso = slots(32, 1500);
  const rx = slots(32, 1500);
  const a = open({ txSlots: tx });
  const g = open({ txSlots: txGso, gso: true });
  const b = open({ rxSlots: rx, rcvbuf: 1 << 20 });
  try {
    for (let j = 0; j < 32; j++) {
      stage(a, tx, j, j, 1400, b);
      stage(g, txGso, j, j, 1400, b);
    }
    let received = 0;
    /** Sends 32 plainly and 32 with GSO, receives what arrived, `rounds` times; no allocation. */
    const pump = (rounds: number): void => {
      for (let r = 0; r < rounds; r++) {
        a.send(32);
        for (let n = b.recv(); n > 0; n = b.recv()) received += n;
        g.send(32);
        for (let n = b.recv(); n > 0; n = b.recv()) received += n;
      }
    };
    pump(1000); // warm-up: let V8 optimize send/recv and their FFI calls
    received = 0;
    const samples: number[] = [];
    const start = Deno.memoryUsage().heapUsed;
    for (let i = 0; i < 25; i++) {
      pump(125); // 8000 datagrams between samples
      samples.push(Deno.memoryUsage().heapUsed);
    }
    const grown = samples[samples.length - 1]! - start;
    assert(received > 190_000, `only ${received} of 200000 datagrams arrived`);
    // No GC ran (heapUsed never fell) and the heap grew < 1 MB: < 5 bytes per datagram, i.e.
    // only the 25 memoryUsage() results. A per-datagram object (even 16 bytes) would have
    // filled the young generation and triggered a scavenge, which shows as a fall.
    assert(
      samples.every((v, i) => v >= (samples[i - 1] ?? start)),
      `heap fell, a GC ran: ${samples.map((v) => v - start).join(" ")}`,
    );
    assert(grown < 1 << 20, `heap grew ${grown} bytes over 200k datagrams`);
  } finally {
    a.close();
    g.close();
    b.close();
  }
});

Deno.test("LinuxUdpSocket.open() names host:port and the errno when the port is taken", () => {
  const a = open();
  try {
    const err = assertThrows(
      () => open({ port: a.localPort }),
      ErrnoError,
      `UDP 127.0.0.1:${a.localPort}: bind() failed: EADDRINUSE`,
    );
    assert(err.message.includes("another process uses that port"), err.message);
    assertThrows(() => open({ host: "localhost" }), TypeError, "is not an IPv4 or IPv6 address");
    assertThrows(() => open({ port: 70000 }), RangeError, "0..65535");
    assertThrows(() => open({ rxSlots: [] }), RangeError, "rxSlots must hold 1..1024");
  } finally {
    a.close();
  }
});

Deno.test("LinuxUdpSocket.open() sets buffer sizes", () => {
  const s = open({ sndbuf: 1 << 20, rcvbuf: 1 << 20 });
  try {
    // The kernel doubles the request; without CAP_NET_ADMIN it is capped at [rw]mem_max.
    if (Deno.uid() === 0) assertEquals([s.sndbuf, s.rcvbuf], [2 << 20, 2 << 20]);
    else assert(s.sndbuf > 0 && s.rcvbuf > 0);
  } finally {
    s.close();
  }
});

Deno.test("LinuxUdpSocket after close() throws a clear error", () => {
  const s = open();
  s.close();
  s.close(); // idempotent
  assertEquals(s.fd, -1);
  assertThrows(() => s.recv(), Error, "recv() on closed UDP socket 127.0.0.1:");
  assertThrows(() => s.send(0), Error, "send() on closed UDP socket 127.0.0.1:");
});

rootTest(
  "LinuxUdpSocket.open() binds to a device (SO_BINDTODEVICE) and names a missing one",
  async () => {
    const tx = slots(4, 2048);
    const rx = slots(4, 2048);
    const a = open({ txSlots: tx, device: "lo" });
    const b = open({ rxSlots: rx });
    try {
      stage(a, tx, 0, 7, 100, b);
      assertEquals(a.send(1), 1);
      const [got] = await receive(b, rx, 1);
      assert(got && holds(got.bytes, got.len, 7), "the datagram left through lo");
    } finally {
      a.close();
      b.close();
    }
    const err = assertThrows(() => open({ device: "nosuchdev0" }), ErrnoError) as ErrnoError;
    assertEquals(err.errno, Errno.ENODEV);
    assert(err.message.includes("SO_BINDTODEVICE, nosuchdev0) failed: ENODEV"), err.message);
  },
);

const V6_LOOPBACK = new Uint8Array(16);
V6_LOOPBACK[15] = 1;

Deno.test("LinuxUdpSocket on [::] takes IPv6 and IPv4 peers (dual stack) and answers both", async () => {
  const rx = slots(16, 2048), tx = slots(16, 2048);
  const srv = open({ host: "::", rxSlots: rx, txSlots: tx, tos: true, gso: true });
  const v4tx = slots(4, 2048), v4rx = slots(4, 2048);
  const v4 = open({ txSlots: v4tx, rxSlots: v4rx });
  const v6rx = slots(16, 2048), v6tx = slots(4, 2048);
  const v6 = open({ host: "::1", rxSlots: v6rx, txSlots: v6tx });
  try {
    assertEquals([srv.family, srv.localHost], [6, "::"]);
    assertEquals(v6.localHost, "::1");
    // An IPv4 peer of the dual-stack socket comes out as IPv4, as on an IPv4 socket.
    fill(v4tx[0]!, 100, 1);
    v4.txLen[0] = 100;
    v4.txIp[0] = LOCALHOST;
    v4.txPort[0] = srv.localPort;
    assertEquals(v4.send(1), 1);
    // An IPv6 peer: rxV6 set, its address in rxIp6.
    fill(v6tx[0]!, 200, 2);
    v6.txLen[0] = 200;
    v6.txV6[0] = 1;
    v6.txIp6.set(V6_LOOPBACK, 0);
    v6.txPort[0] = srv.localPort;
    v6.txTos[0] = 0;
    assertEquals(v6.send(1), 1);
    const got = await receive(srv, rx, 2);
    assertEquals(got.length, 2);
    const fromV4 = [0, 1].find((i) => srv.rxV6[i] === 0)!;
    const fromV6 = 1 - fromV4;
    assertEquals([srv.rxIp[fromV4], srv.rxPort[fromV4]], [LOCALHOST, v4.localPort]);
    assertEquals([srv.rxV6[fromV6], srv.rxPort[fromV6]], [1, v6.localPort]);
    assertEquals(srv.rxIp6.slice(16 * fromV6, 16 * fromV6 + 16), V6_LOOPBACK);
    // Answers: a GSO run to the IPv6 peer (with a traffic class), one datagram to the IPv4 one.
    for (let j = 0; j < 5; j++) {
      fill(tx[j]!, 1000, 10 + j);
      srv.txLen[j] = 1000;
      srv.txV6[j] = 1;
      srv.txIp6.set(V6_LOOPBACK, 16 * j);
      srv.txPort[j] = v6.localPort;
      srv.txTos[j] = 0x88; // AF41 with ECT(0)
    }
    fill(tx[5]!, 300, 20);
    srv.txLen[5] = 300;
    srv.txV6[5] = 0;
    srv.txIp[5] = LOCALHOST;
    srv.txPort[5] = v4.localPort;
    assertEquals(srv.send(6), 6);
    const back6 = await receive(v6, v6rx, 5);
    assertEquals(back6.map((g) => g.len), [1000, 1000, 1000, 1000, 1000]);
    back6.forEach((g, j) => assert(holds(g.bytes, 1000, 10 + j)));
    const back4 = await receive(v4, v4rx, 1);
    assertEquals(back4.length, 1);
    assert(holds(back4[0]!.bytes, 300, 20));
    assertEquals(srv.txDropped, 0);
  } finally {
    srv.close();
    v4.close();
    v6.close();
  }
});

Deno.test("LinuxUdpSocket with pktinfo learns the address each datagram came to and replies from it", async () => {
  const rx = slots(16, 2048), tx = slots(16, 2048);
  const srv = open({ host: "0.0.0.0", rxSlots: rx, txSlots: tx, pktinfo: true });
  const peerRx = slots(16, 2048), peerTx = slots(4, 2048);
  const peer = open({ host: "127.0.0.1", rxSlots: peerRx, txSlots: peerTx });
  try {
    // 127.0.0.2 is also this host's (all of 127/8 is loopback): a "second address".
    for (const [k, dst] of [[0, 0x7f000002], [1, LOCALHOST]] as const) {
      fill(peerTx[k]!, 64, k);
      peer.txLen[k] = 64;
      peer.txIp[k] = dst;
      peer.txPort[k] = srv.localPort;
    }
    assertEquals(peer.send(2), 2);
    const got = await receive(srv, rx, 2);
    assertEquals(got.length, 2);
    const locals = [srv.rxLocal[0]!, srv.rxLocal[1]!].map((i) => srv.locals[i]!.text);
    assertEquals(locals, ["127.0.0.2", "127.0.0.1"]);
    // Replies name the local index they came with: each leaves from that address.
    for (let j = 0; j < 2; j++) {
      srv.txLen[j] = 10;
      srv.txIp[j] = LOCALHOST;
      srv.txPort[j] = peer.localPort;
      srv.txLocal[j] = srv.rxLocal[j]!;
    }
    assertEquals(srv.send(2), 2);
    const back = await receive(peer, peerRx, 2);
    assertEquals(back.map((g) => g.ip), [0x7f000002, LOCALHOST], "from the address asked");
  } finally {
    srv.close();
    peer.close();
  }
});
