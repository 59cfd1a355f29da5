/**
 * Run by tests/alloc_test.ts under `--trace-gc`: sets up a client and a server core, warms up
 * the data path, then runs the number of round trips given as the first argument (each is four
 * seal/open operations), between two marker lines on stdout, so the test can count the
 * collections that happened in the measured part alone.
 *
 * @module
 */
import { PacketBuf } from "../../src/core/packet.ts";
import { Verdict } from "../../src/core/result.ts";
import { parseIPv4 } from "../../src/lib/ip.ts";
import { Pair } from "./pair.ts";
import { udpPacket } from "./packets.ts";

const p = new Pair();
if (p.aead.name !== "libsodium") throw new Error("libsodium is needed for the fast AEAD");
p.client.start(p.now, p.wall);
p.run(20);
if (!p.client.ready) throw new Error("no handshake");
const me = p.client.config!.address.addr;
const game = parseIPv4("198.51.100.7")!;
const up = udpPacket(me, game, new Uint8Array(1200));
const down = udpPacket(game, me, new Uint8Array(1200));
const wire = PacketBuf.alloc(4096);
const tunOut = new Uint8Array(4096);
const from = p.clientEndpoint;
const now = p.now;
function step(): void {
  let r = p.client.fromTun(now, up, up.length, wire);
  if (r.verdict !== Verdict.Net) throw new Error("client did not seal");
  r = p.server.receive(now, wire, from, tunOut);
  if (r.verdict !== Verdict.Tun) throw new Error(`server did not open: ${r.reason}`);
  r = p.server.fromTun(now, down, down.length, wire);
  if (r.verdict !== Verdict.Net) throw new Error("server did not seal");
  r = p.client.receive(now, wire, tunOut);
  if (r.verdict !== Verdict.Tun) throw new Error(`client did not open: ${r.reason}`);
}
for (let i = 0; i < 20_000; i++) step();
// Everything --trace-gc prints after this line happened during the measured rounds.
console.log("-- warm --");
const rounds = Number(Deno.args[0] ?? 0);
for (let i = 0; i < rounds; i++) step();
console.log("-- done --");
