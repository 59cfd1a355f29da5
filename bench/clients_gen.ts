/**
 * The load generator of `bench/clients.ts`: many protocol clients in one process, each a real
 * `ClientCore` (Noise handshake with libsodium's X25519, keepalives, rekeys), spread over 64 UDP
 * sockets on 64 source addresses (batched with recvmmsg/sendmmsg), talking to a real
 * `xvpn serve`. A playing client sends a 100-byte ICMP echo request through the tunnel to the
 * server's tunnel address at its rate; the server's kernel answers it, so each echo crosses the
 * server's data path twice and the generator measures its round trip.
 *
 * It runs the phases it is given (stdin: one JSON plan) and prints one JSON line per event to
 * stdout (`{"phase": name, "at": "start" | "end", ...figures}`), so the parent can sample the
 * server's CPU and memory at the same moments.
 *
 * @module
 */
import { ClientCore } from "../src/core/client.ts";
import { PacketBuf } from "../src/core/packet.ts";
import { Verdict } from "../src/core/result.ts";
import { decodeKey } from "../src/core/keys.ts";
import { loadAead } from "../src/crypto/aead.ts";
import { bestX25519 } from "../src/crypto/x25519.ts";
import { LinuxUdpSocket } from "../src/io/udp/linux.ts";
import { parseIPv4 } from "../src/lib/ip.ts";
import { fold, sum16 } from "../src/lib/checksum.ts";
import { HEADER_FLAG_INTERACTIVE, readU32 } from "../src/core/wire.ts";

/** One phase of the plan. */
export interface Phase {
  name: string;
  /** Clients [from, to) that must be connected before the phase starts (connected at `joinPerS`). */
  connect?: { from: number; to: number; perS: number };
  /** Clients [from, to) that play (echo at `hz`) during the phase. */
  play?: { from: number; to: number; hz: number };
  /** Clients [from, to) that join during the phase, evenly over its duration. */
  join?: { from: number; to: number };
  /** Phase length, ms. */
  ms: number;
}

/** The plan on stdin. */
export interface Plan {
  server: string;
  port: number;
  serverPublicKey: string;
  privateKeys: string[];
  sources: string[];
  phases: Phase[];
}

const SLOTS = 64;
const ECHO_BYTES = 100;
const SERVER_TUNNEL = parseIPv4("10.96.0.1")!;

interface Gen {
  index: number;
  core: ClientCore;
  sock: number;
  /** Next echo due (ms), or Infinity when not playing. */
  next: number;
  period: number;
  seq: number;
  joinAt: number;
}

const plan = JSON.parse(await new Response(Deno.stdin.readable).text()) as Plan;
const aead = await loadAead("auto");
const dh = bestX25519();
const serverKey = decodeKey(plan.serverPublicKey)!;
const serverIp = parseIPv4(plan.server)!;

// Sockets: one per source address, with their slots.
const socks = plan.sources.map((host) => {
  const rx = Array.from({ length: SLOTS }, () => PacketBuf.alloc(2048));
  const tx = Array.from({ length: SLOTS }, () => PacketBuf.alloc(2048));
  const udp = LinuxUdpSocket.open({
    host,
    port: 0,
    rxSlots: rx.map((b) => b.buf),
    txSlots: tx.map((b) => b.buf),
    rcvbuf: 1 << 20,
    sndbuf: 1 << 20,
  });
  return { udp, rx, tx, pending: 0 };
});

const gens: Gen[] = plan.privateKeys.map((k, i) => ({
  index: i,
  core: new ClientCore({ privateKey: decodeKey(k)!, serverPublicKey: serverKey, aead, dh }),
  sock: i % socks.length,
  next: Infinity,
  period: 0,
  seq: 0,
  joinAt: Infinity,
}));
/** Receiver id (the client's sender id) -> client. */
const byId = new Map<number, Gen>();
const started = new Set<number>();
/** The started clients in start order, swept for their timers a slice at a time. */
const order: number[] = [];
let cursor = 0;

const out = new Uint8Array(4096);
const inner = new Uint8Array(ECHO_BYTES);
const sealed = PacketBuf.alloc(4096);
let rtts: number[] = [];
let sent = 0, received = 0;
/** Echoes slower than 10 ms, by second of the phase (when in a phase the stalls were). */
let slow: Record<number, number> = {};
let phaseStart = 0;
/** Where the generator itself lost datagrams (per phase). */
const gen = { unsent: 0, unknownId: 0, notOpened: 0 };

