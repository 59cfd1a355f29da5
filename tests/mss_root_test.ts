/**
 * Root test: MSS clamping is what lets TCP cross the tunnel when ICMP is filtered (field notes:
 * a console behind a PC announces MSS 1460 from its 1500-byte LAN).
 *
 *   console 10.201.5.2 ─ client ─(1400)─ router ─(1400)─ server ─ game 10.201.2.2
 *    (LAN 1500)        masquerade   xvpn0 1340 ═══ tunnel ═══ xvpn0 1340    (LAN 1500)
 *
 * The tunnel's TUN MTU is 1340, which fits the 1400-byte underlay (1340 + 60). The server drops
 * every ICMP "destination unreachable" it would send towards the game link, so the game host
 * never learns that its 1500-byte segments do not fit the tunnel. The console pulls a download
 * from the game host, once with `mss_clamp` at its default (on) at both ends, once with
 * `mss_clamp: false` at both ends; each run gets its own lab, built from the real CLI.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { LAB, Lab, ping } from "./support/net.ts";

const TUN_MTU = 1340;
const UNDERLAY_MTU = 1400;
const BYTES = 20 * 1024 * 1024;
const PORT = 5301;
/** How long the unclamped download may try before it counts as stalled. */
const BOUND_MS = 15_000;
const MiB = 1024 * 1024;

/** Game side: accept one connection, send `BYTES` random bytes, report what the kernel took. */
const SENDER = `
import { createHash } from "node:crypto";
const listener = Deno.listen({ hostname: "0.0.0.0", port: ${PORT} });
const conn = await listener.accept();
listener.close();
const hash = createHash("sha256");
let written = 0;
const report = (complete) => {
  console.log(JSON.stringify({ written, complete, sha256: complete ? hash.digest("hex") : "" }));
  Deno.exit(0);
};
Deno.addSignalListener("SIGTERM", () => report(false));
const w = conn.writable.getWriter();
const buf = new Uint8Array(65536);
while (written < ${BYTES}) {
  crypto.getRandomValues(buf);
  const chunk = buf.slice(0, Math.min(buf.length, ${BYTES} - written));
  hash.update(chunk);
  await w.write(chunk);
  written += chunk.length;
}
await w.close();
report(true);
`;

/** Console side: connect, read to EOF or until the bound, report bytes, hash and timings. */
const RECEIVER = `
import { createHash } from "node:crypto";
const t0 = performance.now();
const hash = createHash("sha256");
const r = { connected: false, connectMs: 0, bytes: 0, complete: false, seconds: 0,
  lastByteSeconds: 0, sha256: "" };
let start = t0;
const finish = () => {
  r.seconds = (performance.now() - start) / 1000;
  r.sha256 = hash.digest("hex");
  console.log(JSON.stringify(r));
  Deno.exit(0);
};
setTimeout(finish, ${BOUND_MS});
const conn = await Deno.connect({ hostname: "${LAB.game}", port: ${PORT} });
start = performance.now();
r.connected = true;
r.connectMs = start - t0;
for await (const chunk of conn.readable) {
  hash.update(chunk);
  r.bytes += chunk.length;
  r.lastByteSeconds = (performance.now() - start) / 1000;
}
r.complete = true;
finish();
`;

interface Download {
  sent: { written: number; complete: boolean; sha256: string };
  got: {
    connected: boolean;
    connectMs: number;
    bytes: number;
    complete: boolean;
    seconds: number;
    lastByteSeconds: number;
    sha256: string;
  };
  /** The game host's TCP state (`ss -ti`) shortly before the bound, when still connected. */
  senderTcp: string;
}

const TABLE = "xvpn_mss_test";

/**
 * The console's masquerade into the tunnel (in the client) and the ICMP filter (in the server),
 * then a check that the filter bites: a DF ping one byte over the TUN MTU from the game host
 * towards the client gets neither a reply nor a "Frag needed" error, and the drop is counted.
 */
