/**
 * A lab of several nodes: one client namespace linked to N node namespaces, each running its own
 * `xvpn serve` (own key, own pool 10.78.<i>.0/24) behind the test relay, which adds that node's
 * delay both ways. The client config lists them all under `servers:`.
 *
 *   client ── 10.211.<i>.1 ══ 10.211.<i>.2 ── node<i>: relay :51900 (delay) -> serve :51820
 *
 * @module
 */
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/core/keys.ts";
import { Topology } from "../../src/demo/topology.ts";
import { selfCommand } from "../../src/demo/lab.ts";
import { type RelayProcess, spawnRelay } from "../lab/relay.ts";

/** Where node `i` (1-based) is. */
export const nodeAddr = (i: number) => `10.211.${i}.2`;
/** Node `i`'s tunnel address (the server's own, in its pool). */
export const nodeTunnel = (i: number) => `10.78.${i}.1`;
/** The relay's port on every node (what the client's `servers:` names). */
export const RELAY_PORT = 51900;

/** A running lab of nodes. */
export class NodeLab {
  readonly clientKey = generatePrivateKey();
  readonly nodeKeys: Uint8Array[];
  readonly servers: (Deno.ChildProcess | undefined)[] = [];
  readonly relays: RelayProcess[] = [];
  client: Deno.ChildProcess | undefined;

  private constructor(
    readonly topo: Topology,
    readonly dir: string,
    readonly names: string[],
    readonly delaysMs: number[],
  ) {
    this.nodeKeys = names.map(() => generatePrivateKey());
  }

  /** Builds the namespaces and starts every node (serve + relay with `delaysMs[i]` one way). */
  static async create(delaysMs: number[]): Promise<NodeLab> {
    const names = delaysMs.map((_, i) => `n${i + 1}`);
    const topo = await Topology.create({
      hosts: ["client", ...names],
      links: names.map((n, i) => ({ a: "client", b: n, subnet: `10.211.${i + 1}.0/24` })),
    });
    const dir = await Deno.makeTempDir({ prefix: "xvpn-nodes-" });
    topo.onDestroy(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
    const lab = new NodeLab(topo, dir, names, delaysMs);
    try {
      for (let i = 0; i < names.length; i++) await lab.startNode(i);
    } catch (err) {
      await topo.destroy();
      throw err;
    }
    return lab;
  }

  path(name: string): string {
    return `${this.dir}/${name}`;
  }

  /** Starts node `i` (0-based): its serve, then its relay. */
  async startNode(i: number): Promise<void> {
    const name = this.names[i]!;
    await Deno.writeTextFile(
      this.path(`${name}.yaml`),
      [
        `listen: "127.0.0.1:51820"`,
        `private_key: "${encodeKey(this.nodeKeys[i]!)}"`,
        `tun: { name: xvpn0, mtu: 1420 }`,
        `pool: 10.78.${i + 1}.0/24`,
        `routes: []`,
        `keepalive: 2s`,
        `session_timeout: 10s`,
        `clients:`,
        `  - name: player`,
        `    public_key: "${encodeKey(publicKeyOf(this.clientKey))}"`,
        `log: { level: info, file: ${this.path(`${name}.log`)} }`,
      ].join("\n"),
      { mode: 0o600 },
    );
    this.servers[i] = this.topo.spawn(name, [
      ...selfCommand(),
      "serve",
      "--config",
      this.path(`${name}.yaml`),
    ], { logFile: this.path(`${name}.out`) });
    await this.waitLog(`${name}.log`, "Listening on");
    const d = this.delaysMs[i]!;
    this.relays[i] = await spawnRelay(this.topo, name, {
      listen: { hostname: "0.0.0.0", port: RELAY_PORT },
      target: { hostname: "127.0.0.1", port: 51820 },
      upstream: { delayMs: d },
      downstream: { delayMs: d },
    });
  }

  /** Kills node `i`'s serve with SIGKILL (a node that dies: nothing says goodbye). */
  async killNode(i: number): Promise<void> {
    const s = this.servers[i];
    s?.kill("SIGKILL");
    await s?.status;
  }

  /** The client config: every node under `servers:`, plus `extra` lines. */
  async writeClient(extra: string[] = []): Promise<string> {
    const file = this.path("client.yaml");
    await Deno.writeTextFile(
      file,
      [
        `servers:`,
        ...this.names.flatMap((n, i) => [
          `  - name: ${n}`,
          `    region: lab-${this.delaysMs[i]}ms`,
          `    endpoint: "${nodeAddr(i + 1)}:${RELAY_PORT}"`,
          `    public_key: "${encodeKey(publicKeyOf(this.nodeKeys[i]!))}"`,
        ]),
        `private_key: "${encodeKey(this.clientKey)}"`,
        `tun: { name: xvpn0 }`,
        `dns: false`,
        `log: { level: info, file: ${this.path("client.log")} }`,
        ...extra,
      ].join("\n"),
      { mode: 0o600 },
    );
    return file;
  }

  /** Starts `xvpn connect` with `args` after the config. */
  startClient(args: string[] = []): Deno.ChildProcess {
    this.client = this.topo.spawn("client", [
      ...selfCommand(),
      "connect",
      "--config",
      this.path("client.yaml"),
      ...args,
    ], { logFile: this.path("client.out") });
    return this.client;
  }

  /** Waits until `file` in the lab directory contains `text` (`nth` times). */
  async waitLog(file: string, text: string, timeoutMs = 30_000, nth = 1): Promise<string> {
    const deadline = performance.now() + timeoutMs;
    let log = "";
    while (performance.now() < deadline) {
      log = await Deno.readTextFile(this.path(file)).catch(() => "");
      if (log.split(text).length > nth) return log;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${file} did not say "${text}" within ${timeoutMs} ms:\n${log.slice(-3000)}`);
  }

  /**
   * Stops everything and removes the namespaces, and with them what a killed node left under
   * /run/xvpn (its lock, journal and sockets, named by its namespace: no start will come to
   * recover them once the namespace is gone).
   */
  async destroy(): Promise<void> {
    const tags: string[] = [];
    try {
      for (const host of ["client", ...this.names]) {
        const r = await this.topo.exec(host, ["readlink", "/proc/self/ns/net"], {
          allowFailure: true,
        });
        const m = /^net:\[(\d+)\]$/.exec(r.stdout.trim());
        if (m) tags.push(`.net${m[1]}.`);
      }
      for (const p of [this.client, ...this.servers]) {
        try {
          p?.kill("SIGTERM");
        } catch { /* gone */ }
        await p?.status.catch(() => {});
      }
      for (const r of this.relays) await r.stop().catch(() => {});
    } finally {
      await this.topo.destroy();
      const files = (() => {
        try {
          return [...Deno.readDirSync("/run/xvpn")].map((e) => e.name);
        } catch {
          return [];
        }
      })();
      for (const name of files) {
        if (tags.some((t) => name.includes(t))) {
          await Deno.remove(`/run/xvpn/${name}`).catch(() => {});
        }
      }
    }
  }
}
