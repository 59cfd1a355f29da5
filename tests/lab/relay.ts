/**
 * A UDP impairment relay: listens on a UDP port, forwards each datagram to a target and the
 * target's replies back, with seeded delay, jitter, loss, duplication and reordering. This is
 * the netem this kernel lacks, for the one flow under test.
 *
 * Every decision for the n-th datagram of a direction comes from that direction's own seeded
 * generator (a fixed number of draws per datagram), so the same seed and the same traffic give
 * the same fate to every datagram, and a failure replays. Reordering holds a datagram until
 * `holdPackets` later ones have passed (order then does not depend on timing at all), or for
 * `holdMs` when no later traffic comes.
 *
 * Library use: {@link UdpRelay.start}. As a program (e.g. inside a namespace, see
 * {@link spawnRelay}):
 *
 * ```sh
 * deno run -A --unstable-net tests/lab/relay.ts --listen 0.0.0.0:7000 --target 10.201.2.2:7000 \
 *   --seed 42 --delay 20 --jitter 5 --loss 1 --reorder 5 --hold-packets 2 --hold-ms 50
 * ```
 *
 * It prints `{"event":"ready","listen":"host:port"}` once bound, and its statistics as one JSON
 * line on SIGINT/SIGTERM before exiting.
 *
 * @module
 */
import { deriveSeed } from "./prng.ts";
import { type Delivery, FaultInjector, type FaultStats, type Impairment } from "./fault.ts";
import type { Topology } from "../../src/demo/topology.ts";

/** Impairment of one direction (the fault injector's). */
export type RelayImpairment = Impairment;

/** Where to listen and forward, and how to impair. */
export interface RelayOptions {
  /** Listening address (default hostname `0.0.0.0`). */
  listen: { hostname?: string; port: number };
  /** Where datagrams go. */
  target: { hostname: string; port: number };
  /** Seed of all random decisions (default 1). */
  seed?: number;
  /** Client -> target impairment. */
  upstream?: RelayImpairment;
  /** Target -> client impairment. */
  downstream?: RelayImpairment;
}

/** Counters of one direction: the injector's, and sends that failed (e.g. no route). */
export interface DirectionStats extends FaultStats {
  sendErrors: number;
}

/** Counters of the whole relay, summed over clients. */
export interface RelayStats {
  /** Client -> target. */
  upstream: DirectionStats;
  /** Target -> client. */
  downstream: DirectionStats;
  /** Distinct client addresses seen. */
  sessions: number;
}

/** Most distinct clients served at once; more are dropped (this is a test tool). */
const MAX_SESSIONS = 256;

function emptyStats(): DirectionStats {
  return { received: 0, sent: 0, dropped: 0, duplicated: 0, held: 0, sendErrors: 0 };
}

/** One direction: the seeded fault injector, with real timers for delays and holds. */
class Direction {
  readonly #f: FaultInjector;
  readonly #timers = new Set<ReturnType<typeof setTimeout>>();
  #holdTimer: ReturnType<typeof setTimeout> | undefined;
  #sendErrors = 0;
  #closed = false;

  constructor(
    seed: number,
    imp: RelayImpairment,
    private readonly send: (data: Uint8Array) => Promise<unknown>,
  ) {
    this.#f = new FaultInjector(seed, imp);
  }

