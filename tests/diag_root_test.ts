/**
 * `xvpn diag mtu` against a real `xvpn serve`, in namespaces with a router in the middle:
 *
 *   client ─1500─ router ─1400─ server ─1500─ game
 *
 * The router forwards, so the 1400-byte hop is one where ICMP "fragmentation needed" is sent
 * (or, with an nftables rule, dropped: a PMTU black hole). Every test runs diag as a process
 * with `--json` and prints the figures it measured.
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { selfCommand } from "../src/demo/lab.ts";
import { LAB, Lab, type LabOptions } from "../src/demo/lab.ts";
import { withLab } from "./support/net.ts";
import type { MtuReport } from "../src/diag/mtu_report.ts";
import { encodeKey, generatePrivateKey, publicKeyOf } from "../src/core/keys.ts";
import { addLoss } from "./lab/impair.ts";
import { buildFakeWintun } from "./support/fakewintun/build.ts";

/** The router's link to the server: the bottleneck of every test. */
const BOTTLENECK = 1400;

/** A lab whose server sits behind a router with a BOTTLENECK-byte link. */
function withRouterLab(opts: LabOptions, fn: (lab: Lab) => Promise<void>): Promise<void> {
  return withLab({ router: { serverLinkMtu: BOTTLENECK }, ...opts }, fn);
}

/** Starts only the server (diag needs no running client) and waits for its TUN. */
async function startServer(lab: Lab): Promise<void> {
  lab.startServer();
  await lab.waitAddress("server", LAB.serverTunnel);
  await lab.waitListening();
}

/** Runs `xvpn diag mtu --config client.yaml` in the client namespace. */
async function diag(
  lab: Lab,
  extra: string[] = [],
  env?: Record<string, string>,
): Promise<{ code: number; text: string; stderr: string; ms: number }> {
  const t0 = performance.now();
  // Extra variables through env(1): the namespace's exec takes an argv only.
  const vars = Object.entries(env ?? {}).map(([k, v]) => `${k}=${v}`);
  const r = await lab.topo.exec(
    "client",
    [
      ...(vars.length ? ["env", ...vars] : []),
      ...selfCommand(),
      ...["diag", "mtu", "--config", lab.path("client.yaml"), ...extra],
    ],
    { allowFailure: true, timeoutMs: 60_000 },
  );
  return { code: r.code, text: r.stdout, stderr: r.stderr, ms: Math.round(performance.now() - t0) };
}

async function diagJson(
  lab: Lab,
  env?: Record<string, string>,
): Promise<{ code: number; report: MtuReport; ms: number }> {
  const r = await diag(lab, ["--json"], env);
  let report: MtuReport;
  try {
    report = JSON.parse(r.text);
  } catch {
    throw new Error(`diag --json printed no JSON (exit ${r.code}): ${r.text}\n${r.stderr}`);
  }
  // An unmeasured run has no figures to compare: say why instead of failing on a missing field.
  if (!report.path) throw new Error(`diag did not measure (exit ${r.code}): ${r.text}`);
  return { code: r.code, report, ms: r.ms };
}

/** One line of figures per run, for the test log. */
function figures(name: string, r: { code: number; report: MtuReport; ms: number }): void {
  const p = r.report.path;
  console.log(
    `  [${name}] exit ${r.code} in ${r.ms} ms: path MTU ${p.mtu} (payload ${p.largestPayload}), ` +
      `ICMP-reported ${p.icmpReportedMtu ?? "none"}, black hole ${p.blackHole}` +
      `${p.smallestVanished ? ` (from ${p.smallestVanished})` : ""}, ${p.probes} probes, ` +
      `${p.lostAndRetried} lost+retried, rtt ${p.rttMs} ms; TUN server ${r.report.tun.server}` +
      `, client ${r.report.tun.client?.mtu ?? "none"}; recommended ` +
      `${r.report.recommendation.arithmetic}; sizes ` +
      p.steps.map((s) => `${s.size}:${s.result}`).join(" "),
  );
}

