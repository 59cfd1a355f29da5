/**
 * The Windows TUN code (src/io/tun/wintun.ts) over the fake wintun (a Linux TUN behind the
 * wintun.h API): the device contract on a real kernel, then a whole `xvpn connect` whose TUN
 * is a "Wintun adapter". This is all the Wintun code has run on; real Windows has not.
 */
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./support/assert.ts";
import { rootTest, uniqueName, withNetns } from "./support/root.ts";
import { buildFakeWintun } from "./support/fakewintun/build.ts";
import { inetChecksum } from "./support/packets.ts";
import { checkTunnelTraffic, withLab } from "./support/net.ts";
import { ProcessRunner } from "../src/io/command.ts";
import { openWintun, type WintunTun } from "../src/io/tun/wintun.ts";
import { WinApiError, WinError } from "../src/io/tun/wintun_abi.ts";
import { Lab } from "../src/demo/lab.ts";

const host = new ProcessRunner();

/** The matching echo reply of an IPv4 ICMP echo request: addresses swapped, checksums new. */
function echoReplyFor(req: Uint8Array): Uint8Array {
  const pkt = req.slice();
  const ihl = (pkt[0]! & 0x0f) * 4;
  pkt.set(req.subarray(16, 20), 12);
  pkt.set(req.subarray(12, 16), 16);
  pkt[8] = 64;
  pkt[10] = pkt[11] = 0;
  const h = inetChecksum(pkt, 0, ihl);
  pkt[10] = h >> 8;
  pkt[11] = h & 0xff;
  pkt[ihl] = 0; // echo reply
  pkt[ihl + 2] = pkt[ihl + 3] = 0;
  const c = inetChecksum(pkt, ihl);
  pkt[ihl + 2] = c >> 8;
  pkt[ihl + 3] = c & 0xff;
  return pkt;
}

/** The next IPv4 ICMP echo request read from `tun` (other packets are skipped). */
async function readEchoRequest(tun: WintunTun, ms: number): Promise<Uint8Array> {
  const buf = new Uint8Array(2048);
  const end = Date.now() + ms;
  while (Date.now() < end) {
    for (let n = tun.read(buf); n > 0; n = tun.read(buf)) {
      const ihl = (buf[0]! & 0x0f) * 4;
      if (buf[0]! >> 4 === 4 && buf[9] === 1 && buf[ihl] === 8) return buf.slice(0, n);
    }
    await tun.waitReadable(end - Date.now());
  }
  throw new Error("no ICMP echo request arrived through the fake wintun");
}

/** How long `p` takes to settle, in ms, and its value. */
async function timed<T>(p: Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const v = await p;
  return [v, performance.now() - t0];
}

const exists = async (name: string, ns?: string) =>
  (await host.run(["ip", ...(ns ? ["-n", ns] : []), "link", "show", "dev", name], {
    allowFailure: true,
  })).code === 0;

