/**
 * `xvpn demo` (root): builds three network namespaces, runs a real `xvpn serve` and a real
 * `xvpn connect` as separate processes, pings through the tunnel, moves a few MB over TCP with
 * a checksum on both ends, prints what it did, and removes everything (also on Ctrl-C).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { LAB, Lab, parsePing } from "../demo/lab.ts";
import { selfCommand } from "./self.ts";
import { UsageError } from "./report.ts";

function say(s: string) {
  console.log(s);
}

/** Runs the demo; returns the exit code. */
export async function demo(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { mb: { type: "string", default: "20" } } });
  const mb = Number(values.mb);
  if (!(mb > 0)) throw new UsageError("demo: --mb must be a positive number");
  if (Deno.build.os !== "linux") throw new Error("The demo needs Linux network namespaces");
  if (Deno.uid?.() !== 0) {
    throw new Error(
      "The demo needs root (it creates network namespaces and TUN devices): run it with sudo",
    );
  }

  say("xvpn demo: building namespaces client, server and game (behind the server)...");
  const lab = await Lab.create({});
  lab.topo.destroyOnSignal();
  let ok = false;
  try {
    say(`  keys and configs in ${lab.dir}`);
    const t0 = performance.now();
    await lab.up();
    say(
      `  tunnel up in ${
        Math.round(performance.now() - t0)
      } ms: client ${LAB.clientTunnel} <-> server ${LAB.serverTunnel}` +
        ` (underlay ${LAB.clientUnderlay} -> ${LAB.serverUnderlay}:${LAB.port})`,
    );

    const route = await lab.topo.exec("client", ["ip", "route", "get", LAB.game]);
    say(`  client route to the game host: ${route.stdout.trim().split("\n")[0]}`);

    const ping = await lab.topo.exec("client", [
      "ping",
      "-c",
      "10",
      "-i",
      "0.1",
      "-W",
      "2",
      LAB.game,
    ], {
      allowFailure: true,
    });
    const p = parsePing(ping.stdout);
    const sorted = [...p.rtts].sort((a, b) => a - b);
    const med = sorted[Math.floor(sorted.length / 2)] ?? NaN;
    say(
      `  ping ${LAB.game} through the tunnel: ${p.received}/${p.transmitted} replies, median RTT ${med} ms`,
    );
    if (p.received === 0) throw new Error(`No ping reply through the tunnel\n${await lab.logs()}`);

    const big = await lab.topo.exec("client", [
      "ping",
      "-c",
      "3",
      "-s",
      "1900",
      "-W",
      "2",
      LAB.game,
    ], {
      allowFailure: true,
    });
    const pb = parsePing(big.stdout);
    say(
      `  ping -s 1900 (larger than the 1420 tunnel MTU, fragmented): ${pb.received}/${pb.transmitted} replies`,
    );

    const bytes = Math.round(mb * 1024 * 1024);
    const sink = lab.topo.spawn("game", [...selfCommand(), "tcp-check", "sink", "--port", "5201"], {
      stdout: "piped",
    });
    const sinkOut = new Response(sink.stdout).text();
    await waitListening(lab, 5201);
    const src = await lab.topo.exec("client", [
      ...selfCommand(),
      "tcp-check",
      "source",
      "--to",
      `${LAB.game}:5201`,
      "--bytes",
      String(bytes),
      "--seed",
      String(Date.now() & 0xffff),
    ]);
    await sink.status;
    const sent = JSON.parse(src.stdout.trim().split("\n").pop()!);
    const got = JSON.parse((await sinkOut).trim().split("\n").pop()!);
    const mbps = (sent.bytes * 8) / sent.seconds / 1e6;
    const same = sent.sha256 === got.sha256 && sent.bytes === got.bytes;
    say(
      `  TCP ${(sent.bytes / 1048576).toFixed(1)} MiB client -> game in ${
        sent.seconds.toFixed(2)
      } s ` +
        `(${mbps.toFixed(0)} Mbit/s): sha256 ${same ? "matches" : "DIFFERS"} (${
          got.sha256.slice(0, 16)
        }...)`,
    );
    if (!same) throw new Error("The bytes that arrived differ from the bytes sent");

    say("  stopping client and server (SIGTERM)...");
    const st = await lab.stopAll();
    const left = await lab.topo.exec("client", ["ip", "link", "show", "xvpn0"], {
      allowFailure: true,
    });
    say(
      `  client exited ${st.client?.code}, server exited ${st.server?.code}; client TUN ${
        left.code === 0 ? "STILL THERE" : "removed"
      }`,
    );
    ok = p.received > 0 && pb.received > 0 && same && st.client?.code === 0 &&
      st.server?.code === 0 && left.code !== 0;
  } finally {
    await lab.destroy();
    say("  namespaces removed.");
  }
  say(ok ? "xvpn demo: OK" : "xvpn demo: FAILED");
  return ok ? 0 : 1;
}

async function waitListening(lab: Lab, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await lab.topo.exec("game", ["ss", "-Hltn", `sport = :${port}`], {
      allowFailure: true,
    });
    if (r.stdout.trim()) return;
    await new Promise((res) => setTimeout(res, 50));
  }
  throw new Error(`The TCP sink on the game host did not start listening on ${port}`);
}