function flush(s: (typeof socks)[number]): void {
  let first = 0;
  while (first < s.pending) {
    const n = s.udp.send(s.pending - first, first);
    if (n === 0) { // the socket buffer is full: the rest is lost (counted)
      gen.unsent += s.pending - first;
      break;
    }
    first += n;
  }
  s.pending = 0;
}

function queue(g: Gen, data: Uint8Array, len: number): void {
  const s = socks[g.sock]!;
  if (s.pending === SLOTS) flush(s);
  const j = s.pending++;
  s.tx[j]!.buf.set(data.subarray(0, len));
  s.udp.txLen[j] = len;
  s.udp.txIp[j] = serverIp;
  s.udp.txPort[j] = plan.port;
}

function drainOutbox(g: Gen): void {
  for (const d of g.core.outbox.splice(0)) queue(g, d, d.length);
  byId.set(g.core.localId, g);
}

/** A 100-byte ICMP echo request from the client's tunnel address, carrying its send time. */
function echo(g: Gen, now: number): void {
  const c = g.core.config;
  if (!c) return;
  const b = inner;
  b.fill(0);
  b[0] = 0x45;
  b[2] = 0;
  b[3] = ECHO_BYTES;
  b[8] = 64;
  b[9] = 1;
  const src = c.address.addr;
  for (let i = 0; i < 4; i++) {
    b[12 + i] = (src >>> (24 - 8 * i)) & 255;
    b[16 + i] = (SERVER_TUNNEL >>> (24 - 8 * i)) & 255;
  }
  const hc = ~fold(sum16(b, 0, 20, 0)) & 0xffff;
  b[10] = hc >> 8;
  b[11] = hc & 255;
  b[20] = 8; // echo request
  const id = g.index & 0xffff;
  b[24] = id >> 8;
  b[25] = id & 255;
  b[26] = (g.seq >> 8) & 255;
  b[27] = g.seq & 255;
  g.seq++;
  new DataView(b.buffer).setFloat64(28, now);
  const ic = ~fold(sum16(b, 20, ECHO_BYTES, 0)) & 0xffff;
  b[22] = ic >> 8;
  b[23] = ic & 255;
  // Flagged interactive, as a real client's scheduler flags a sparse 64 Hz flow (the server then
  // serves it before bulk and never sheds it).
  const r = g.core.seal(now, b, ECHO_BYTES, sealed, HEADER_FLAG_INTERACTIVE);
  if (r.verdict === Verdict.Net) {
    queue(g, sealed.buf, r.length);
    sent++;
  }
}

function receiveAll(now: number): void {
  for (const s of socks) {
    for (;;) {
      const n = s.udp.recv();
      if (n === 0) break;
      for (let i = 0; i < n; i++) {
        const len = s.udp.rxLen[i]!;
        if (len < 16) continue;
        const g = byId.get(readU32(s.rx[i]!.buf, 4));
        if (!g) {
          gen.unknownId++;
          continue;
        }
        const d = s.rx[i]!;
        d.len = len;
        const r = g.core.receive(now, d, out);
        if (r.verdict === Verdict.Tun && out[9] === 1 && out[20] === 0) {
          received++;
          const rtt = now - new DataView(out.buffer).getFloat64(28);
          rtts.push(rtt);
          if (rtt > 10) {
            const sec = Math.floor((now - phaseStart) / 1000);
            slow[sec] = (slow[sec] ?? 0) + 1;
          }
        } else if (r.verdict === Verdict.Drop) gen.notOpened++;
        if (g.core.outbox.length) drainOutbox(g);
      }
      if (n < SLOTS) break;
    }
  }
}

/** The clients' own drop counters, summed (non-zero reasons only). */
function clientDrops(): Record<string, number> {
  const t: Record<string, number> = {};
  for (const i of order) {
    for (const [k, v] of Object.entries(gens[i]!.core.drops)) if (v) t[k] = (t[k] ?? 0) + v;
  }
  return t;
}

function emit(o: Record<string, unknown>): void {
  console.log(JSON.stringify(o));
}

function pct(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
}

