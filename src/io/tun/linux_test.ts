import {
  assert,
  assertEquals,
  assertRejects,
  assertThrows,
} from "../../../tests/support/assert.ts";
import { ProcessRunner } from "../command.ts";
import { formatIPv4, ipv4Dst, ipv4Src, ipVersion, parseIPv4 } from "../../lib/ip.ts";
import { Errno, ErrnoError } from "../_libc.ts";
import { openTun } from "./open.ts";
import { tunErrorMessage } from "./errors.ts";
import type { TunDevice } from "./device.ts";
import { rootTest, uniqueName, withNetns } from "../../../tests/support/root.ts";

const host = new ProcessRunner();

/** RFC 1071 checksum over `b`. */
function inetChecksum(b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Turns an ICMP echo request into the matching reply: swap addresses, type 0, checksums. */
function echoReplyFor(req: Uint8Array): Uint8Array {
  const pkt = req.slice();
  const ihl = (pkt[0]! & 0x0f) * 4;
  pkt.set(req.subarray(16, 20), 12);
  pkt.set(req.subarray(12, 16), 16);
  pkt[8] = 64; // fresh TTL
  pkt[10] = pkt[11] = 0;
  const hsum = inetChecksum(pkt.subarray(0, ihl));
  pkt[10] = hsum >> 8;
  pkt[11] = hsum & 0xff;
  pkt[ihl] = 0; // echo reply
  pkt[ihl + 2] = pkt[ihl + 3] = 0;
  const csum = inetChecksum(pkt.subarray(ihl));
  pkt[ihl + 2] = csum >> 8;
  pkt[ihl + 3] = csum & 0xff;
  return pkt;
}

/** Waits (via waitReadable) for an IPv4 ICMP echo request, skipping other traffic (IPv6 noise). */
async function readEchoRequest(tun: TunDevice, deadlineMs: number): Promise<Uint8Array> {
  const buf = new Uint8Array(2048);
  const end = Date.now() + deadlineMs;
  while (Date.now() < end) {
    for (let n = tun.read(buf); n > 0; n = tun.read(buf)) {
      const pkt = buf.slice(0, n);
      const ihl = (pkt[0]! & 0x0f) * 4;
      if (ipVersion(pkt) === 4 && pkt[9] === 1 && pkt[ihl] === 8) return pkt;
    }
    await tun.waitReadable(end - Date.now());
  }
  throw new Error("no ICMP echo request arrived on the TUN device");
}

rootTest(
  "openTun() creates a device that carries a ping both ways and close() removes it",
  async () => {
    await withNetns(async (_run, ns) => {
      const name = uniqueName("xvt");
      const tun = openTun(name);
      try {
        assertEquals(tun.name, name);
        assert(tun.fd >= 0);
        await host.run(["ip", "link", "show", "dev", name]); // exists in the root namespace
        // Move it into the test's namespace; our fd keeps working across the move.
        await host.run(["ip", "link", "set", "dev", name, "netns", ns]);
        await host.run(["ip", "-n", ns, "address", "add", "10.213.7.1/24", "dev", name]);
        await host.run(["ip", "-n", ns, "link", "set", "dev", name, "up"]);
        await host.run(["ip", "-n", ns, "link", "show", "dev", name]);

        const ping = new Deno.Command("ip", {
          args: ["netns", "exec", ns, "ping", "-n", "-c", "1", "-W", "5", "10.213.7.2"],
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        let req: Uint8Array;
        try {
          req = await readEchoRequest(tun, 5000);
        } catch (err) {
          ping.kill();
          await ping.output();
          throw err;
        }
        assertEquals(ipVersion(req), 4);
        assertEquals(req[9], 1, "protocol ICMP");
        assertEquals(formatIPv4(ipv4Src(req)), "10.213.7.1");
        assertEquals(formatIPv4(ipv4Dst(req)), "10.213.7.2");
        assertEquals(inetChecksum(req.subarray(0, 20)), 0, "kernel's IP header checksum holds");

        const reply = echoReplyFor(req);
        assertEquals(ipv4Src(reply), parseIPv4("10.213.7.2"));
        assertEquals(tun.write(reply, reply.length), reply.length);
        const out = await ping.output();
        const text = new TextDecoder().decode(out.stdout);
        assertEquals(out.code, 0, `ping failed: ${text}${new TextDecoder().decode(out.stderr)}`);
        assert(text.includes("1 received"), text);
      } finally {
        tun.close();
        await host.run(["ip", "link", "del", "dev", name], { allowFailure: true });
      }
      const gone = await host.run(["ip", "-n", ns, "link", "show", "dev", name], {
        allowFailure: true,
      });
      assert(gone.code !== 0, `device ${name} still exists after close()`);
      tun.close(); // idempotent
      assertThrows(() => tun.read(new Uint8Array(64)), Error, "closed");
    });
  },
);

rootTest("waitReadable() resolves false on timeout, after wake() and on close()", async () => {
  const tun = openTun(uniqueName("xvt"));
  try {
    // Down and without addresses, the device receives nothing.
    const t0 = performance.now();
    assertEquals(await tun.waitReadable(30), false);
    assert(performance.now() - t0 >= 25, "returned before the timeout");
    assertEquals(tun.read(new Uint8Array(1500)), 0, "read() returns 0 on EAGAIN");

    const pending = tun.waitReadable(-1);
    setTimeout(() => tun.wake(), 10);
    assertEquals(await pending, false);

    tun.wake(); // a wake with no waiter is kept for the next wait
    assertEquals(await tun.waitReadable(5000), false);

    const last = tun.waitReadable(-1);
    tun.close();
    assertEquals(await last, false);
    assertEquals(await tun.waitReadable(10), false);
  } finally {
    tun.close();
  }
});

rootTest("write() throws an ErrnoError naming EIO while the device is down", () => {
  const tun = openTun(uniqueName("xvt"));
  try {
    const pkt = echoReplyFor(new Uint8Array([0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, ...new Array(18)]));
    const err = assertThrows(() => tun.write(pkt, pkt.length), ErrnoError) as ErrnoError;
    assertEquals(err.code, "EIO");
    assertThrows(() => tun.write(pkt, pkt.length + 1), RangeError);
  } finally {
    tun.close();
  }
});

rootTest("openTun() reports EBUSY for a name already open and EINVAL for a non-TUN", async () => {
  const tun = openTun("xvq%d"); // the kernel picks the first free number
  try {
    assert(!tun.name.includes("%"), `kernel filled in the number: ${tun.name}`);
    const busy = assertThrows(() => openTun(tun.name), ErrnoError) as ErrnoError;
    assertEquals(busy.errno, Errno.EBUSY);
    assertEquals(
      busy.message,
      `cannot create TUN device "${tun.name}": ioctl TUNSETIFF failed: EBUSY ` +
        "(the name is in use by another open TUN device; pick another name or stop it)",
    );
    // "lo" always exists and is not a TUN device; the failed ioctl leaves it untouched.
    const notTun = assertThrows(() => openTun("lo"), ErrnoError) as ErrnoError;
    assertEquals(notTun.code, "EINVAL");
  } finally {
    tun.close();
  }
  await assertRejects(() => host.run(["ip", "link", "show", "dev", tun.name]));
});

Deno.test("openTun() rejects an invalid name before touching the kernel", () => {
  if (Deno.build.os !== "linux") {
    // Windows opens Wintun adapters (wintun.ts); other systems cannot open one yet.
    if (Deno.build.os !== "windows") {
      assertThrows(() => openTun("xvpn0"), Error, "cannot open a TUN device yet");
    }
    return;
  }
  assertThrows(() => openTun(""), Error, 'cannot create TUN device "": the name is empty');
  assertThrows(() => openTun("a-very-long-name0"), Error, "at most 15");
  assertThrows(() => openTun("bad/name"), Error, "must not contain");
});

Deno.test("tunErrorMessage() advises on EPERM, a missing tun module and a busy name", () => {
  const describe = (e: number) => `strerror ${e}`;
  assertEquals(
    tunErrorMessage("xvpn0", "ioctl", Errno.EPERM, describe),
    'cannot create TUN device "xvpn0": ioctl TUNSETIFF failed: EPERM ' +
      "(run as root or grant CAP_NET_ADMIN)",
  );
  assertEquals(
    tunErrorMessage("xvpn0", "open", Errno.ENOENT, describe),
    'cannot create TUN device "xvpn0": open /dev/net/tun failed: ENOENT ' +
      "(load the tun module: modprobe tun)",
  );
  assertEquals(
    tunErrorMessage("xvpn0", "ioctl", Errno.EIO, describe),
    'cannot create TUN device "xvpn0": ioctl TUNSETIFF failed: EIO (strerror 5)',
  );
});
