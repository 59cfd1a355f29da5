import { assert, assertEquals } from "../../../tests/support/assert.ts";
import { Errno } from "../_libc.ts";
import { PmtuSocket } from "./pmtu.ts";

const linux = Deno.build.os === "linux";

Deno.test({
  name: "PmtuSocket: sends and receives over loopback, reads IP_MTU",
  ignore: !linux,
  async fn() {
    const peer = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const port = (peer.addr as Deno.NetAddr).port;
    const s = PmtuSocket.open("127.0.0.1", port, "do");
    try {
      assertEquals(s.send(new Uint8Array(1000).fill(7)), 0);
      const [got, from] = await peer.receive();
      assertEquals(got.length, 1000);
      await peer.send(new Uint8Array([1, 2, 3]), from);
      const buf = new Uint8Array(64);
      assertEquals(await s.receive(buf, 2000), { kind: "datagram", length: 3 });
      assertEquals([...buf.subarray(0, 3)], [1, 2, 3]);
      assertEquals(s.recv(buf), -Errno.EAGAIN, "nothing more waiting: no blocking");
      assertEquals(await s.receive(buf, 20), { kind: "timeout" });
      assert(s.pathMtu() >= 1280, `IP_MTU of loopback: ${s.pathMtu()}`);
      s.setMode("probe");
      // Larger than any IPv4 datagram can be: the kernel refuses it locally.
      assertEquals(s.send(new Uint8Array(65508)), Errno.EMSGSIZE);
    } finally {
      s.close();
      peer.close();
    }
  },
});

Deno.test({
  name: "PmtuSocket: an ICMP port unreachable surfaces as ECONNREFUSED",
  ignore: !linux,
  async fn() {
    // A port that was just free: bind, note it, close.
    const tmp = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    const port = (tmp.addr as Deno.NetAddr).port;
    tmp.close();
    const s = PmtuSocket.open("127.0.0.1", port);
    try {
      assertEquals(s.send(new Uint8Array(10)), 0);
      const r = await s.receive(new Uint8Array(64), 2000);
      assertEquals(r, { kind: "error", errno: Errno.ECONNREFUSED });
    } finally {
      s.close();
    }
    s.close(); // idempotent
  },
});
