/**
 * A game-like UDP flow for the game benchmark and the root tests: the client sends 64 datagrams a
 * second (60-200 bytes, seeded sizes) to an echo server, which sends each one straight back, so
 * every datagram crosses the tunnel both ways (a game's input going up, its state coming down).
 * The client measures each round trip on its own clock and counts what never came back.
 *
 * As programs, inside a namespace (see {@link spawnGameEcho}, {@link runGameClient}):
 *
 * ```sh
 * deno run -A tests/lab/gameflow.ts echo --port 7777
 * deno run -A tests/lab/gameflow.ts client --to 10.201.2.2:7777 --seconds 60 [--hz 64] [--seed 1]
 * ```
 *
 * The client prints one JSON line ({@link GameResult}).
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { Topology } from "../../src/demo/topology.ts";
import { seededRandom } from "./prng.ts";

/** What a game client measured. */
export interface GameResult {
  /** Datagrams sent. */
  sent: number;
  /** Echoes received (each datagram once). */
  received: number;
  /** Share of datagrams without an echo, percent. */
  lossPercent: number;
  /** Round-trip times, ms. */
  p50: number;
  p99: number;
  max: number;
  /** Echoes that arrived more than once (duplicates through the tunnel). */
  duplicates: number;
}

/** Bytes of the header every datagram starts with: u32 sequence number, f64 send time. */
const HEADER = 12;
/** How long the client waits for the last echoes after it stopped sending. */
const DRAIN_MS = 1000;

/** The value at quantile `q` of ascending `sorted`, nearest-rank. */
function percentile(sorted: readonly number[], q: number): number {
  if (!sorted.length) return NaN;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

/** Echoes every datagram back to where it came from, until the process ends. */
export async function echo(port: number): Promise<void> {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port });
  console.log(JSON.stringify({ event: "ready", port }));
  for (;;) {
    const [data, from] = await sock.receive();
    await sock.send(data, from).catch(() => {});
  }
}

/** Sends at `hz` for `seconds` to `host:port` and measures the echoes. */
export async function client(
  host: string,
  port: number,
  seconds: number,
  hz = 64,
  seed = 1,
): Promise<GameResult> {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
  const rand = seededRandom(seed);
  const count = Math.round(seconds * hz);
  const sentAt = new Float64Array(count);
  const rtt = new Float64Array(count).fill(-1);
  let duplicates = 0;
  let receiving = true;
  const rx = (async () => {
    while (receiving) {
      let data: Uint8Array;
      try {
        [data] = await sock.receive();
      } catch {
        return;
      }
      const now = performance.now();
      if (data.length < HEADER) continue;
      const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
      const seq = v.getUint32(0);
      if (seq >= count) continue;
      if (rtt[seq]! >= 0) {
        duplicates++;
        continue;
      }
      rtt[seq] = now - v.getFloat64(4);
    }
  })();
  const t0 = performance.now();
  const to = { transport: "udp" as const, hostname: host, port };
  for (let i = 0; i < count; i++) {
    const due = t0 + (i * 1000) / hz;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const size = 60 + Math.floor(rand() * 141);
    const d = new Uint8Array(size);
    const v = new DataView(d.buffer);
    v.setUint32(0, i);
    const now = performance.now();
    v.setFloat64(4, now);
    sentAt[i] = now;
    await sock.send(d, to).catch(() => {});
  }
  await new Promise((r) => setTimeout(r, DRAIN_MS));
  receiving = false;
  sock.close();
  await rx;
  const got = [...rtt].filter((x) => x >= 0).sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return {
    sent: count,
    received: got.length,
    lossPercent: r(((count - got.length) / count) * 100),
    p50: r(percentile(got, 0.5)),
    p99: r(percentile(got, 0.99)),
    max: r(got[got.length - 1] ?? NaN),
    duplicates,
  };
}

const SCRIPT = new URL(import.meta.url).pathname;

/** The argv that runs this file with the Deno running us. */
function self(...args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", "--quiet", SCRIPT, ...args];
}

/** Starts an echo server on `host` of `topo`; resolves once it listens. */
export async function spawnGameEcho(
  topo: Topology,
  host: string,
  port: number,
): Promise<Deno.ChildProcess> {
  const child = topo.spawn(host, self("echo", "--port", String(port)), { stdout: "piped" });
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  if (!value?.includes('"ready"')) throw new Error(`game echo on ${host} did not start`);
  return child;
}

/** Runs a game client on `host` of `topo` against `to` for `seconds`; resolves to its result. */
export async function runGameClient(
  topo: Topology,
  host: string,
  to: string,
  seconds: number,
  seed = 1,
): Promise<GameResult> {
  const r = await topo.exec(
    host,
    self("client", "--to", to, "--seconds", String(seconds), "--seed", String(seed)),
  );
  return JSON.parse(r.stdout.trim().split("\n").pop()!) as GameResult;
}

if (import.meta.main) {
  const { positionals, values } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      port: { type: "string" },
      to: { type: "string" },
      seconds: { type: "string", default: "10" },
      hz: { type: "string", default: "64" },
      seed: { type: "string", default: "1" },
    },
  });
  if (positionals[0] === "echo") {
    await echo(Number(values.port));
  } else if (positionals[0] === "client") {
    const [host, port] = (values.to ?? "").split(":");
    const r = await client(
      host!,
      Number(port),
      Number(values.seconds),
      Number(values.hz),
      Number(values.seed),
    );
    console.log(JSON.stringify(r));
  } else {
    console.error("usage: gameflow.ts echo --port P | client --to HOST:PORT --seconds N");
    Deno.exit(2);
  }
}