async function prepare(lab: Lab): Promise<void> {
  const { topo } = lab;
  await topo.exec("client", ["nft", "-f", "-"], {
    stdin: [
      `table ip ${TABLE} {`,
      `  chain post {`,
      `    type nat hook postrouting priority srcnat; policy accept;`,
      `    oifname "xvpn0" ip saddr ${LAB.consoleNet} masquerade`,
      `  }`,
      `}`,
      ``,
    ].join("\n"),
  });
  await topo.exec("server", ["nft", "-f", "-"], {
    stdin: [
      `table ip ${TABLE} {`,
      `  chain out {`,
      `    type filter hook output priority filter; policy accept;`,
      `    oifname "${
        topo.iface("server", "game")
      }" icmp type destination-unreachable counter drop`,
      `  }`,
      `}`,
      ``,
    ].join("\n"),
  });
  // No black-hole detection on either end host (the Linux default, pinned so the trap is real).
  for (const host of ["game", "console"]) {
    await topo.exec(host, ["sysctl", "-q", "-w", "net.ipv4.tcp_mtu_probing=0"]);
  }
  const tunMtu = await topo.exec("client", ["cat", "/sys/class/net/xvpn0/mtu"]);
  assertEquals(tunMtu.stdout.trim(), String(TUN_MTU), "the client took the pushed TUN MTU");

  const small = await ping(lab, "console", LAB.game, { count: 2 });
  assertEquals(small.received, 2, `console -> game through the client's NAT: ${small.out}`);
  const fits = await ping(lab, "game", LAB.clientTunnel, {
    count: 1,
    size: TUN_MTU - 28,
    df: true,
  });
  assertEquals(fits.received, 1, `a DF ping of exactly the TUN MTU: ${fits.out}`);
  const over = await ping(lab, "game", LAB.clientTunnel, {
    count: 1,
    size: TUN_MTU - 27,
    df: true,
  });
  assertEquals(over.received, 0, `a DF ping one byte over the TUN MTU is lost: ${over.out}`);
  assert(!/frag needed/i.test(over.out), `the game host got no ICMP: ${over.out}`);
  assert(await icmpDropped(lab) >= 1, "the server's frag-needed was dropped");
}

/** ICMP "destination unreachable" packets the server's filter dropped so far. */
async function icmpDropped(lab: Lab): Promise<number> {
  const r = await lab.topo.exec("server", ["nft", "list", "table", "ip", TABLE]);
  return Number(/counter packets (\d+)/.exec(r.stdout)?.[1] ?? NaN);
}

