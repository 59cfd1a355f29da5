/**
 * Helpers for the root integration tests: pings, TCP transfers and captures inside a lab.
 *
 * @module
 */
import { LAB, Lab, type LabOptions } from "../../src/demo/lab.ts";
import { parsePing, selfCommand } from "../../src/demo/lab.ts";

/** Pings `dst` (IPv4 or IPv6) from `host`; returns the parsed result. */
export async function ping(
  lab: Lab,
  host: string,
  dst: string,
  opts: { count?: number; size?: number; interval?: number; df?: boolean; pattern?: string } = {},
): Promise<ReturnType<typeof parsePing> & { out: string }> {
  const argv = [
    "ping",
    ...(dst.includes(":") ? ["-6"] : []),
    "-n",
    "-c",
    String(opts.count ?? 3),
    "-i",
    String(opts.interval ?? 0.2),
    "-W",
    "2",
  ];
  if (opts.size !== undefined) argv.push("-s", String(opts.size));
  if (opts.df) argv.push("-M", "do");
  if (opts.pattern !== undefined) argv.push("-p", opts.pattern);
  argv.push(dst);
  const r = await lab.topo.exec(host, argv, { allowFailure: true });
  return { ...parsePing(r.stdout), out: r.stdout + r.stderr };
}

/** Moves `bytes` over TCP from `from` to a sink on `to` (at `toAddr`); returns both ends' reports. */
export async function tcpTransfer(
  lab: Lab,
  from: string,
  to: string,
  toAddr: string,
  bytes: number,
  port = 5201,
): Promise<
  {
    sent: { bytes: number; sha256: string; seconds: number };
    got: { bytes: number; sha256: string };
  }
> {
  const sink = lab.topo.spawn(to, [...selfCommand(), "tcp-check", "sink", "--port", String(port)], {
    stdout: "piped",
  });
  const out = new Response(sink.stdout).text();
  for (let i = 0; i < 200; i++) {
    const r = await lab.topo.exec(to, ["ss", "-Hltn", `sport = :${port}`], { allowFailure: true });
    if (r.stdout.trim()) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  const src = await lab.topo.exec(from, [
    ...selfCommand(),
    "tcp-check",
    "source",
    "--to",
    `${toAddr}:${port}`,
    "--bytes",
    String(bytes),
    "--seed",
    String(1 + Math.floor(Math.random() * 1e6)),
  ], { timeoutMs: 120_000 });
  await sink.status;
  const last = (s: string) => JSON.parse(s.trim().split("\n").pop()!);
  return { sent: last(src.stdout), got: last(await out) };
}

/** Adds IPv6 address `cidr` to `host`'s interface towards `peer`, without DAD (usable at once). */
export async function addAddress6(lab: Lab, host: string, peer: string, cidr: string) {
  await lab.topo.exec(host, [
    "ip",
    "-6",
    "address",
    "add",
    cidr,
    "dev",
    lab.topo.iface(host, peer),
    "nodad",
  ]);
}

/** The link a capture watches by default: each lab host's link towards the tunnel. */
const TOWARDS: Record<string, string> = {
  client: "server",
  server: "client",
  game: "server",
  other: "server",
  console: "client",
};

/** The tcpdump lines (one per packet) captured on `host`'s link to `peer` (by default its link
 * towards the tunnel) during `fn`.
 * `fn` runs once tcpdump says it is listening (up to 20 s, else this fails with its stderr). */
export async function capture(
  lab: Lab,
  host: string,
  filter: string,
  fn: () => Promise<void>,
  peer = TOWARDS[host] ?? "client",
): Promise<string[]> {
  const iface = lab.topo.iface(host, peer);
  const argv = ["tcpdump", "-i", iface, "-n", "-l", "-q", filter];
  const cap = lab.topo.spawn(host, argv, { stdout: "piped", stderr: "piped" });
  const text = new Response(cap.stdout).text();
  // tcpdump prints "listening on <iface>, ..." to stderr once the capture is armed; the rest of
  // stderr is drained so that it never blocks on a full pipe.
  let errText = "";
  let onArmed!: () => void;
  const armed = new Promise<void>((r) => onArmed = r);
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of cap.stderr) {
      errText += decoder.decode(chunk, { stream: true });
      if (errText.includes("listening on")) onArmed();
    }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    armed.then(() => "armed" as const),
    drained.then(() => "exited" as const),
    new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), 20_000)),
  ]);
  clearTimeout(timer);
  try {
    if (outcome !== "armed") {
      throw new Error(
        `tcpdump on ${host} ${outcome === "exited" ? "exited" : "did not arm within 20 s"} ` +
          `(${argv.join(" ")}): ${errText.trim() || "no output"}`,
      );
    }
    await fn();
    await new Promise((r) => setTimeout(r, 500)); // let the last packets reach the capture
  } finally {
    try {
      cap.kill("SIGINT");
    } catch {
      // it exited already
    }
    await cap.status;
    await drained;
  }
  return (await text).split("\n").filter((l) => l.trim());
}

/** Runs `fn` with a fresh lab; on failure the error carries both processes' last log lines;
 * the lab (namespaces, processes, files) is removed in every case. */
export async function withLab(opts: LabOptions, fn: (lab: Lab) => Promise<void>): Promise<void> {
  const lab = await Lab.create(opts);
  try {
    await fn(lab);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${await lab.logs(40)}`, { cause: err });
  } finally {
    await lab.destroy();
  }
}

export { LAB, Lab };

/**
 * The tunnel carries real traffic both ways: pings client -> game (also 1300 bytes) and back,
 * then 20 MiB client -> game and 10 MiB game -> client over TCP with the SHA-256 of both ends
 * compared. Returns both transfers' rates (Mbit/s).
 */
export async function checkTunnelTraffic(lab: Lab): Promise<{ upMbps: number; downMbps: number }> {
  const up = await ping(lab, "client", LAB.game, { count: 5 });
  if (up.received !== 5) throw new Error(`client -> game: ${up.received}/5 replies\n${up.out}`);
  const down = await ping(lab, "game", LAB.clientTunnel, { count: 3 });
  if (down.received !== 3) throw new Error(`game -> client: ${down.received}/3\n${down.out}`);
  const big = await ping(lab, "client", LAB.game, { count: 3, size: 1300 });
  if (big.received !== 3) throw new Error(`ping -s 1300: ${big.received}/3\n${big.out}`);
  const bytes = 20 * 1024 * 1024;
  const t = await tcpTransfer(lab, "client", "game", LAB.game, bytes);
  if (t.got.bytes !== bytes || t.got.sha256 !== t.sent.sha256) {
    throw new Error(
      `client -> game: ${t.got.bytes} bytes arrived, SHA-256 ${t.got.sha256} vs ${t.sent.sha256}`,
    );
  }
  const back = await tcpTransfer(lab, "game", "client", LAB.clientTunnel, bytes / 2, 5202);
  if (back.got.bytes !== bytes / 2 || back.got.sha256 !== back.sent.sha256) {
    throw new Error(`game -> client: ${back.got.bytes} bytes arrived, SHA-256 mismatch or short`);
  }
  return {
    upMbps: bytes * 8 / t.sent.seconds / 1e6,
    downMbps: bytes / 2 * 8 / back.sent.seconds / 1e6,
  };
}
