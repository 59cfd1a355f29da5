/**
 * Scale (issue 10): a real `xvpn serve` on the fast path against N protocol clients run by one
 * generator process (`bench/clients_gen.ts`) in a second namespace, each client a real
 * `ClientCore` on one of 64 source addresses. A playing client sends a 100-byte ICMP echo request
 * through the tunnel to the server's tunnel address (the server's kernel answers), so each echo
 * is two packets through the server's data path.
 *
 * Measured, side by side in one run: per phase the server's CPU time per packet
 * (`/proc/<pid>/stat`, utime + stime, every thread) and the echoes' RTT (p50/p99) and loss, at 1,
 * 100 and 1000 clients; the server's memory (VmRSS) with 5000 idle sessions against none; and a
 * join storm of 1000 clients in 10 s while 100 clients play, against the same 100 playing
 * without it. The generator shares the 2 vCPUs with the server, so 1000 clients play at 16 Hz
 * (it cannot keep 64 Hz for all of them beside the server), and the 1-client figure is measured
 * at both rates.
 *
 * Usage (root): `deno run -A bench/clients.ts [--json FILE]`. Writes
 * `bench/results/clients-<time>.json` and `clients-latest.json`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Topology } from "../src/demo/topology.ts";
import { selfCommand } from "../src/demo/lab.ts";
import { encodeKey, generatePrivateKey } from "../src/core/keys.ts";
import { bestX25519 } from "../src/crypto/x25519.ts";
import type { Phase, Plan } from "./clients_gen.ts";

const { values } = parseArgs({ args: Deno.args, options: { json: { type: "string" } } });

const CLIENTS = 6000;
const SOURCES = 64;
const SERVER = "10.203.0.2";
const PORT = 51820;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => console.error(`[clients] ${s}`);

/** CPU seconds (user + system, all threads) of a process. */
function cpuSeconds(pid: number): number {
  const f = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1]!.split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** Resident memory of a process, MiB. */
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** The namespace's UDP buffer errors and ICMP echo counters (`/proc/net/snmp`), to place a loss. */
async function udpErrors(
  host: string,
): Promise<{ rcvbuf: number; sndbuf: number; inEchos: number; outEchoReps: number }> {
  const r = await topo.exec(host, ["cat", "/proc/net/snmp"]);
  const get = (proto: string, k: string) => {
    const lines = r.stdout.split("\n").filter((l) => l.startsWith(`${proto}:`));
    const names = lines[0]!.split(/\s+/), vals = lines[1]!.split(/\s+/).map(Number);
    return vals[names.indexOf(k)] ?? 0;
  };
  return {
    rcvbuf: get("Udp", "RcvbufErrors"),
    sndbuf: get("Udp", "SndbufErrors"),
    inEchos: get("Icmp", "InEchos"),
    outEchoReps: get("Icmp", "OutEchoReps"),
  };
}

/** The server's TUN drops (kernel queue to xvpn full) and the kernel's backlog drops. */
async function kernelDrops(): Promise<{ tunTx: number; backlog: number }> {
  const r = await topo.exec("server", ["cat", "/sys/class/net/xvpn0/statistics/tx_dropped"], {
    allowFailure: true,
  });
  const soft = (await Deno.readTextFile("/proc/net/softnet_stat")).trim().split("\n")
    .reduce((a, l) => a + parseInt(l.split(" ")[1]!, 16), 0);
  return { tunTx: Number(r.stdout.trim()) || 0, backlog: soft };
}