/** tcpdump of the download's SYN and SYN-ACK on `host`'s link to `peer`, running until stopped. */
async function synCapture(
  lab: Lab,
  host: string,
  peer: string,
): Promise<() => Promise<{ syn?: number; synAck?: number }>> {
  const cap = lab.topo.spawn(host, [
    "tcpdump",
    "-i",
    lab.topo.iface(host, peer),
    "-n",
    "-l",
    `tcp port ${PORT} and tcp[tcpflags] & tcp-syn != 0`,
  ], { stdout: "piped", stderr: "piped" });
  const out = new Response(cap.stdout).text();
  // Wait for "listening on", then keep draining stderr so tcpdump never blocks on it.
  const reader = cap.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let err = "";
  const deadline = Date.now() + 5000;
  while (!err.includes("listening on") && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    err += value;
  }
  const drain = (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  return async () => {
    cap.kill("SIGINT");
    await cap.status;
    await drain;
    const lines = (await out).split("\n");
    const mss = (flags: string) => {
      const l = lines.find((l) => l.includes(`Flags [${flags}]`));
      const m = l && /mss (\d+)/.exec(l);
      return m ? Number(m[1]) : undefined;
    };
    return { syn: mss("S"), synAck: mss("S.") };
  };
}

/** The console downloads `BYTES` from the game host, for at most {@link BOUND_MS}. */
async function download(lab: Lab): Promise<Download> {
  const { topo } = lab;
  const sender = topo.spawn("game", [Deno.execPath(), "eval", SENDER], { stdout: "piped" });
  const sentText = new Response(sender.stdout).text();
  for (let i = 0; i < 200; i++) {
    const r = await topo.exec("game", ["ss", "-Hltn", `sport = :${PORT}`], { allowFailure: true });
    if (r.stdout.trim()) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  let senderTcp = "";
  const snapshot = setTimeout(async () => {
    const r = await topo.exec("game", ["ss", "-Htin", `sport = :${PORT}`], { allowFailure: true });
    senderTcp = r.stdout.replace(/\s+/g, " ").trim();
  }, BOUND_MS - 1500);
  try {
    const r = await topo.exec("console", [Deno.execPath(), "eval", RECEIVER], {
      timeoutMs: BOUND_MS + 10_000,
    });
    try {
      sender.kill("SIGTERM");
    } catch {
      // already done
    }
    await sender.status;
    const last = (s: string) => JSON.parse(s.trim().split("\n").pop()!);
    return { sent: last(await sentText), got: last(r.stdout), senderTcp };
  } finally {
    clearTimeout(snapshot);
  }
}

/** Builds a lab with `mss_clamp` as given, runs the download, returns it with the SYN MSSes. */
async function run(clamp: boolean) {
  const extra = clamp ? "" : "mss_clamp: false";
  const lab = await Lab.create({
    mtu: TUN_MTU,
    underlayMtu: UNDERLAY_MTU,
    router: { serverLinkMtu: UNDERLAY_MTU },
    withConsole: true,
    serverExtra: extra,
    clientExtra: extra,
  });
  try {
    await lab.up();
    await prepare(lab);
    const icmpBefore = await icmpDropped(lab);
    const atGame = await synCapture(lab, "game", "server");
    const atConsole = await synCapture(lab, "console", "client");
    const d = await download(lab);
    const game = await atGame();
    const consoleSide = await atConsole();
    return {
      ...d,
      // What each end announced, and what the other end was told.
      mss: {
        consoleSent: consoleSide.syn,
        gameSaw: game.syn,
        gameSent: game.synAck,
        consoleSaw: consoleSide.synAck,
      },
      icmpDropped: (await icmpDropped(lab)) - icmpBefore,
    };
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await lab.logs()}`, { cause: err });
  } finally {
    await lab.destroy();
  }
}

const mbits = (bytes: number, seconds: number) => (bytes * 8 / seconds / 1e6).toFixed(1);

rootTest(
  `mss: a 20 MiB download game -> console over a ${TUN_MTU}-byte tunnel with ICMP blocked ` +
    `completes with mss_clamp, stalls without`,
  async () => {
    const t0 = performance.now();
    const on = await run(true);
    const m1 = on.mss;
    console.log(
      `  mss_clamp on : ${(on.got.bytes / MiB).toFixed(0)} MiB in ${on.got.seconds.toFixed(2)} s ` +
        `(${mbits(on.got.bytes, on.got.seconds)} Mbit/s), SHA-256 ${
          on.got.sha256 === on.sent.sha256 ? "matches" : "DIFFERS"
        }; SYN MSS console ${m1.consoleSent} -> game ${m1.gameSaw}, SYN-ACK MSS game ${m1.gameSent}` +
        ` -> console ${m1.consoleSaw}; ICMP frag-needed dropped at the server: ${on.icmpDropped}`,
    );
    assert(
      on.got.complete && on.sent.complete,
      `the clamped download completed: ${JSON.stringify(on)}`,
    );
    assertEquals(on.got.bytes, BYTES);
    assertEquals(on.got.sha256, on.sent.sha256, "bytes arrived intact");
    assertEquals(m1.consoleSent, 1460, "the console announced its LAN's MSS");
    assertEquals(m1.gameSaw, TUN_MTU - 40, "the game host was told the tunnel's MSS");
    assertEquals(m1.gameSent, 1460, "the game host announced its LAN's MSS");
    assertEquals(m1.consoleSaw, TUN_MTU - 40, "the console was told the tunnel's MSS");

    const off = await run(false);
    const m0 = off.mss;
    console.log(
      `  mss_clamp off: connected in ${off.got.connectMs.toFixed(0)} ms, then ` +
        `${off.got.bytes} of ${BYTES} bytes in ${off.got.seconds.toFixed(1)} s ` +
        `(${mbits(off.got.bytes, off.got.seconds)} Mbit/s; last byte at ` +
        `${off.got.bytes ? `${off.got.lastByteSeconds.toFixed(2)} s` : "-"}), the game host's ` +
        `kernel took ${off.sent.written} bytes; SYN MSS console ${m0.consoleSent} -> game ` +
        `${m0.gameSaw}, SYN-ACK MSS game ${m0.gameSent} -> console ${m0.consoleSaw}; ICMP ` +
        `frag-needed dropped at the server: ${off.icmpDropped}`,
    );
    // The game host's view of the stalled connection: it still believes the path takes 1500.
    const fields = ["mss", "pmtu", "cwnd", "backoff", "rto", "retrans", "bytes_retrans", "unacked"]
      .map((k) => new RegExp(`\\b${k}:\\S+`).exec(off.senderTcp)?.[0])
      .filter((f) => f !== undefined);
    console.log(`  game host's TCP ${(BOUND_MS - 1500) / 1000} s in: ${fields.join(" ")}`);
    assert(off.got.connected, "the unclamped connection was established (small packets pass)");
    assert(!off.got.complete, `the unclamped download stalled: ${JSON.stringify(off)}`);
    assert(
      off.got.bytes < BYTES / 100,
      `next to nothing arrived without clamping (${off.got.bytes} bytes)`,
    );
    assertEquals(m0.gameSaw, 1460, "unclamped, the game host was told 1460");
    assertEquals(m0.consoleSaw, 1460, "unclamped, the console was told 1460");
    assert(off.icmpDropped >= 1, "the server's frag-needed errors were dropped");
    console.log(`  whole test: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  },
);
