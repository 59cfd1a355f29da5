/**
 * A dual-channel lab: client and server namespaces joined by two separate links (think Wi-Fi
 * and 4G), a game host behind the server, and real `xvpn serve` / `xvpn connect` processes.
 *
 *            ┌─ to-server  10.201.1.1 ══ 10.201.1.2 to-client  ─┐
 *   client ──┤                                                  ├── server 10.200.0.1 (lo) ── game
 *            └─ to-server2 10.201.4.1 ══ 10.201.4.2 to-client2 ─┘      10.201.2.1 ── 10.201.2.2
 *
 * The server listens on 10.200.0.1, an address on its loopback that the client reaches over
 * either link (metric 1 via the first, 2 via the second), so that which link a datagram takes
 * is decided by the client's sockets, not by the addresses.
 *
 * @module
 */
import { encodeKey, generatePrivateKey, publicKeyOf } from "../../src/core/keys.ts";
import { Topology } from "../../src/demo/topology.ts";
import type { Impairment } from "../lab/impair.ts";
import { selfCommand } from "../../src/demo/lab.ts";
import { Lab } from "../../src/demo/lab.ts";
import { addLoss } from "../lab/impair.ts";

/** Fixed addresses of the dual-channel lab. */
export const MLAB = {
  pool: "10.77.0.0/24",
  clientTunnel: "10.77.0.2",
  serverTunnel: "10.77.0.1",
  link1: "10.201.1.0/24",
  link2: "10.201.4.0/24",
  gameNet: "10.201.2.0/24",
  game: "10.201.2.2",
  server: "10.200.0.1",
  port: 51820,
} as const;

/** A running dual-channel lab. */
export class MultiLab {
  readonly serverKey = generatePrivateKey();
  readonly clientKey = generatePrivateKey();
  server: Deno.ChildProcess | undefined;
  client: Deno.ChildProcess | undefined;
  /** Loss rules in place (removed by {@link clearLoss}). */
  readonly #loss: Impairment[] = [];
  #runs = 0;

  private constructor(readonly topo: Topology, readonly dir: string) {}