rootTest(
  "wintun (fake): waits, wakes and timeouts; a ping answered through read/write; EOF; close",
  async () => {
    const dll = await buildFakeWintun();
    await withNetns(async (_run, ns) => {
      const name = uniqueName("xvw");
      const tun = openWintun(name, { dll, kernel32: dll });
      try {
        assertEquals(tun.fd, -1);
        assertEquals(tun.kind, "wintun");
        assertStringIncludes(tun.description, `Wintun adapter "${name}" (driver 0.14`);
        const ifindex = Number(await Deno.readTextFile(`/sys/class/net/${name}/ifindex`));
        assertEquals(Number((tun.luid >> 24n) & 0xffffffn), ifindex, "LUID's NetLuidIndex");
        assertEquals(Number(tun.luid >> 48n), 53, "IF_TYPE_PROP_VIRTUAL");

        // Down, so nothing can arrive: a timeout is waited out, and false.
        let [ok, ms] = await timed(tun.waitReadable(80));
        assertEquals(ok, false);
        assert(ms >= 70, `the timeout was waited out (${ms} ms)`);
        assertEquals(tun.read(new Uint8Array(2048)), 0, "an empty ring reads as 0");
        // A wake with no wait pending ends the next wait at once; then it is spent.
        tun.wake();
        [ok, ms] = await timed(tun.waitReadable(5_000));
        assert(!ok && ms < 1_000, `a pending wake ended the wait (${ms} ms)`);
        [ok, ms] = await timed(tun.waitReadable(50));
        assert(!ok && ms >= 40, `the wake was consumed (${ms} ms)`);
        // A wake ends a wait in flight.
        setTimeout(() => tun.wake(), 50);
        [ok, ms] = await timed(tun.waitReadable(10_000));
        assert(!ok && ms >= 40 && ms < 2_000, `the wake ended the wait (${ms} ms)`);

        await host.run(["ip", "link", "set", "dev", name, "netns", ns]);
        await host.run(["ip", "-n", ns, "address", "add", "10.213.9.1/24", "dev", name]);
        await host.run(["ip", "-n", ns, "link", "set", "dev", name, "up"]);
        const pinger = new Deno.Command("ip", {
          args: [
            "netns",
            "exec",
            ns,
            "ping",
            "-n",
            "-c",
            "3",
            "-i",
            "0.2",
            "-W",
            "3",
            "10.213.9.2",
          ],
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        // A packet ends a wait, with true.
        [ok, ms] = await timed(tun.waitReadable(10_000));
        assert(ok && ms < 5_000, `a packet ended the wait (${ms} ms)`);
        for (let i = 0; i < 3; i++) {
          const req = await readEchoRequest(tun, 5_000);
          const reply = echoReplyFor(req);
          assertEquals(tun.write(reply, reply.length), reply.length);
        }
        const out = await pinger.output();
        const text = new TextDecoder().decode(out.stdout);
        assert(out.success, `ping through the fake wintun: ${text}`);
        assertStringIncludes(text, "3 received");

        // The interface goes away under the session: the next read is ERROR_HANDLE_EOF.
        await host.run(["ip", "-n", ns, "link", "del", "dev", name]);
        let eof: unknown;
        try {
          tun.read(new Uint8Array(2048));
        } catch (err) {
          eof = err;
        }
        assert(eof instanceof WinApiError, `read after the link went: ${eof}`);
        assertEquals(eof.code, WinError.ERROR_HANDLE_EOF);
        assertStringIncludes(eof.message, "WintunReceivePacket: ERROR_HANDLE_EOF (38)");
      } finally {
        tun.close();
        tun.close(); // idempotent
      }
    });
  },
);

rootTest(
  "wintun (fake): a full send ring drops (-1); close ends pending waits; a failed start undoes",
  async () => {
    const dll = await buildFakeWintun();
    const name = uniqueName("xvw");
    // The fake reads it at session start: after one packet its "ring" reports full.
    Deno.env.set("FAKE_WINTUN_SEND_LIMIT", "1");
    let tun: WintunTun;
    try {
      tun = openWintun(name, { dll, kernel32: dll });
    } finally {
      Deno.env.delete("FAKE_WINTUN_SEND_LIMIT");
    }
    try {
      await host.run(["ip", "link", "set", "dev", name, "up"]);
      const reply = echoReplyFor(
        Uint8Array.from([
          0x45,
          0,
          0,
          28,
          0,
          1,
          0,
          0,
          64,
          1,
          0,
          0,
          10,
          213,
          10,
          1,
          10,
          213,
          10,
          2,
          8,
          0,
          0,
          0,
          0,
          1,
          0,
          1,
        ]),
      );
      assertEquals(tun.write(reply, reply.length), reply.length);
      assertEquals(tun.write(reply, reply.length), -1, "ERROR_BUFFER_OVERFLOW is a drop");

      // Two waits in flight: close() ends both (the auto-reset wake is passed on to the second),
      // and the session and the adapter are released after the last.
      const a = tun.waitReadable(-1), b = tun.waitReadable(-1);
      tun.close();
      const [results, ms] = await timed(Promise.all([a, b]));
      assertEquals(results, [false, false]);
      assert(ms < 2_000, `close ended the waits (${ms} ms)`);
      assertEquals(await exists(name), false, "the adapter is removed once the waits are over");
      assertEquals(await tun.waitReadable(10), false, "waits after close return false at once");
    } finally {
      tun.close();
    }
    // A session that cannot start takes its adapter with it.
    const other = uniqueName("xvw");
    const err = assertThrows(
      () => openWintun(other, { dll, kernel32: dll, ringCapacity: 0x30000 }), // not a power of 2
      WinApiError,
      "WintunStartSession failed: ERROR_INVALID_PARAMETER (87)",
    );
    assertEquals((err as WinApiError).code, WinError.ERROR_INVALID_PARAMETER);
    assertEquals(await exists(other), false, "the adapter went with the failed session");
  },
);

rootTest(
  "wintun (fake): xvpn connect over the Windows TUN code: ping, 20 MiB TCP with verified bytes",
  async () => {
    const dll = await buildFakeWintun();
    await withLab(
      { dataPath: "portable", clientEnv: { XVPN_WINTUN_DLL: dll } },
      async (lab) => {
        await lab.up();
        const rate = await checkTunnelTraffic(lab);
        console.log(
          `  20 MiB client -> game over the fake wintun (portable path): ${
            rate.upMbps.toFixed(0)
          } Mbit/s; ` +
            `back ${rate.downMbps.toFixed(0)} Mbit/s`,
        );

        const log = await Deno.readTextFile(lab.path("client.log"));
        assertStringIncludes(log, 'TUN Wintun adapter "xvpn0" (driver 0.14');
        const stopped = await Lab.stop(lab.client);
        lab.client = undefined;
        assertEquals(stopped?.code, 0, `xvpn connect exits cleanly\n${await lab.logs()}`);
      },
    );
  },
);