/** An nftables table on the router that drops the ICMP errors it would send. */
const DROP_ICMP = `table ip diag_blackhole {
  chain out {
    type filter hook output priority 0; policy accept;
    icmp type destination-unreachable drop
  }
}
`;

rootTest("diag mtu (a): finds 1400 exactly and reports the ICMP frag-needed", async () => {
  // No tun.mtu: the server picks its device's MTU - 60, here 1400 - 60 = 1340.
  await withRouterLab({ mtu: "auto" }, async (lab) => {
    await startServer(lab);
    const log = await Deno.readTextFile(lab.path("server.log"));
    assertStringIncludes(log, "TUN MTU 1340, automatic");
    assertStringIncludes(log, "1400 - 60 = 1340");

    const r = await diagJson(lab);
    figures("a", r);
    assertEquals(r.code, 0, JSON.stringify(r.report.verdicts));
    assertEquals(r.report.status, "healthy");
    assertEquals(r.report.path.mtu, BOTTLENECK);
    assertEquals(r.report.path.largestPayload, BOTTLENECK - 28);
    assertEquals(r.report.path.icmpReportedMtu, BOTTLENECK);
    assertEquals(r.report.path.icmpSeen, true);
    assertEquals(r.report.path.blackHole, false);
    assertEquals(r.report.path.deviceMtu, 1500);
    assertEquals(r.report.tun.server, 1340);
    assertEquals(r.report.recommendation.innerMtu, 1340);
    assertEquals(r.report.recommendation.serverTunMtuFits, true);
    // Exactly 1400: the size above it was refused, not just unconfirmed.
    assert(r.report.path.steps.some((s) => s.result === "too_big" && s.pmtu === BOTTLENECK));

    // The human report says the same in words; a second run is not fooled by the PMTU the
    // kernel cached from the first.
    const h = await diag(lab);
    console.log(h.text.split("\n").map((l) => `    | ${l}`).join("\n"));
    assertEquals(h.code, 0);
    assertStringIncludes(h.text, "Path MTU to the server: 1400 bytes");
    assertStringIncludes(h.text, `ICMP "fragmentation needed" came back`);
    assertStringIncludes(h.text, "1400 - 60 = 1340");
    assertStringIncludes(h.text, "each size tried up to 3 times");
  });
});

rootTest(
  "diag mtu (b): with ICMP dropped on the router, finds 1400 and names the black hole",
  async () => {
    await withRouterLab({ mtu: "auto" }, async (lab) => {
      await startServer(lab);
      await lab.topo.exec("router", ["nft", "-f", "-"], { stdin: DROP_ICMP });
      const r = await diagJson(lab);
      figures("b", r);
      assertEquals(r.code, 1, "a black hole is a problem");
      assertEquals(r.report.path.mtu, BOTTLENECK);
      assertEquals(r.report.path.blackHole, true);
      assertEquals(r.report.path.icmpReportedMtu, null);
      assertEquals(r.report.path.icmpSeen, false);
      assertEquals(r.report.path.smallestVanished, BOTTLENECK + 1);
      assertEquals(r.report.verdicts.length, 1, JSON.stringify(r.report.verdicts));
      assertStringIncludes(r.report.verdicts[0]!, "PMTU black hole");
      assertStringIncludes(r.report.verdicts[0]!, "no ICMP");
    });
  },
);