  /** Builds the namespaces, both links, addresses and routes. */
  static async create(): Promise<MultiLab> {
    const topo = await Topology.create({
      hosts: ["client", "server", "game"],
      links: [
        { a: "client", b: "server", subnet: MLAB.link1 },
        { a: "client", b: "server", subnet: MLAB.link2 },
        { a: "server", b: "game", subnet: MLAB.gameNet },
      ],
      forwarding: ["server"],
      routes: [{ host: "game", to: MLAB.pool, via: "server" }],
    });
    const dir = await Deno.makeTempDir({ prefix: "xvpn-mlab-" });
    topo.onDestroy(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
    const lab = new MultiLab(topo, dir);
    try {
      const [l1, l2] = [topo.links[0]!, topo.links[1]!];
      await topo.exec("server", ["ip", "addr", "add", `${MLAB.server}/32`, "dev", "lo"]);
      for (const [l, metric] of [[l1, "1"], [l2, "2"]] as const) {
        await topo.exec("client", [
          ...["ip", "route", "add", MLAB.server, "via", l.addrB, "dev", l.ifaceA],
          ...["metric", metric],
        ]);
      }
      // Replies from 10.200.0.1 arrive on the second link too, whose reverse route is the
      // first: loose reverse-path filtering, as a multihomed host needs.
      for (const host of ["client", "server"]) {
        await topo.exec(host, ["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=2"]);
      }
    } catch (err) {
      await topo.destroy();
      throw err;
    }
    return lab;
  }

  /** The client's interface on link 1 or 2. */
  clientIface(link: 1 | 2): string {
    return this.topo.links[link - 1]!.ifaceA;
  }

  /** The server's interface on link 1 or 2. */
  serverIface(link: 1 | 2): string {
    return this.topo.links[link - 1]!.ifaceB;
  }

  /** The client's address on link 1 or 2. */
  clientAddr(link: 1 | 2): string {
    return this.topo.links[link - 1]!.addrA;
  }

  /**
   * Source routing for `source:` paths: datagrams from the client's address on link N take
   * link N (`ip rule from <addr> table 10N`), as a multihomed host sets it up.
   */
  async routeBySource(): Promise<void> {
    for (const link of [1, 2] as const) {
      const l = this.topo.links[link - 1]!;
      const table = String(100 + link);
      await this.topo.exec("client", [
        ...["ip", "route", "add", MLAB.server, "via", l.addrB, "dev", l.ifaceA],
        ...["table", table],
      ]);
      await this.topo.exec("client", ["ip", "rule", "add", "from", l.addrA, "table", table]);
    }
  }

  /** Path of a file in the lab directory. */
  path(name: string): string {
    return `${this.dir}/${name}`;
  }

  /** Writes server.yaml and starts `xvpn serve`; waits for its tunnel address. */
  async startServer(dataPath = "auto"): Promise<void> {
    await Deno.writeTextFile(
      this.path("server.yaml"),
      [
        `listen: "${MLAB.server}:${MLAB.port}"`,
        `private_key: "${encodeKey(this.serverKey)}"`,
        `tun: { name: xvpn0, mtu: 1420 }`,
        `pool: ${MLAB.pool}`,
        `routes: [${MLAB.gameNet}]`,
        `keepalive: 2s`,
        `session_timeout: 10s`,
        `clients:`,
        `  - name: demo-client`,
        `    public_key: "${encodeKey(publicKeyOf(this.clientKey))}"`,
        `log: { level: info, file: ${this.path("server.log")} }`,
        `data_path: ${dataPath}`,
      ].join("\n"),
    );
    this.server = this.topo.spawn(
      "server",
      [...selfCommand(), "serve", "--config", this.path("server.yaml")],
      { logFile: this.path("server.out") },
    );
    await this.#waitFor("server", ["ip", "-j", "addr", "show", "dev", "xvpn0"], MLAB.serverTunnel);
  }

  /**
   * Starts `xvpn connect` with `extra` config lines (`paths`, `multipath`, `data_path`) and waits
   * until the game host is routed through the tunnel. Each run logs to `client-<n>.log`.
   */
  async startClient(extra: string[]): Promise<string> {
    const n = ++this.#runs;
    const log = this.path(`client-${n}.log`);
    const config = this.path(`client-${n}.yaml`);
    await Deno.writeTextFile(
      config,
      [
        `server: "${MLAB.server}:${MLAB.port}"`,
        `server_public_key: "${encodeKey(publicKeyOf(this.serverKey))}"`,
        `private_key: "${encodeKey(this.clientKey)}"`,
        `tun: { name: xvpn0 }`,
        `dns: false`,
        `log: { level: info, file: ${log} }`,
        ...extra,
      ].join("\n"),
    );
    this.client = this.topo.spawn(
      "client",
      [...selfCommand(), "connect", "--config", config],
      { logFile: this.path(`client-${n}.out`) },
    );
    await this.#waitFor("client", ["ip", "route", "get", MLAB.game], "dev xvpn0");
    return log;
  }

  /** Stops the client (SIGTERM) and waits until its TUN is gone. */
  async stopClient(): Promise<void> {
    await Lab.stop(this.client);
    this.client = undefined;
  }

  /** `percent` loss on both links' chosen ones, both directions (nftables on each ingress). */
  async addLoss(links: (1 | 2)[], percent: number): Promise<void> {
    for (const l of links) {
      this.#loss.push(await addLoss(this.topo, "client", this.clientIface(l), percent));
      this.#loss.push(await addLoss(this.topo, "server", this.serverIface(l), percent));
    }
  }

  /** Removes every loss rule. */
  async clearLoss(): Promise<void> {
    for (const l of this.#loss.splice(0)) await l.remove();
  }

  async #waitFor(host: string, argv: string[], want: string, timeoutMs = 20_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const r = await this.topo.exec(host, argv, { allowFailure: true });
      if (r.code === 0 && r.stdout.includes(want)) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(`${host}: "${argv.join(" ")}" never showed ${want}\n${await this.logs()}`);
  }

  /** The last lines of every xvpn output file, for failure messages. */
  async logs(lines = 30): Promise<string> {
    const out: string[] = [];
    for await (const e of Deno.readDir(this.dir)) {
      if (!e.name.endsWith(".out") && !e.name.endsWith(".log")) continue;
      const text = await Deno.readTextFile(this.path(e.name)).catch(() => "");
      out.push(`--- ${e.name} ---\n${text.split("\n").slice(-lines).join("\n")}`);
    }
    return out.join("\n");
  }

  /** Stops xvpn and removes the namespaces and the lab directory. */
  async destroy(): Promise<void> {
    await Lab.stop(this.client).catch(() => {});
    await Lab.stop(this.server).catch(() => {});
    await this.topo.destroy();
  }
}
