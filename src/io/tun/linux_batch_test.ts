/**
 * The Linux batch TUN with offloads on real devices: two namespaces joined by two TUNs and a
 * userspace bridge made of nothing but the batch device (read a batch from one, write it to the
 * other). A TCP transfer between the namespaces must arrive byte for byte, with the kernel's TSO
 * super-packets cut by the reading device and the segments joined again by the writing one.
 */
import { assert, assertEquals } from "../../../tests/support/assert.ts";
import { rootTest, uniqueName, withNetns } from "../../../tests/support/root.ts";
import { ProcessRunner } from "../command.ts";
import { libc, POLLIN } from "../_libc.ts";
import { openTun } from "./open.ts";
import { adoptLinuxBatchTun } from "./linux_batch.ts";
import type { BatchTun } from "./batch.ts";
import { selfCommand } from "../../demo/lab.ts";

const host = new ProcessRunner();
const MTU = 1420;

/** Moves one batch from `from` to `to`; returns how many packets. */
function pump(from: BatchTun, to: BatchTun, sizes: Int32Array): number {
  const n = from.read(from.readBuffers, sizes, from.readBuffers.length);
  for (let i = 0; i < n; i++) to.writePackets[i]!.set(from.readBuffers[i]!.subarray(0, sizes[i]!));
  if (n > 0) to.write(to.writeBuffers, sizes, n);
  return n;
}

rootTest(
  "LinuxBatchTun: TCP through two offloading TUNs arrives intact; TSO reads cut, GRO writes joined",
  async () => {
    await withNetns(async (_a, nsA) => {
      await withNetns(async (_b, nsB) => {
        const drops = { tun_full: 0, tun_error: 0, bad_inner_packet: 0 };
        const devs = [
          { ns: nsA, me: "10.213.9.1", peer: "10.213.9.2" },
          { ns: nsB, me: "10.213.9.2", peer: "10.213.9.1" },
        ].map((d) => {
          const tun = openTun(uniqueName("xvb"), { vnetHdr: true, offload: true });
          return { ...d, tun };
        });
        try {
          for (const d of devs) {
            await host.run(["ip", "link", "set", "dev", d.tun.name, "netns", d.ns]);
            const ip = ["ip", "-n", d.ns];
            await host.run([...ip, "addr", "add", d.me, "peer", d.peer, "dev", d.tun.name]);
            await host.run([...ip, "link", "set", "dev", d.tun.name, "mtu", String(MTU), "up"]);
          }
          const [a, b] = devs.map((d) =>
            adoptLinuxBatchTun(d.tun.fd, d.tun.name, {
              vnetHdr: true,
              readBuffers: 64,
              writeBuffers: 64,
              packetBytes: 9216,
              drops,
            })
          ) as [BatchTun, BatchTun];
          // The bridge: both directions until the transfer is done, waiting in poll() when idle.
          let running = true;
          const c = libc();
          const fds = new Uint8Array(16);
          const v = new DataView(fds.buffer);
          v.setInt32(0, a.fd, true);
          v.setInt16(4, POLLIN, true);
          v.setInt32(8, b.fd, true);
          v.setInt16(12, POLLIN, true);
          const sizes = new Int32Array(64);
          const bridge = (async () => {
            while (running) {
              let moved = 0;
              for (let k = 0; k < 8; k++) moved += pump(a, b, sizes) + pump(b, a, sizes);
              if (moved === 0 && !a.buffered && !b.buffered) await c.poll_wait(fds, 2n, 20);
            }
          })();
          const bytes = 16 * 1024 * 1024;
          const sink = new Deno.Command("ip", {
            args: ["netns", "exec", nsB, ...selfCommand(), "tcp-check", "sink", "--port", "5301"],
            stdout: "piped",
          }).spawn();
          const sinkOut = new Response(sink.stdout).text();
          await new Promise((r) => setTimeout(r, 1500)); // the sink listens
          const src = await host.run([
            "ip",
            "netns",
            "exec",
            nsA,
            ...selfCommand(),
            "tcp-check",
            "source",
            "--to",
            "10.213.9.2:5301",
            "--bytes",
            String(bytes),
          ]);
          const sent = JSON.parse(src.stdout.trim().split("\n").pop()!);
          const got = JSON.parse((await sinkOut).trim().split("\n").pop()!);
          running = false;
          await bridge;
          console.log(
            `  16 MiB through the bridge: A read ${a.offload!.superReads} super-packets ` +
              `(${a.offload!.segments} segments), B joined ${b.offload!.joinedSegments} segments ` +
              `into ${b.offload!.joinedWrites} writes; drops ${JSON.stringify(drops)}`,
          );
          assertEquals(got.bytes, bytes);
          assertEquals(got.sha256, sent.sha256, "the bytes arrived intact");
          assert(a.offload!.superReads > 0, "the sender's TUN handed over TSO super-packets");
          assert(b.offload!.joinedWrites > 0, "the receiving TUN got joined GRO writes");
          assertEquals(drops.bad_inner_packet + drops.tun_error, 0);
        } finally {
          for (const d of devs) d.tun.close();
        }
      });
    });
  },
);