  get stats(): DirectionStats {
    return { ...this.#f.stats, sendErrors: this.#sendErrors };
  }

  push(data: Uint8Array): void {
    if (this.#closed) return;
    this.#deliver(this.#f.push(data, performance.now()));
  }

  #deliver(out: Delivery[]): void {
    const now = performance.now();
    for (const d of out) {
      const delay = d.at - now;
      if (delay <= 0) {
        // No timer hop: an unimpaired relay adds as little latency as it can.
        this.send(d.data).catch(() => this.#sendErrors++);
        continue;
      }
      const t = setTimeout(() => {
        this.#timers.delete(t);
        if (!this.#closed) this.send(d.data).catch(() => this.#sendErrors++);
      }, delay);
      this.#timers.add(t);
    }
    // Held datagrams nobody overtook go after their hold time.
    if (this.#holdTimer !== undefined) clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    const next = this.#f.deadline();
    if (next < Infinity) {
      this.#holdTimer = setTimeout(() => {
        this.#holdTimer = undefined;
        if (!this.#closed) this.#deliver(this.#f.expire(performance.now()));
      }, Math.max(0, next - now));
    }
  }

  close(): void {
    this.#closed = true;
    this.#f.clear();
    if (this.#holdTimer !== undefined) clearTimeout(this.#holdTimer);
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }
}

/** Serialises sends on one socket so datagrams leave in the order they were released. */
function serialSender(conn: Deno.DatagramConn, addr: Deno.NetAddr) {
  let tail: Promise<unknown> = Promise.resolve();
  return (data: Uint8Array) => {
    const p = tail.then(() => conn.send(data, addr));
    tail = p.catch(() => {});
    return p;
  };
}

interface Session {
  upstream: Deno.DatagramConn;
  up: Direction;
  down: Direction;
  loop: Promise<void>;
}

/** A running relay. */
export class UdpRelay {
  readonly #listener: Deno.DatagramConn;
  readonly #opts: RelayOptions;
  readonly #sessions = new Map<string, Session>();
  #loop: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(listener: Deno.DatagramConn, opts: RelayOptions) {
    this.#listener = listener;
    this.#opts = opts;
  }

  /** Binds the listening socket and starts relaying. */
  static start(opts: RelayOptions): Promise<UdpRelay> {
    const listener = Deno.listenDatagram({
      transport: "udp",
      hostname: opts.listen.hostname ?? "0.0.0.0",
      port: opts.listen.port,
    });
    const relay = new UdpRelay(listener, opts);
    relay.#loop = relay.#acceptLoop();
    return Promise.resolve(relay);
  }

  /** The bound listening address (useful with port 0). */
  get addr(): Deno.NetAddr {
    return this.#listener.addr as Deno.NetAddr;
  }

  /** Counters summed over all clients so far. */
  stats(): RelayStats {
    const sum = (pick: (s: Session) => DirectionStats): DirectionStats => {
      const total = emptyStats();
      for (const s of this.#sessions.values()) {
        const d = pick(s);
        for (const k of Object.keys(total) as (keyof DirectionStats)[]) total[k] += d[k];
      }
      return total;
    };
    return {
      upstream: sum((s) => s.up.stats),
      downstream: sum((s) => s.down.stats),
      sessions: this.#sessions.size,
    };
  }

  /** Stops relaying, drops held and delayed datagrams, and closes all sockets. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    for (const s of this.#sessions.values()) {
      s.up.close();
      s.down.close();
      s.upstream.close();
    }
    await Promise.all([this.#loop, ...[...this.#sessions.values()].map((s) => s.loop)]);
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let data: Uint8Array, from: Deno.Addr;
      try {
        [data, from] = await this.#listener.receive();
      } catch {
        return; // closed
      }
      const client = from as Deno.NetAddr;
      const key = `${client.hostname}:${client.port}`;
      let s = this.#sessions.get(key);
      if (!s) {
        if (this.#sessions.size >= MAX_SESSIONS) continue;
        s = this.#openSession(client, this.#sessions.size);
        this.#sessions.set(key, s);
      }
      s.up.push(data);
    }
  }

  #openSession(client: Deno.NetAddr, index: number): Session {
    const seed = this.#opts.seed ?? 1;
    // A socket per client, like a NAT, so that replies find their way back to the right one.
    const upstream = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
    const target: Deno.NetAddr = { transport: "udp", ...this.#opts.target };
    const up = new Direction(
      deriveSeed(seed, index * 2),
      this.#opts.upstream ?? {},
      serialSender(upstream, target),
    );
    const down = new Direction(
      deriveSeed(seed, index * 2 + 1),
      this.#opts.downstream ?? {},
      serialSender(this.#listener, client),
    );
    const loop = (async () => {
      for (;;) {
        try {
          const [data] = await upstream.receive();
          down.push(data);
        } catch {
          return; // closed
        }
      }
    })();
    return { upstream, up, down, loop };
  }
}

/** A relay program running in a namespace; see {@link spawnRelay}. */
export interface RelayProcess {
  /** The process (inside the namespace). */
  child: Deno.ChildProcess;
  /** The address it bound, as it reported it. */
  listen: string;
  /** SIGTERMs it and returns its final statistics. */
  stop(): Promise<RelayStats>;
}

/**
 * Runs this file as a program inside `host`'s namespace (so the relay sits on that host) and
 * waits until it has bound its socket. The process is also killed by `topology.destroy()`.
 */
export async function spawnRelay(
  topology: Topology,
  host: string,
  opts: RelayOptions,
  denoPath: string = Deno.execPath(),
): Promise<RelayProcess> {
  const script = new URL(import.meta.url).pathname;
  const child = topology.spawn(
    host,
    [denoPath, "run", "-A", "--unstable-net", script, "--json", JSON.stringify(opts)],
    { stdout: "piped", stderr: "inherit" },
  );
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(lineSplitter())
    .getReader();
  const first = await lines.read();
  const ready = first.value ? JSON.parse(first.value) as { event: string; listen: string } : null;
  if (ready?.event !== "ready") {
    await lines.cancel();
    throw new Error(`relay in ${host} did not start (exit ${(await child.status).code})`);
  }
  let stopped: Promise<RelayStats> | undefined;
  const relay: RelayProcess = {
    child,
    listen: ready.listen,
    stop() {
      stopped ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch {
          // already gone
        }
        let stats: RelayStats | undefined;
        for (;;) {
          const { value, done } = await lines.read();
          if (done) break;
          const msg = JSON.parse(value) as { event: string; stats: RelayStats };
          if (msg.event === "stats") stats = msg.stats;
        }
        await child.status;
        if (!stats) throw new Error(`relay in ${host} exited without statistics`);
        return stats;
      })();
      return stopped;
    },
  };
  // Drains stdout even when the caller never calls stop(), so no stream handle outlives the run.
  topology.onDestroy(() => relay.stop().then(() => {}, () => {}));
  return relay;
}

/** Splits a text stream into lines (without the newline). */
function lineSplitter(): TransformStream<string, string> {
  let buf = "";
  return new TransformStream({
    transform(chunk, ctl) {
      buf += chunk;
      let i;
      while ((i = buf.indexOf("\n")) >= 0) {
        ctl.enqueue(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    },
    flush(ctl) {
      if (buf) ctl.enqueue(buf);
    },
  });
}

function hostPort(text: string | undefined, flag: string): { hostname: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(text ?? "");
  if (!m) throw new Error(`${flag} wants host:port, got ${JSON.stringify(text)}`);
  return { hostname: m[1] || "0.0.0.0", port: Number(m[2]) };
}

/** Parses the program's flags into {@link RelayOptions}; the impairment flags apply both ways. */
export function parseRelayArgs(args: readonly string[]): RelayOptions {
  const v = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("--")) throw new Error(`unexpected argument ${a}`);
    const eq = a.indexOf("=");
    if (eq > 0) v.set(a.slice(2, eq), a.slice(eq + 1));
    else v.set(a.slice(2), args[++i] ?? "");
  }
  const json = v.get("json");
  if (json !== undefined) return JSON.parse(json) as RelayOptions;
  const num = (k: string) => (v.has(k) ? Number(v.get(k)) : undefined);
  const imp: RelayImpairment = {
    delayMs: num("delay"),
    jitterMs: num("jitter"),
    lossPercent: num("loss"),
    duplicatePercent: num("dup"),
    reorderPercent: num("reorder"),
    holdPackets: num("hold-packets"),
    holdMs: num("hold-ms"),
  };
  for (const [k, x] of Object.entries(imp)) {
    if (x !== undefined && !Number.isFinite(x)) throw new Error(`bad --${k}`);
  }
  return {
    listen: hostPort(v.get("listen"), "--listen"),
    target: hostPort(v.get("target"), "--target"),
    seed: num("seed") ?? 1,
    upstream: imp,
    downstream: imp,
  };
}

async function relayMain(args: string[]): Promise<void> {
  const relay = await UdpRelay.start(parseRelayArgs(args));
  const listen = `${relay.addr.hostname}:${relay.addr.port}`;
  console.log(JSON.stringify({ event: "ready", listen }));
  const stop = async () => {
    await relay.close();
    console.log(JSON.stringify({ event: "stats", stats: relay.stats() }));
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}

if (import.meta.main) {
  await relayMain(Deno.args);
}
