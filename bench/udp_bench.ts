/**
 * UDP throughput over loopback: `Deno.listenDatagram` against the batching FFI socket
 * (`src/io/udp/linux.ts`) with batches of 1, 32 and 64 datagrams, and with UDP GSO.
 *
 * - `deno run -A bench/udp_bench.ts [--seconds 3] [--size 1400] [--runs 3]`: for each variant
 *   one sender and one receiver, each in its own Worker, the sender as fast as it can; prints
 *   datagrams/s received (the figure that matters; median and best of the runs), sent, and the
 *   share the receiver lost to a full queue.
 * - `deno bench -A bench/udp_bench.ts`: cost of sending and receiving 64 datagrams in batches of
 *   each size, both sockets in one thread (no Workers); what `deno task bench:micro` picks up.
 *
 * The same file is the Workers' code: a Worker gets its role in its first message.
 *
 * @module
 */
import { LinuxUdpSocket } from "../src/io/udp/linux.ts";
import { libc, POLLIN } from "../src/io/_libc.ts";

const LOCALHOST = 0x7f000001;
/** Shared counters: [stop flag, datagrams received, datagrams sent]. */
const STOP = 0, RECEIVED = 1, SENT = 2;

/** One measured variant: how the sender and the receiver move datagrams. */
interface Variant {
  name: string;
  /** "deno": Deno.listenDatagram; "linux": LinuxUdpSocket. */
  kind: "deno" | "linux";
  /** Datagrams per send()/recv() call (linux only). */
  batch: number;
  gso: boolean;
}

const VARIANTS: Variant[] = [
  { name: "Deno.listenDatagram", kind: "deno", batch: 1, gso: false },
  { name: "LinuxUdpSocket batch 1", kind: "linux", batch: 1, gso: false },
  { name: "LinuxUdpSocket batch 32", kind: "linux", batch: 32, gso: false },
  { name: "LinuxUdpSocket batch 64", kind: "linux", batch: 64, gso: false },
  { name: "LinuxUdpSocket batch 64 + GSO", kind: "linux", batch: 64, gso: true },
];

/** A Worker's orders. */
interface Job {
  role: "rx" | "tx";
  variant: Variant;
  size: number;
  /** Destination port (tx only). */
  port: number;
  counters: SharedArrayBuffer;
}

/** `n` buffers of `size` bytes. */
function slots(n: number, size: number): Uint8Array[] {
  return Array.from({ length: n }, () => new Uint8Array(size));
}

/** Waits up to `ms` for `fd` to become readable, blocking this Worker's thread in poll(). */
function pollIn(fd: number, pfd: Uint8Array, ms: number): void {
  const v = new DataView(pfd.buffer);
  v.setInt32(0, fd, true);
  v.setInt16(4, POLLIN, true);
  libc().poll(pfd, 1n, ms);
}

/** Receiver Worker with LinuxUdpSocket: recv() batches, poll() when the queue is dry. */
function linuxReceiver(job: Job, post: (port: number) => void): void {
  const c = new Int32Array(job.counters);
  const s = LinuxUdpSocket.open({
    host: "127.0.0.1",
    port: 0,
    rxSlots: slots(job.variant.batch, 2048),
    txSlots: [],
    rcvbuf: 4 << 20,
  });
  post(s.localPort);
  const pfd = new Uint8Array(8);
  let got = 0;
  while (Atomics.load(c, STOP) === 0) {
    const n = s.recv();
    if (n === 0) {
      Atomics.store(c, RECEIVED, got);
      pollIn(s.fd, pfd, 20);
      continue;
    }
    got += n;
    if ((got & 0xff) < n) Atomics.store(c, RECEIVED, got);
  }
  s.close();
}