rootTest("diag mtu (c): with 5% random loss on the router still finds 1400", async () => {
  await withRouterLab({ mtu: "auto" }, async (lab) => {
    await startServer(lab);
    // Both directions through the router lose 5%: probes, answers and ICMP errors alike.
    await addLoss(lab.topo, "router", lab.topo.iface("router", "client"), 5);
    await addLoss(lab.topo, "router", lab.topo.iface("router", "server"), 5);
    let retried = 0;
    for (let i = 1; i <= 4; i++) {
      const r = await diagJson(lab);
      figures(`c${i}`, r);
      assertEquals(r.report.path.mtu, BOTTLENECK, `run ${i}`);
      assertEquals(r.report.path.blackHole, false, `run ${i}`);
      assertEquals(r.code, 0, `run ${i}: ${JSON.stringify(r.report.verdicts)}`);
      retried += r.report.path.lostAndRetried;
    }
    // With the ICMP dropped as well, the search walks every size by acknowledgements alone:
    // many more probes, each exposed to the loss.
    await lab.topo.exec("router", ["nft", "-f", "-"], { stdin: DROP_ICMP });
    const r = await diagJson(lab);
    figures("c-blackhole", r);
    assertEquals(r.report.path.mtu, BOTTLENECK);
    assertEquals(r.report.path.blackHole, true);
    retried += r.report.path.lostAndRetried;
    console.log(`  [c] probes lost and retried over all runs: ${retried}`);
  });
});

rootTest(
  "diag mtu (windows, fake winsock): finds 1400 with the ICMP on recv or only via IP_MTU; a black hole",
  async () => {
    // XVPN_WINTUN_DLL: the Windows diagnosis (WinsockPmtuSocket) over the fake's Winsock.
    const dll = await buildFakeWintun();
    const win = { XVPN_WINTUN_DLL: dll };
    const hidden = { ...win, FAKE_WINSOCK_HIDE_ICMP: "1" };
    const flush = (lab: Lab) => lab.topo.exec("client", ["ip", "route", "flush", "cache"]);
    await withRouterLab({ mtu: "auto" }, async (lab) => {
      await startServer(lab);
      // The ICMP is not reported on the socket (as Windows may not): only the drop of IP_MTU
      // tells; then reported on recv; then hidden again with the PMTU cached from before.
      for (const [name, env] of [["hidden", hidden], ["recv", win], ["cached", hidden]] as const) {
        if (name === "hidden") await flush(lab);
        const r = await diagJson(lab, env);
        figures(`win-${name}`, r);
        assertEquals(r.code, 0, `${name}: ${JSON.stringify(r.report.verdicts)}`);
        assertEquals(r.report.path.mtu, BOTTLENECK, name);
        assertEquals(r.report.path.icmpReportedMtu, BOTTLENECK, name);
        assertEquals(r.report.path.icmpSeen, true, name);
        assertEquals(r.report.path.blackHole, false, name);
      }
      // A black hole: ICMP dropped on the router, nothing cached.
      await lab.topo.exec("router", ["nft", "-f", "-"], { stdin: DROP_ICMP });
      await flush(lab);
      const r = await diagJson(lab, hidden);
      figures("win-blackhole", r);
      assertEquals(r.code, 1, "a black hole is a problem");
      assertEquals(r.report.path.mtu, BOTTLENECK);
      assertEquals(r.report.path.blackHole, true);
      assertEquals(r.report.path.icmpSeen, false);
      assertStringIncludes(r.report.verdicts[0]!, "PMTU black hole");
    });
  },
);

/**
 * A tiny UDP "game server" and its client, for the field-notes symptom: the server answers a
 * request "N" with an N-byte datagram sent with DF set (as many game servers and QUIC do), from a
 * {@link PmtuSocket} so that it can also tell whether an ICMP "fragmentation needed" came back.
 */