const topo = await Topology.create({
  hosts: ["gen", "server"],
  links: [{ a: "gen", b: "server", subnet: "10.203.0.0/24" }],
});
const dir = await Deno.makeTempDir({ prefix: "xvpn-clients-" });
try {
  // 64 source addresses on the generator's side, routed back by the server.
  const genIf = topo.iface("gen", "server");
  const sources = Array.from({ length: SOURCES }, (_, i) => `10.203.1.${i + 1}`);
  for (const a of sources) {
    await topo.exec("gen", ["ip", "address", "add", `${a}/32`, "dev", genIf]);
  }
  await topo.exec("server", ["ip", "route", "add", "10.203.1.0/24", "via", "10.203.0.1"]);

  log(`generating ${CLIENTS} client keys`);
  const x = bestX25519();
  const serverKey = generatePrivateKey();
  const keys = Array.from({ length: CLIENTS }, () => generatePrivateKey());
  const cfg = [
    `listen: "${SERVER}:${PORT}"`,
    `private_key: "${encodeKey(serverKey)}"`,
    `tun: { name: xvpn0, mtu: 1420 }`,
    `pool: 10.96.0.0/16`,
    `log: { level: info, file: ${dir}/server.log }`,
    `data_path: fast`,
    `clients:`,
    ...keys.map((k, i) => `  - { name: c${i}, public_key: "${encodeKey(x.publicKey(k))}" }`),
  ].join("\n");
  await Deno.writeTextFile(`${dir}/server.yaml`, cfg, { mode: 0o600 });
  const server = topo.spawn(
    "server",
    [...selfCommand(), "serve", "--config", `${dir}/server.yaml`],
    {
      logFile: `${dir}/server.out`,
      // e.g. XVPN_BENCH_SERVER_V8_FLAGS=--trace-gc to see the server's collections.
      env: Deno.env.get("XVPN_BENCH_SERVER_V8_FLAGS")
        ? { DENO_V8_FLAGS: Deno.env.get("XVPN_BENCH_SERVER_V8_FLAGS")! }
        : {},
    },
  );
  for (let i = 0; i < 400; i++) {
    const l = await Deno.readTextFile(`${dir}/server.log`).catch(() => "");
    if (l.includes("Listening on")) break;
    await sleep(50);
  }
  const pid = server.pid;
  await sleep(500);
  const rssEmpty = rssMiB(pid);
  log(`server pid ${pid} listening, RSS ${rssEmpty.toFixed(1)} MiB with no session`);

  const phases: Phase[] = [
    {
      name: "1 client, 64 Hz",
      connect: { from: 0, to: 1, perS: 10 },
      play: { from: 0, to: 1, hz: 64 },
      ms: 15_000,
    },
    { name: "1 client, 16 Hz", play: { from: 0, to: 1, hz: 16 }, ms: 15_000 },
    { name: "1 client, 8 Hz", play: { from: 0, to: 1, hz: 8 }, ms: 15_000 },
    {
      name: "100 clients, 64 Hz",
      connect: { from: 1, to: 100, perS: 100 },
      play: { from: 0, to: 100, hz: 64 },
      ms: 15_000,
    },
    {
      name: "1000 clients, 8 Hz",
      connect: { from: 100, to: 1000, perS: 200 },
      play: { from: 0, to: 1000, hz: 8 },
      ms: 15_000,
    },
    {
      name: "1000 clients, 16 Hz",
      play: { from: 0, to: 1000, hz: 16 },
      ms: 15_000,
    },
    { name: "5000 idle sessions", connect: { from: 1000, to: 5000, perS: 300 }, ms: 5_000 },
    { name: "100 play, no storm", play: { from: 0, to: 100, hz: 64 }, ms: 10_000 },
    {
      name: "100 play, 1000 join in 10 s",
      play: { from: 0, to: 100, hz: 64 },
      join: { from: 5000, to: 6000 },
      ms: 10_000,
    },
  ];
  const plan: Plan = {
    server: SERVER,
    port: PORT,
    serverPublicKey: encodeKey(x.publicKey(serverKey)),
    privateKeys: keys.map(encodeKey),
    sources,
    phases,
  };
  const gen = topo.spawn("gen", [
    Deno.execPath(),
    "run",
    "-A",
    "--quiet",
    new URL("./clients_gen.ts", import.meta.url).pathname,
  ], { stdin: "piped", stdout: "piped", stderr: "inherit" });
  const w = gen.stdin!.getWriter();
  await w.write(new TextEncoder().encode(JSON.stringify(plan)));
  await w.close();

  const results: Record<string, unknown>[] = [];
  let cpuAt = 0, genCpuAt = 0;
  let kAt = { tunTx: 0, backlog: 0 };
  const zero = { rcvbuf: 0, sndbuf: 0, inEchos: 0, outEchoReps: 0 };
  let udpAt = { gen: zero, server: zero };
  let rssIdle: number | undefined;
  const decoder = new TextDecoder();
  let buf = "";
  for await (const chunk of gen.stdout!) {
    buf += decoder.decode(chunk, { stream: true });
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const e = JSON.parse(line) as Record<string, unknown>;
      if (e.at === "connected") log(`${e.phase}: ${e.clients}/${e.wanted} connected in ${e.ms} ms`);
      if (e.at === "start") {
        cpuAt = cpuSeconds(pid);
        genCpuAt = cpuSeconds(gen.pid);
        udpAt = { gen: await udpErrors("gen"), server: await udpErrors("server") };
        kAt = await kernelDrops();
      }
      if (e.at === "end") {
        const cpu = cpuSeconds(pid) - cpuAt;
        const genCpu = cpuSeconds(gen.pid) - genCpuAt;
        const g = await udpErrors("gen"), sv = await udpErrors("server");
        const k = await kernelDrops();
        const packets = 2 * (e.received as number);
        const r = {
          ...e,
          serverCpuS: cpu,
          serverCpuPercent: (cpu / ((e.ms as number) / 1000)) * 100,
          serverUsPerPacket: packets ? (cpu * 1e6) / packets : null,
          serverRssMiB: rssMiB(pid),
          // The generator shares the machine: near 100% it, not the server, sets the RTT.
          generatorCpuPercent: (genCpu / ((e.ms as number) / 1000)) * 100,
          // Where a loss happened: a socket buffer that overflowed in either namespace.
          genUdpRcvbufErrors: g.rcvbuf - udpAt.gen.rcvbuf,
          genUdpSndbufErrors: g.sndbuf - udpAt.gen.sndbuf,
          serverUdpRcvbufErrors: sv.rcvbuf - udpAt.server.rcvbuf,
          serverUdpSndbufErrors: sv.sndbuf - udpAt.server.sndbuf,
          serverKernelEchoes: sv.inEchos - udpAt.server.inEchos,
          serverKernelEchoReplies: sv.outEchoReps - udpAt.server.outEchoReps,
          serverTunTxDropped: k.tunTx - kAt.tunTx,
          kernelBacklogDrops: k.backlog - kAt.backlog,
        };
        if (e.phase === "5000 idle sessions") rssIdle = r.serverRssMiB;
        results.push(r);
        log(JSON.stringify(r));
      }
    }
  }
  const st = await gen.status;
  if (!st.success) throw new Error(`the generator failed (exit ${st.code})`);
  // The table cost of idle sessions without the process around it: the server core in one
  // process, its heap after a full collection (bench/sessions_mem.ts).
  const mem = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "--v8-flags=--expose-gc",
      new URL("./sessions_mem.ts", import.meta.url).pathname,
      "--sessions",
      "5000",
    ],
    stderr: "inherit",
  }).output();
  const sessionTable = mem.success ? JSON.parse(new TextDecoder().decode(mem.stdout)) : null;
  server.kill("SIGTERM");
  await server.status;
  const serverLog = await Deno.readTextFile(`${dir}/server.log`);
  const out = {
    at: new Date().toISOString(),
    machine: `${navigator.hardwareConcurrency} vCPUs`,
    rssEmptyMiB: rssEmpty,
    rssIdle5000MiB: rssIdle,
    sessionTable,
    phases: results,
    serverWarnings: serverLog.split("\n").filter((l) => l.includes("[WRN]") || l.includes("[ERR]"))
      .slice(0, 10),
    // The server's own counters, logged as it stops: datagrams it dropped, by reason.
    serverExit: serverLog.split("\n").filter((l) => /Dropped|sent \d+ interactive/.test(l)),
  };
  const stamp = out.at.replace(/[:.]/g, "-").slice(0, 19) + "Z";
  const file = values.json ?? new URL(`./results/clients-${stamp}.json`, import.meta.url).pathname;
  await Deno.writeTextFile(file, JSON.stringify(out, null, 2) + "\n");
  await Deno.writeTextFile(
    new URL("./results/clients-latest.json", import.meta.url).pathname,
    JSON.stringify(out, null, 2) + "\n",
  );
  console.log(
    "| phase | echoes | loss % | RTT p50 / p99 ms | server CPU % | server µs / packet | " +
      "generator CPU % |",
  );
  console.log("| :--- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const r of results) {
    const f = (v: unknown, d = 2) => typeof v === "number" ? v.toFixed(d) : "—";
    console.log(
      `| ${r.phase} | ${r.received}/${r.sent} | ${f(r.lossPercent, 3)} | ${f(r.p50)} / ${
        f(r.p99)
      } | ` +
        `${f(r.serverCpuPercent, 1)} | ${f(r.serverUsPerPacket, 1)} | ${
          f(r.generatorCpuPercent, 0)
        } |`,
    );
  }
  if (sessionTable) {
    console.log(
      `\nsession table: ${
        sessionTable.bytesPerSession.toFixed(0)
      } bytes of heap per idle session ` +
        `(5000 sessions: ${sessionTable.heapBeforeMiB.toFixed(1)} -> ` +
        `${sessionTable.heapAfterMiB.toFixed(1)} MiB)`,
    );
  }
  console.log(
    // RSS moves with collections (the config's parse garbage goes meanwhile): per session, the
    // session table figure above is the one to read.
    `\nserver RSS: ${rssEmpty.toFixed(1)} MiB with no session, ${rssIdle?.toFixed(1)} MiB with ` +
      `5000 idle`,
  );
  for (const l of out.serverExit) console.log(l);
  log(`wrote ${file}`);
} finally {
  await topo.destroy();
  if (Deno.env.get("XVPN_BENCH_KEEP")) log(`kept ${dir}`);
  else await Deno.remove(dir, { recursive: true }).catch(() => {});
}