/** Sender Worker with LinuxUdpSocket: send() of full batches as fast as it goes. */
function linuxSender(job: Job): void {
  const c = new Int32Array(job.counters);
  const b = job.variant.batch;
  const tx = slots(b, job.size);
  const s = LinuxUdpSocket.open({
    host: "127.0.0.1",
    port: 0,
    rxSlots: slots(1, 64),
    txSlots: tx,
    gso: job.variant.gso,
  });
  if (job.variant.gso && !s.gsoEnabled) console.error("warning: the kernel refused UDP GSO");
  for (let j = 0; j < b; j++) {
    tx[j]!.fill(j);
    s.txLen[j] = job.size;
    s.txIp[j] = LOCALHOST;
    s.txPort[j] = job.port;
  }
  let sent = 0;
  while (Atomics.load(c, STOP) === 0) {
    sent += s.send(b); // a short count (EAGAIN) just means: try again
    Atomics.store(c, SENT, sent);
  }
  s.close();
}

/** Receiver Worker with Deno.listenDatagram. */
async function denoReceiver(job: Job, post: (port: number) => void): Promise<void> {
  const c = new Int32Array(job.counters);
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  post((conn.addr as Deno.NetAddr).port);
  let got = 0;
  while (Atomics.load(c, STOP) === 0) {
    await conn.receive();
    Atomics.store(c, RECEIVED, ++got);
  }
  conn.close();
}

/** Sender Worker with Deno.listenDatagram: one awaited send after another. */
async function denoSender(job: Job): Promise<void> {
  const c = new Int32Array(job.counters);
  const conn = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  const data = new Uint8Array(job.size);
  const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: job.port };
  let sent = 0;
  while (Atomics.load(c, STOP) === 0) {
    await conn.send(data, to);
    Atomics.store(c, SENT, ++sent);
  }
  conn.close();
}

/** The parts of a Worker's global scope used here (the lib types describe a window). */
interface WorkerScope {
  onmessage: ((e: MessageEvent<Job>) => void) | null;
  postMessage(message: unknown): void;
}

/** Worker entry: runs the job of the first message, posting the receiver's port when bound. */
function workerMain(): void {
  const self = globalThis as unknown as WorkerScope;
  self.onmessage = async (e: MessageEvent<Job>) => {
    const job = e.data;
    const post = (port: number) => self.postMessage({ port });
    if (job.role === "rx") {
      if (job.variant.kind === "linux") linuxReceiver(job, post);
      else await denoReceiver(job, post);
    } else {
      self.postMessage({ port: 0 });
      if (job.variant.kind === "linux") linuxSender(job);
      else await denoSender(job);
    }
    self.postMessage({ done: true });
  };
}

/** Starts a Worker on this file with `job`; resolves with it once it posted its port. */
function startWorker(job: Job): Promise<[Worker, number]> {
  const w = new Worker(import.meta.url, { type: "module" });
  return new Promise((resolve, reject) => {
    w.onerror = (e) => {
      e.preventDefault();
      reject(new Error(`${job.role} worker failed: ${e.message}`));
    };
    w.onmessage = (e: MessageEvent<{ port?: number }>) => {
      if (e.data.port !== undefined) resolve([w, e.data.port]);
    };
    w.postMessage(job);
  });
}

/** Figures of one variant. */
interface Result {
  received: number;
  sent: number;
}

/** Runs one variant: warm-up, then counts over `seconds`. */
async function measure(v: Variant, size: number, seconds: number): Promise<Result> {
  const counters = new SharedArrayBuffer(12);
  const c = new Int32Array(counters);
  const [rx, port] = await startWorker({ role: "rx", variant: v, size, port: 0, counters });
  const [tx] = await startWorker({ role: "tx", variant: v, size, port, counters });
  await new Promise((r) => setTimeout(r, 500));
  const r0 = Atomics.load(c, RECEIVED), s0 = Atomics.load(c, SENT), t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const r1 = Atomics.load(c, RECEIVED), s1 = Atomics.load(c, SENT), t1 = performance.now();
  Atomics.store(c, STOP, 1);
  // Linux Workers see the flag within one poll() timeout and close their sockets; a Deno
  // receiver may wait in receive() forever, and terminate() closes its resource.
  await new Promise((r) => setTimeout(r, 100));
  rx.terminate();
  tx.terminate();
  const dt = (t1 - t0) / 1000;
  return { received: (r1 - r0) / dt, sent: (s1 - s0) / dt };
}