function udpGameScript(): string {
  const pmtu = new URL("../src/io/udp/pmtu.ts", import.meta.url).href;
  return `import { PmtuSocket } from "${pmtu}";
const [mode, ...a] = Deno.args;
const enc = new TextEncoder();
if (mode === "serve") {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: Number(a[0]) });
  for await (const [data, from] of sock) {
    const size = Number(new TextDecoder().decode(data));
    const to = from as Deno.NetAddr;
    const s = PmtuSocket.open(to.hostname, to.port, "do");
    const sendErrno = s.send(new Uint8Array(size));
    await new Promise((r) => setTimeout(r, 300));
    const rx = s.recv(new Uint8Array(64));
    console.log(JSON.stringify({ size, sendErrno, socketErrno: rx < 0 ? -rx : 0, pmtu: s.pathMtu() }));
    s.close();
  }
} else {
  const [host, port, size, tries] = a;
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
  let got = null;
  for (let i = 0; i < Number(tries) && got === null; i++) {
    await sock.send(enc.encode(size), { transport: "udp", hostname: host, port: Number(port) });
    let timer;
    const timeout = new Promise((r) => (timer = setTimeout(() => r(null), 1000)));
    const r = await Promise.race([sock.receive(), timeout]);
    clearTimeout(timer);
    if (r) got = r[0].length;
  }
  console.log(JSON.stringify({ size: Number(size), got }));
  Deno.exit(0);
}
`;
}

rootTest(
  "diag mtu (d): client TUN 1500 vs server TUN 1460: exit 1, and large replies vanish",
  async () => {
    await withRouterLab({ mtu: 1460 }, async (lab) => {
      await lab.up();
      // The field-notes mismatch: something set the client's TUN back to 1500.
      await lab.topo.exec("client", ["ip", "link", "set", "xvpn0", "mtu", "1500"]);

      const r = await diagJson(lab);
      figures("d", r);
      assertEquals(r.code, 1);
      assertEquals(r.report.tun.client?.mtu, 1500);
      assertEquals(r.report.tun.server, 1460);
      assertEquals(r.report.tun.equal, false);
      const mismatch = r.report.verdicts.find((v) => v.startsWith("client TUN MTU 1500"));
      assert(mismatch, JSON.stringify(r.report.verdicts));
      assertStringIncludes(mismatch, "server TUN MTU 1460");
      assertStringIncludes(mismatch, "1461-1500 bytes from the internet to you");
      // And the server's 1460 does not fit the 1400-byte path either.
      assert(r.report.verdicts.some((v) => v.startsWith("server TUN MTU 1460 exceeds")));
      assertEquals(r.report.tunnel?.target, LAB.serverTunnel);
      for (const c of r.report.tunnel!.checks) {
        console.log(
          `  [d] ping ${LAB.serverTunnel} ${c.packet} bytes df=${c.df}: ${c.received}/${c.sent}`,
        );
      }
      const text = (await diag(lab)).text;
      console.log(text.split("\n").map((l) => `    | ${l}`).join("\n"));

      // The symptom. A game server on the game host answers with DF set; 1452-byte answers are
      // 1480-byte packets: they fit the client's TUN (1500) but not the server's (1460).
      const script = lab.path("udp_game.ts");
      await Deno.writeTextFile(script, udpGameScript());
      const denoArgs = [Deno.execPath(), "run", "-A", "--quiet", "--unstable-net", script];
      const game = lab.topo.spawn("game", [...denoArgs, "serve", "7777"], { stdout: "piped" });
      const gameOut = new Response(game.stdout).text();
      await new Promise((res) => setTimeout(res, 1500)); // let it start listening
      const ask = async (size: number) => {
        const out = await lab.topo.exec(
          "client",
          [...denoArgs, "ask", LAB.game, "7777", String(size), "3"],
          { timeoutMs: 30_000 },
        );
        return JSON.parse(out.stdout.trim().split("\n").pop()!) as { size: number; got: number };
      };
      const small = await ask(100);
      const large = await ask(1452);
      // The same size once the client's TUN is fixed: still too big for the server's 1460, which
      // is why a mismatch is the bug and not the large packet: with equal MTUs the client's
      // stack (TCP MSS, PMTU) never asks for replies larger than its own TUN.
      await lab.topo.exec("client", ["ip", "link", "set", "xvpn0", "mtu", "1460"]);
      const fitting = await ask(1432);
      game.kill("SIGTERM");
      await game.status;
      const serverSide = (await gameOut).trim().split("\n").filter((l) => l.startsWith("{"))
        .map((l) =>
          JSON.parse(l) as { size: number; sendErrno: number; socketErrno: number; pmtu: number }
        );
      console.log(
        `  [d] UDP answers: small ${JSON.stringify(small)}, large ${JSON.stringify(large)}, ` +
          `1432 after the fix ${JSON.stringify(fitting)}`,
      );
      console.log(`  [d] game server side: ${JSON.stringify(serverSide)}`);
      assertEquals(small.got, 100, "small answers pass");
      assertEquals(large.got, null, "1480-byte answers never arrive");
      assertEquals(fitting.got, 1432, "answers that fit the server's 1460 pass");
      // The server's kernel answered the first large one with ICMP "fragmentation needed, mtu
      // 1460" (EMSGSIZE on the game server's socket); then its kernel refused the retries.
      const firstLarge = serverSide.find((s) => s.size === 1452);
      assert(firstLarge, "the game server saw the large request");
      assertEquals(firstLarge.socketErrno, 90, "EMSGSIZE: ICMP fragmentation needed came back");
      assertEquals(firstLarge.pmtu, 1460, "the ICMP named the server's TUN MTU");
      assert(serverSide.filter((s) => s.size === 1452).slice(1).every((s) => s.sendErrno === 90));

      // ping -s 1450 from the client: the request fits both TUNs' paths the other way, and the
      // game host's echo reply carries no DF, so the server fragments it into its 1460 TUN and it
      // arrives. Recorded, not asserted: it shows why ping alone did not find the field bug.
      const p = await lab.topo.exec("client", [
        "ping",
        "-n",
        "-c",
        "3",
        "-i",
        "0.2",
        "-W",
        "2",
        "-s",
        "1450",
        LAB.game,
      ], {
        allowFailure: true,
      });
      console.log(
        `  [d] ping -s 1450 client -> game: ${/\d+ received/.exec(p.stdout)?.[0] ?? p.stdout}`,
      );
    });
  },
);

