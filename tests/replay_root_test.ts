/**
 * Root test: replays of a real tunnel's datagrams. tcpdump in the server namespace records the
 * client's handshake initiation and its data and control packets (pings through the tunnel,
 * keepalives); a few seconds later a raw-socket sender in the client namespace sends every
 * recorded datagram again, from the client's own address and port, as an attacker on the path
 * could. The server must reject all of them, counted as `replayed_handshake` (the TAI64N
 * timestamp is not newer than the last accepted, whitepaper section 5.1) and `replay` (the
 * counter was seen in the sliding window, section 5.4.6), start no handshake, and the tunnel
 * must keep working.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { classify, MessageType } from "../src/core/wire.ts";
import { formatIPv4 } from "../src/lib/ip.ts";
import { LAB, Lab, ping } from "./support/net.ts";
import { rawSendCommand } from "./support/rawsend.ts";
import { dropsFromLog, sleep, waitRoute } from "./support/labstats.ts";

/** Times each recorded datagram is sent again. */
const REPEAT = 3;

/** One UDP datagram read from a pcap file. */
interface Captured {
  src: string;
  sport: number;
  dst: string;
  dport: number;
  payload: Uint8Array;
}

/**
 * The IPv4/UDP datagrams of a classic pcap file (Ethernet link type, either byte order).
 * Records that are not one whole IPv4/UDP datagram (fragments, GSO aggregates) are counted in
 * `skipped` rather than guessed at.
 */
export function readPcap(file: Uint8Array): { datagrams: Captured[]; skipped: number } {
  const v = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const le = v.getUint32(0, true) === 0xa1b2c3d4;
  if (!le && v.getUint32(0, false) !== 0xa1b2c3d4) throw new Error("not a pcap file");
  if (v.getUint32(20, le) !== 1) throw new Error("pcap link type is not Ethernet");
  const datagrams: Captured[] = [];
  let skipped = 0;
  for (let off = 24; off + 16 <= file.length;) {
    const incl = v.getUint32(off + 8, le);
    const frame = file.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    const f = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
    if (frame.length < 14 + 28 || f.getUint16(12) !== 0x0800) {
      skipped++;
      continue;
    }
    const ip = 14;
    const ihl = (frame[ip]! & 15) * 4;
    const total = f.getUint16(ip + 2);
    const fragmented = (f.getUint16(ip + 6) & 0x3fff) !== 0;
    const udpLen = f.getUint16(ip + ihl + 4);
    if (
      frame[ip + 9] !== 17 || fragmented || ip + total !== frame.length ||
      udpLen !== total - ihl
    ) {
      skipped++;
      continue;
    }
    datagrams.push({
      src: formatIPv4(f.getUint32(ip + 12)),
      dst: formatIPv4(f.getUint32(ip + 16)),
      sport: f.getUint16(ip + ihl),
      dport: f.getUint16(ip + ihl + 2),
      payload: frame.slice(ip + ihl + 8, ip + total),
    });
  }
  return { datagrams, skipped };
}

function hex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

rootTest(
  "replay: recorded initiation and data packets sent again are rejected and counted",
  async () => {
    const lab = await Lab.create({});
    try {
      lab.startServer();
      await lab.waitAddress("server", LAB.serverTunnel);
      const pcap = lab.path("replay.pcap");
      const iface = lab.topo.iface("server", "client");
      const dump = lab.topo.spawn("server", [
        "tcpdump",
        "-i",
        iface,
        "-n",
        "-U",
        "-s",
        "0",
        "-w",
        pcap,
        `udp and dst host ${LAB.serverUnderlay} and dst port ${LAB.port}`,
      ], { stderr: "null" });
      await sleep(1000); // let tcpdump arm the capture
      lab.startClient();
      await lab.waitAddress("client", LAB.clientTunnel);
      await waitRoute(lab, "client", LAB.game);
      const before = await ping(lab, "client", LAB.game, { count: 5 });
      assertEquals(before.received, 5, before.out);
      const big = await ping(lab, "client", LAB.game, { count: 3, size: 1200 });
      assertEquals(big.received, 3, big.out);
      await sleep(500);
      dump.kill("SIGINT");
      await dump.status;

      const { datagrams, skipped } = readPcap(await Deno.readFile(pcap));
      const fromClient = datagrams.filter((d) => d.src === LAB.clientUnderlay);
      const typeOf = (d: Captured) => classify(d.payload);
      const inits = fromClient.filter((d) => typeOf(d) === MessageType.HandshakeInit);
      const sealed = fromClient.filter((d) =>
        typeOf(d) === MessageType.Data || typeOf(d) === MessageType.Control
      );
      assert(inits.length >= 1, `captured the initiation (${datagrams.length} datagrams)`);
      assert(
        sealed.length >= 5,
        `captured data and control packets: ${sealed.length} (${datagrams.length} datagrams, ` +
          `${skipped} skipped, types ${datagrams.map((d) => typeOf(d)).join(",")})`,
      );

      await sleep(2000); // "later"
      const logBefore = await Deno.readTextFile(lab.path("server.log"));
      const replay = [...inits, ...sealed];
      const r = await lab.topo.exec(
        "client",
        rawSendCommand({
          mode: "replay",
          dst: LAB.serverUnderlay,
          port: LAB.port,
          datagrams: replay.map((d) => ({ src: d.src, sport: d.sport, hex: hex(d.payload) })),
          repeat: REPEAT,
        }),
      );
      const { sent } = JSON.parse(r.stdout.trim().split("\n").pop()!) as { sent: number };
      assertEquals(sent, replay.length * REPEAT, "every replay went out");
      await sleep(500);
      const after = await ping(lab, "client", LAB.game, { count: 5 });

      const st = await lab.stopAll();
      const log = await Deno.readTextFile(lab.path("server.log"));
      const drops = dropsFromLog(log);
      const newLines = log.slice(logBefore.length);
      console.log(
        [
          `  captured ${datagrams.length} datagrams to the server (${skipped} skipped): ` +
          `${inits.length} initiation(s), ${sealed.length} data/control packets`,
          `  replayed each ${REPEAT} times from ${LAB.clientUnderlay}:${inits[0]!.sport}: ` +
          `${sent} datagrams`,
          `  server drops: ${log.match(/Dropped datagrams by reason: (.*)/)?.[1]}`,
          `  ping through the tunnel after the replays: ${after.received}/5`,
        ].join("\n"),
      );
      assertEquals(drops.replayed_handshake ?? 0, inits.length * REPEAT, "replayed initiations");
      assertEquals(drops.replay ?? 0, sealed.length * REPEAT, "replayed data/control packets");
      assert(
        !/Session up|Rekeyed|moved from/.test(newLines),
        `no handshake or endpoint change from replays:\n${newLines}`,
      );
      assertEquals(after.received, 5, `the tunnel keeps working: ${after.out}`);
      assertEquals(st.server?.code, 0, "server exited cleanly");
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await lab.logs()}`, { cause: err });
    } finally {
      await lab.destroy();
    }
  },
);