/** The middle value (upper middle for an even count). */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

/**
 * Command-line run: every variant in turn, `runs` rounds interleaved (so a burst of load from
 * elsewhere on a shared machine hits all variants alike), then a table of medians and bests.
 */
async function main(): Promise<void> {
  const arg = (name: string, dflt: number): number => {
    const i = Deno.args.indexOf(`--${name}`);
    return i >= 0 ? Number(Deno.args[i + 1]) : dflt;
  };
  const seconds = arg("seconds", 3);
  const size = arg("size", 1400);
  const runs = arg("runs", 3);
  console.log(
    `UDP over 127.0.0.1, ${size}-byte datagrams, one sender and one receiver Worker, ` +
      `${runs} x ${seconds} s per variant (median, best)`,
  );
  const results = VARIANTS.map(() => [] as Result[]);
  for (let run = 0; run < runs; run++) {
    for (const [i, v] of VARIANTS.entries()) results[i]!.push(await measure(v, size, seconds));
  }
  const num = (x: number) => Math.round(x).toLocaleString("en");
  console.log(
    `${"variant".padEnd(32)}${"received/s".padStart(12)}${"best".padStart(12)}` +
      `${"sent/s".padStart(12)}${"lost".padStart(8)}${"MB/s rx".padStart(10)}`,
  );
  for (const [i, v] of VARIANTS.entries()) {
    const rs = results[i]!;
    const received = median(rs.map((r) => r.received));
    const sent = median(rs.map((r) => r.sent));
    const lost = sent > 0 ? Math.max(0, 1 - received / sent) : 0;
    console.log(
      v.name.padEnd(32) + num(received).padStart(12) +
        num(Math.max(...rs.map((r) => r.received))).padStart(12) + num(sent).padStart(12) +
        `${(lost * 100).toFixed(1)}%`.padStart(8) + (received * size / 1e6).toFixed(0).padStart(10),
    );
  }
}

/**
 * `deno bench`: 64 datagrams of 1400 bytes sent and received per iteration, in batches of the
 * variant's size, both sockets in this thread; so the times compare per datagram.
 */
function registerMicroBenches(): void {
  const PER_ITERATION = 64;
  for (const v of VARIANTS.filter((v) => v.kind === "linux")) {
    const tx = slots(v.batch, 1400);
    const rx = LinuxUdpSocket.open({
      host: "127.0.0.1",
      port: 0,
      rxSlots: slots(64, 2048),
      txSlots: [],
      rcvbuf: 4 << 20,
    });
    const s = LinuxUdpSocket.open({
      host: "127.0.0.1",
      port: 0,
      rxSlots: slots(1, 64),
      txSlots: tx,
      gso: v.gso,
    });
    for (let j = 0; j < v.batch; j++) {
      s.txLen[j] = 1400;
      s.txIp[j] = LOCALHOST;
      s.txPort[j] = rx.localPort;
    }
    Deno.bench({
      name: `${v.name}: send+recv ${PER_ITERATION} x 1400 B`,
      group: "loopback send+recv, one thread",
      baseline: v.batch === 1,
      fn: () => {
        for (let n = 0; n < PER_ITERATION; n += v.batch) {
          s.send(v.batch);
          while (rx.recv() > 0);
        }
      },
    });
  }
}

// deno-lint-ignore no-explicit-any
const inWorker = typeof (globalThis as any).WorkerGlobalScope !== "undefined";
if (inWorker) workerMain();
else if (import.meta.main) await main();
else registerMicroBenches();