function startClient(i: number, now: number): void {
  if (started.has(i)) return;
  started.add(i);
  order.push(i);
  const g = gens[i]!;
  g.core.start(now, Date.now());
  drainOutbox(g);
}

const connected = (from: number, to: number) => {
  let n = 0;
  for (let i = from; i < to; i++) if (gens[i]!.core.ready) n++;
  return n;
};

/** Runs the loop until `until` (ms) or `done()`; `each` runs every turn. */
function run(until: number, each: (now: number) => void, done = () => false): void {
  let lastTimers = 0;
  for (;;) {
    const now = performance.now();
    if (now >= until || done()) return;
    receiveAll(now);
    each(now);
    if (now - lastTimers >= 5) {
      // A slice of the started clients per 5 ms turn, so that 6000 of them cost the loop no
      // more than 250 do: their timers (handshake retries, keepalives, rekeys) are seconds
      // long, and a sweep of all of them takes at most 120 ms.
      lastTimers = now;
      const wall = Date.now();
      const n = Math.min(order.length, 250);
      for (let j = 0; j < n; j++) {
        if (cursor >= order.length) cursor = 0;
        const g = gens[order[cursor++]!]!;
        if (g.core.deadline() <= now) {
          g.core.tick(now, wall);
          if (g.core.outbox.length) drainOutbox(g);
        }
      }
    }
    for (const s of socks) if (s.pending) flush(s);
    // A 0.2 ms nap between turns: the server shares the two vCPUs (it adds up to 0.2 ms to a
    // measured round trip, the same in every phase).
    Atomics.wait(WAIT, 0, 0, 0.2);
  }
}
const WAIT = new Int32Array(new SharedArrayBuffer(4));

for (const ph of plan.phases) {
  if (ph.connect) {
    const { from, to, perS } = ph.connect;
    const t0 = performance.now();
    let k = from;
    run(t0 + 120_000, (now) => {
      const due = from + Math.floor(((now - t0) / 1000) * perS);
      while (k < to && k <= due) startClient(k++, now);
    }, () => k >= to && connected(from, to) === to - from);
    emit({
      phase: ph.name,
      at: "connected",
      clients: connected(from, to),
      wanted: to - from,
      ms: Math.round(performance.now() - t0),
    });
  }
  const t0 = performance.now();
  if (ph.play) {
    const { from, to, hz } = ph.play;
    for (let i = from; i < to; i++) {
      const g = gens[i]!;
      g.period = 1000 / hz;
      g.next = t0 + Math.random() * g.period;
    }
  }
  const joins: number[] = [];
  if (ph.join) { for (let i = ph.join.from; i < ph.join.to; i++) joins.push(i); }
  let joined = 0;
  rtts = [];
  slow = {};
  phaseStart = t0;
  sent = received = 0;
  gen.unsent = gen.unknownId = gen.notOpened = 0;
  emit({ phase: ph.name, at: "start" });
  const players = ph.play ? gens.slice(ph.play.from, ph.play.to) : [];
  let late = 0;
  run(t0 + ph.ms, (now) => {
    for (const g of players) {
      if (g.next > now) continue;
      if (now - g.next > g.period) late++; // the generator fell a whole period behind
      echo(g, now);
      g.next += g.period;
      if (g.next < now - g.period) g.next = now;
    }
    if (joins.length) {
      const due = Math.floor(((now - t0) / ph.ms) * joins.length);
      while (joined < joins.length && joined <= due) startClient(joins[joined++]!, now);
    }
  });
  // Let the last echoes come back before counting.
  const tEnd = performance.now();
  run(tEnd + 300, () => {});
  for (const g of players) g.next = Infinity;
  emit({
    phase: ph.name,
    at: "end",
    sent,
    received,
    lossPercent: sent ? Math.max(0, (1 - received / sent) * 100) : 0,
    p50: pct(rtts, 0.5),
    p99: pct(rtts, 0.99),
    max: rtts.length ? rtts.reduce((a, b) => Math.max(a, b), 0) : null,
    late,
    joined: ph.join ? connected(ph.join.from, ph.join.to) : undefined,
    sessions: started.size,
    clientDrops: clientDrops(),
    generator: { ...gen },
    slowBySecond: slow,
    ms: Math.round(tEnd - t0),
  });
}
for (const s of socks) s.udp.close();
