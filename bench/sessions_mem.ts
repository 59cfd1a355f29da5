/**
 * The memory and table cost of idle sessions (issue 10, scale), in one process with no I/O: a
 * real `ServerCore` allowing 6000 keys, and 5000 real `ClientCore`s that handshake with it
 * through memory (initiation, response, config request and push: each session exactly as a
 * tunnel makes it). The JS heap (after a full collection) is read before and after, so the
 * figure is what a session costs, without the process' baseline or the garbage of a config
 * parse that an RSS figure carries.
 *
 * Usage: `deno run -A --v8-flags=--expose-gc bench/sessions_mem.ts [--sessions N]`. Prints one
 * JSON line (bench/clients.ts runs it and stores it with its results).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ServerCore } from "../src/core/server.ts";
import { ClientCore } from "../src/core/client.ts";
import { PacketBuf } from "../src/core/packet.ts";
import { generatePrivateKey } from "../src/core/keys.ts";
import { loadAead } from "../src/crypto/aead.ts";
import { bestX25519 } from "../src/crypto/x25519.ts";
import { parseCidr } from "../src/lib/ip.ts";
import type { Endpoint } from "../src/lib/endpoint.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { sessions: { type: "string", default: "5000" } },
});
const N = Number(values.sessions);
const ALLOWED = N + 1000;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
const heap = () => {
  for (let i = 0; i < 3; i++) gc();
  const m = Deno.memoryUsage();
  return m.heapUsed + m.external; // typed arrays' backing stores count as external
};

const aead = await loadAead("auto");
const dh = bestX25519();
const serverKey = generatePrivateKey();
const keys = Array.from({ length: ALLOWED }, () => generatePrivateKey());
const server = new ServerCore({
  privateKey: serverKey,
  clients: keys.map((k, i) => ({ name: `c${i}`, publicKey: dh.publicKey(k) })),
  pool: parseCidr("10.96.0.0/16")!,
  mtu: 1420,
  routes: [],
  dns: [],
  keepaliveMs: 10_000,
  sessionTimeoutMs: 3_600_000,
  aead,
  dh,
});
const before = heap();

const out = new Uint8Array(4096);
const d = PacketBuf.alloc(4096);
const t0 = performance.now();
let now = 1000;
const clients: ClientCore[] = [];
for (let i = 0; i < N; i++) {
  const c = new ClientCore({
    privateKey: keys[i]!,
    serverPublicKey: dh.publicKey(serverKey),
    aead,
    dh,
  });
  const from: Endpoint = {
    hostname: `10.${200 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`,
    port: 40000,
  };
  c.start(now, Date.now());
  // Ping-pong through memory until the client has its config.
  for (let round = 0; round < 8 && !c.config; round++) {
    for (const m of c.outbox.splice(0)) {
      d.buf.set(m);
      d.len = m.length;
      server.receive(now, d, from, out);
    }
    for (const o of server.outbox.splice(0)) {
      d.buf.set(o.data);
      d.len = o.data.length;
      c.receive(now, d, out);
    }
    server.events.splice(0);
  }
  if (!c.config) throw new Error(`client ${i} did not get its config`);
  clients.push(c);
  now += 10; // 100 handshakes per second of protocol time: under the global DH budget and load
}
const ms = performance.now() - t0;
clients.length = 0; // only the server's side counts
const after = heap();
let sessions = 0;
for (const _ of server.sessions()) sessions++;
console.log(JSON.stringify({
  sessions,
  heapBeforeMiB: before / 1048576,
  heapAfterMiB: after / 1048576,
  bytesPerSession: (after - before) / sessions,
  // Wall time per session made (both ends' handshake and config, in one thread).
  msPerSession: ms / N,
}));