rootTest("diag mtu (e): exit 2 when nothing can be measured", async () => {
  await withRouterLab({ mtu: "auto" }, async (lab) => {
    await startServer(lab);
    const key = lab.path("client.key");
    await Deno.writeTextFile(key, encodeKey(lab.clientKey) + "\n");
    const run = (serverKey: Uint8Array) =>
      lab.topo.exec("client", [
        ...selfCommand(),
        ...["diag", "mtu", "--json", "--server", `${lab.serverUnderlay}:${LAB.port}`],
        ...["--server-public-key", encodeKey(serverKey), "--private-key-file", key],
      ], { allowFailure: true, timeoutMs: 30_000 });
    // Flags instead of a config work like the config.
    const good = await run(publicKeyOf(lab.serverKey));
    assertEquals(good.code, 0, good.stdout + good.stderr);
    assertEquals((JSON.parse(good.stdout) as MtuReport).path.mtu, BOTTLENECK);
    // A wrong server key: the server stays silent to strangers, so the handshake times out.
    const wrong = await run(publicKeyOf(generatePrivateKey()));
    console.log(`  [e] wrong key: exit ${wrong.code}: ${wrong.stderr.trim()}`);
    assertEquals(wrong.code, 2);
    assertEquals(JSON.parse(wrong.stdout).status, "unmeasured");
    assertStringIncludes(wrong.stderr, "no answer to the diagnostic handshake");
    // No server at all: ICMP port unreachable, at once.
    await Lab.stop(lab.server);
    const gone = await run(publicKeyOf(lab.serverKey));
    console.log(`  [e] no server: exit ${gone.code}: ${gone.stderr.trim()}`);
    assertEquals(gone.code, 2);
    assertStringIncludes(gone.stderr, "nothing listens on UDP");
  });
});
