/**
 * Timer wake-ups and dead-path detection of a real tunnel, per data path (root):
 *
 * 1. idle: `poll()` calls of the client process in 10 s of an idle tunnel (strace -c on every
 *    thread), i.e. how often the data plane wakes when nothing happens;
 * 2. dead server: with a 50 ms ping stream running, the server is SIGKILLed and stays dead for
 *    10 s: the client's poll() calls per second meanwhile, how long until it logs the dead path, and the
 *    longest gap in the ping stream once the server is back.
 *
 * Both xvpn processes use the product defaults (keepalive 10 s, session timeout 60 s).
 *
 * Usage (root): `deno run -A bench/wakeups.ts [--paths fast,portable] [--json FILE]`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { LAB, Lab } from "../src/demo/lab.ts";

/** One data path's figures. */
export interface WakeupResult {
  dataPath: string;
  idlePollsPer10s: number;
  deadServerPollsPerS: number;
  detectMs: number | undefined;
  detectLine: string | undefined;
  pingGapMs: number;
}

/** How long the server stays dead. */
const DEAD_SECONDS = 10;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** poll() calls made by every thread of `pid` during `seconds` (strace -c). */
async function countPolls(pid: number, seconds: number): Promise<number> {
  const tids = [...Deno.readDirSync(`/proc/${pid}/task`)].map((e) => e.name);
  const out = await new Deno.Command("timeout", {
    args: [
      "-s",
      "INT",
      String(seconds),
      "strace",
      "-c",
      "-e",
      "trace=poll,ppoll",
      ...tids.flatMap((t) => ["-p", t]),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stderr);
  let calls = 0;
  for (const m of text.matchAll(/^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?p?poll$/gm)) {
    calls += Number(m[1]);
  }
  return calls;
}

async function measure(dataPath: "fast" | "portable"): Promise<WakeupResult> {
  const lab = await Lab.create({ dataPath, keepalive: "product" });
  try {
    await lab.up();
    await sleep(2000);
    const idle = await countPolls(lab.client!.pid, 10);

    // Dead server while sending: a 50 ms ping stream; the server is SIGKILLed, stays dead for
    // DEAD_SECONDS (poll() counted meanwhile), then comes back.
    const logBefore = (await Deno.readTextFile(lab.path("client.log"))).length;
    const count = 400;
    const ping = lab.topo.spawn("client", [
      "ping",
      "-n",
      "-i",
      "0.05",
      "-c",
      String(count),
      "-W",
      "1",
      LAB.game,
    ], { stdout: "piped" });
    const replies = new Response(ping.stdout).text();
    await sleep(2000);
    lab.server!.kill("SIGKILL");
    await lab.server!.status;
    const dead = await countPolls(lab.client!.pid, DEAD_SECONDS);
    lab.startServer();
    const out = await replies;
    const got = new Set([...out.matchAll(/icmp_seq=(\d+)/g)].map((m) => Number(m[1])));
    let worst = 0, run = 0;
    for (let i = 1; i <= count; i++) {
      run = got.has(i) ? 0 : run + 1;
      worst = Math.max(worst, run);
    }
    const log = (await Deno.readTextFile(lab.path("client.log"))).slice(logBefore);
    const line = log.split("\n").find((l) => l.includes("No reply from the server"));
    const ms = line ? Number(/for (\d+) ms/.exec(line)?.[1]) : undefined;
    return {
      dataPath,
      idlePollsPer10s: idle,
      deadServerPollsPerS: Math.round(dead / DEAD_SECONDS),
      detectMs: ms,
      detectLine: line?.replace(/^.*?No reply/, "No reply"),
      pingGapMs: worst * 50,
    };
  } finally {
    await lab.destroy();
  }
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { paths: { type: "string", default: "fast,portable" }, json: { type: "string" } },
  });
  const results: WakeupResult[] = [];
  for (const p of values.paths!.split(",")) {
    if (p !== "fast" && p !== "portable") throw new Error(`unknown data path ${p}`);
    console.error(`[wakeups] ${p}...`);
    const r = await measure(p);
    console.error(`[wakeups] ${JSON.stringify(r)}`);
    results.push(r);
  }
  console.log(
    "| data path | idle: poll() per 10 s | dead server, pinging: poll() per s | dead path noticed after | longest gap in 50 ms pings |",
  );
  console.log("| :--- | ---: | ---: | ---: | ---: |");
  for (const r of results) {
    console.log(
      `| ${r.dataPath} | ${r.idlePollsPer10s} | ${r.deadServerPollsPerS} | ${
        r.detectMs ?? "never"
      } ms | ${r.pingGapMs} ms |`,
    );
  }
  if (values.json) await Deno.writeTextFile(values.json, JSON.stringify(results, null, 2) + "\n");
}
