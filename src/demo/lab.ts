/**
 * A lab: three network namespaces (client, server, and a "game" host behind the server) with a
 * real `xvpn serve` and `xvpn connect` running as separate processes. Used by `xvpn demo`, the
 * root integration tests and the tunnel benchmark, so all three exercise the same real CLI.
 *
 *   client 10.201.1.1 ──veth── 10.201.1.2 server 10.201.2.1 ──veth── 10.201.2.2 game
 *            xvpn0 10.77.0.2 ═══ tunnel ═══ xvpn0 10.77.0.1
 *
 * @module
 */
import { encodeKey, generatePrivateKey, publicKeyOf } from "../core/keys.ts";
import { Topology } from "./topology.ts";
import { selfCommand } from "../cli/self.ts";

/** The argv prefix that runs this xvpn (for tests and benchmarks that start it). */
export { selfCommand };

/** Lab addresses, fixed so that logs and docs read the same every time. */
export const LAB = {
  pool: "10.77.0.0/24",
  serverTunnel: "10.77.0.1",
  clientTunnel: "10.77.0.2",
  underlay: "10.201.1.0/24",
  serverUnderlay: "10.201.1.2",
  clientUnderlay: "10.201.1.1",
  gameNet: "10.201.2.0/24",
  game: "10.201.2.2",
  otherNet: "10.201.3.0/24",
  other: "10.201.3.2",
  /** With {@link LabOptions.router}: the router-server link, and the server's address on it. */
  routerNet: "10.201.4.0/24",
  serverBehindRouter: "10.201.4.2",
  /** With {@link LabOptions.withConsole}: the client's LAN, its address on it, and the console. */
  consoleNet: "10.201.5.0/24",
  clientLan: "10.201.5.1",
  console: "10.201.5.2",
  port: 51820,
} as const;

/** Options of a lab. */
export interface LabOptions {
  /**
   * TUN MTU of the server (pushed to the client). Default 1420; `"auto"` leaves `tun.mtu` out of
   * server.yaml, so the server picks its underlay device's MTU - 60.
   */
  mtu?: number | "auto";
  /** MTU of the client-server underlay link. Default 1500. */
  underlayMtu?: number;
  /** Server NATs the pool instead of the game host routing back. */
  nat?: boolean;
  /** Log level of both xvpn processes. */
  logLevel?: "debug" | "info";
  /** Extra lines appended to server.yaml. */
  serverExtra?: string;
  /** Extra lines appended to client.yaml. */
  clientExtra?: string;
  /** Also build an "other" host behind the server whose subnet is not pushed. */
  withOther?: boolean;
  /** Where the client sends (default: the server's underlay address); e.g. an impairment
   * relay in front of the server. */
  clientServer?: string;
  /** The server's `listen` (default: its underlay address and the lab port), e.g. `[::]:51820`. */
  listen?: string;
  /** Keep IPv6 on in the namespaces (default off: captures then see only the test). */
  ipv6?: boolean;
  /** `data_path` of both xvpn processes (default: auto). */
  dataPath?: "auto" | "fast" | "portable";
  /** DNS servers the server pushes (default: its own tunnel address, {@link LAB}.serverTunnel). */
  serverDns?: string[];
  /**
   * Gives the client namespace its own resolv.conf with this text: written to
   * `/etc/netns/<client-ns>/resolv.conf` (which `ip netns exec` bind-mounts over /etc/resolv.conf
   * for every process started in the namespace) and removed with the lab. Without it the client
   * sees the machine's resolv.conf, and xvpn refuses to change DNS from inside a namespace.
   */
  clientResolvConf?: string;
  /**
   * Puts a forwarding "router" host between client and server (client 10.201.1.1 - router -
   * 10.201.4.2 server): the client-router link has `underlayMtu`, the router-server link
   * `serverLinkMtu` (default 1500). For path-MTU tests, where the bottleneck must be a hop
   * that answers (or drops) ICMP "fragmentation needed" rather than a local device.
   */
  router?: { serverLinkMtu?: number };
  /**
   * Also build a "console" host on a LAN behind the client (client 10.201.5.1 - 10.201.5.2
   * console, MTU `consoleMtu`, default 1500): the console's default route is the client, and
   * the client forwards. Without {@link LabOptions.lan} the server only accepts inner packets
   * from the client's own tunnel address, so whoever uses this sets up the client's masquerade
   * into xvpn0 itself.
   */
  withConsole?: boolean;
  /**
   * With `withConsole`: the console's LAN is carried without NAT (`lan:` in the server's entry
   * for the client and in client.yaml; docs/lan.md).
   */
  lan?: boolean;
  /** More entries of server.yaml's `clients:` list, as YAML lines (`  - name: ...`). */
  moreClients?: string;
  /** MTU of the client-console LAN (default 1500). */
  consoleMtu?: number;
  /**
   * Server timers: `"fast"` (default) pushes a 2 s keepalive with a 10 s session timeout so
   * that expiry tests are quick; `"product"` leaves both out of server.yaml, so the product's
   * defaults (10 s, 60 s) apply, as a user's server would have them.
   */
  keepalive?: "fast" | "product";
  /** Extra environment variables of the `xvpn connect` process (e.g. a test hook). */
  clientEnv?: Record<string, string>;
}

/** A running lab. */
export class Lab {
  /** Temporary directory with keys, configs and logs. */
  readonly dir: string;
  readonly serverKey = generatePrivateKey();
  readonly clientKey = generatePrivateKey();
  server: Deno.ChildProcess | undefined;
  client: Deno.ChildProcess | undefined;

  private constructor(readonly topo: Topology, dir: string, readonly opts: LabOptions) {
    this.dir = dir;
  }

  /** Builds namespaces and links, writes keys and configs. Nothing xvpn runs yet. */
  static async create(opts: LabOptions = {}): Promise<Lab> {
    const r = opts.router;
    const hosts = ["client", ...(r ? ["router"] : []), "server", "game"]
      .concat(opts.withOther ? ["other"] : [])
      .concat(opts.withConsole ? ["console"] : []);
    const topo = await Topology.create({
      hosts,
      ipv6: opts.ipv6,
      links: [
        ...(r
          ? [
            { a: "client", b: "router", subnet: LAB.underlay, mtu: opts.underlayMtu ?? 1500 },
            { a: "router", b: "server", subnet: LAB.routerNet, mtu: r.serverLinkMtu ?? 1500 },
          ]
          : [
            { a: "client", b: "server", subnet: LAB.underlay, mtu: opts.underlayMtu ?? 1500 },
          ]),
        { a: "server", b: "game", subnet: LAB.gameNet },
        ...(opts.withOther ? [{ a: "server", b: "other", subnet: LAB.otherNet }] : []),
        ...(opts.withConsole
          ? [{ a: "client", b: "console", subnet: LAB.consoleNet, mtu: opts.consoleMtu ?? 1500 }]
          : []),
      ],
      forwarding: ["server", ...(r ? ["router"] : []), ...(opts.withConsole ? ["client"] : [])],
      routes: [
        ...(r
          ? [
            { host: "client", to: LAB.routerNet, via: "router" },
            { host: "server", to: LAB.underlay, via: "router" },
          ]
          : []),
        ...(opts.nat ? [] : [{ host: "game", to: LAB.pool, via: "server" }]),
        ...(opts.withOther && !opts.nat ? [{ host: "other", to: LAB.pool, via: "server" }] : []),
        ...(opts.withConsole ? [{ host: "console", to: "default", via: "client" }] : []),
      ],
    });
    const dir = await Deno.makeTempDir({ prefix: "xvpn-lab-" });
    const lab = new Lab(topo, dir, opts);
    topo.onDestroy(() => Deno.remove(dir, { recursive: true }).catch(() => {}));
    try {
      await lab.#writeConfigs();
      if (opts.clientResolvConf !== undefined) await lab.#writeResolvConf(opts.clientResolvConf);
    } catch (err) {
      await topo.destroy();
      throw err;
    }
    return lab;
  }

  /** The server's underlay address: on the client link, or behind the router. */
  get serverUnderlay(): string {
    return this.opts.router ? LAB.serverBehindRouter : LAB.serverUnderlay;
  }

  /** Path of a file in the lab directory. */
  path(name: string): string {
    return `${this.dir}/${name}`;
  }

  /** Where `ip netns exec` finds the client namespace's own resolv.conf. */
  get clientResolvConfPath(): string {
    return `/etc/netns/${this.topo.ns("client")}/resolv.conf`;
  }

  async #writeResolvConf(text: string): Promise<void> {
    const dir = `/etc/netns/${this.topo.ns("client")}`;
    // Registered before writing, so a failed write still removes the directory.
    this.topo.onDestroy(async () => {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      // /etc/netns did not exist before most labs; leave it only when someone else uses it.
      await Deno.remove("/etc/netns").catch(() => {});
    });
    await Deno.mkdir(dir, { recursive: true });
    await Deno.writeTextFile(`${dir}/resolv.conf`, text);
  }

  async #writeConfigs(): Promise<void> {
    const o = this.opts;
    const level = o.logLevel ?? "info";
    await Deno.writeTextFile(
      this.path("server.yaml"),
      [
        `listen: "${o.listen ?? `${this.serverUnderlay}:${LAB.port}`}"`,
        `private_key: "${encodeKey(this.serverKey)}"`,
        o.mtu === "auto" ? `tun: { name: xvpn0 }` : `tun: { name: xvpn0, mtu: ${o.mtu ?? 1420} }`,
        `pool: ${LAB.pool}`,
        `routes: [${LAB.gameNet}]`,
        `dns: [${(o.serverDns ?? [LAB.serverTunnel]).join(", ")}]`,
        o.keepalive === "product" ? "" : `keepalive: 2s\nsession_timeout: 10s`,
        `nat: ${o.nat ? "true" : "false"}`,
        `clients:`,
        `  - name: demo-client`,
        `    public_key: "${encodeKey(publicKeyOf(this.clientKey))}"`,
        o.lan ? `    lan: ${LAB.consoleNet}` : "",
        o.moreClients ?? "",
        `log: { level: ${level}, file: ${this.path("server.log")} }`,
        `data_path: ${o.dataPath ?? "auto"}`,
        o.serverExtra ?? "",
      ].join("\n"),
      { mode: 0o600 }, // it holds a private key (xvpn warns otherwise, as wg does)
    );
    await Deno.writeTextFile(
      this.path("client.yaml"),
      [
        `server: "${o.clientServer ?? `${this.serverUnderlay}:${LAB.port}`}"`,
        `server_public_key: "${encodeKey(publicKeyOf(this.serverKey))}"`,
        `private_key: "${encodeKey(this.clientKey)}"`,
        `tun: { name: xvpn0 }`,
        `log: { level: ${level}, file: ${this.path("client.log")} }`,
        `data_path: ${o.dataPath ?? "auto"}`,
        o.lan ? `lan: ${LAB.consoleNet}` : "",
        o.clientExtra ?? "",
      ].join("\n"),
      { mode: 0o600 },
    );
  }

  /** Starts `xvpn serve` in the server namespace. */
  startServer(): Deno.ChildProcess {
    this.server = this.topo.spawn("server", [
      ...selfCommand(),
      "serve",
      "--config",
      this.path("server.yaml"),
    ], {
      logFile: this.path("server.out"),
    });
    return this.server;
  }

  /** Starts `xvpn connect` in the client namespace. */
  startClient(config = "client.yaml"): Deno.ChildProcess {
    this.client = this.topo.spawn("client", [
      ...selfCommand(),
      "connect",
      "--config",
      this.path(config),
    ], {
      logFile: this.path("client.out"),
      env: this.opts.clientEnv,
    });
    return this.client;
  }

  /** Waits until `host` has `address` on xvpn0; throws with both logs after `timeoutMs`. */
  async waitAddress(host: string, address: string, timeoutMs = 20_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const r = await this.topo.exec(host, ["ip", "-j", "addr", "show", "dev", "xvpn0"], {
        allowFailure: true,
      });
      if (r.code === 0 && r.stdout.includes(`"${address}"`)) return;
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error(
      `xvpn0 in ${host} did not get ${address} within ${timeoutMs} ms\n${await this.logs()}`,
    );
  }

  /**
   * Waits until the server logs that it listens (its TUN address comes first; the data plane
   * then starts, and warms up, before the socket takes datagrams); `nth`: that many times, for
   * a server started again on the same log.
   */
  async waitListening(timeoutMs = 20_000, nth = 1): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const log = await Deno.readTextFile(this.path("server.log")).catch(() => "");
      if (log.split("Listening on").length > nth) return;
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error(`the server did not listen within ${timeoutMs} ms\n${await this.logs()}`);
  }

  /** Starts server and client and waits until the client's tunnel is configured. */
  async up(timeoutMs = 20_000): Promise<void> {
    this.startServer();
    await this.waitAddress("server", LAB.serverTunnel, timeoutMs);
    await this.waitListening(timeoutMs);
    this.startClient();
    await this.waitAddress("client", LAB.clientTunnel, timeoutMs);
    await this.waitRoute("client", LAB.game, timeoutMs);
  }

  /** Waits until `host` routes `dst` through xvpn0 (routes follow the address). */
  async waitRoute(host: string, dst: string, timeoutMs = 20_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      const r = await this.topo.exec(host, ["ip", "route", "get", dst], { allowFailure: true });
      if (r.code === 0 && r.stdout.includes("dev xvpn0")) return;
      await new Promise((res) => setTimeout(res, 50));
    }
    throw new Error(
      `${host} has no route to ${dst} through xvpn0 after ${timeoutMs} ms\n${await this.logs()}`,
    );
  }

  /** The last lines of both processes' output, for failure messages. */
  async logs(lines = 30): Promise<string> {
    const tail = async (f: string) => {
      try {
        return (await Deno.readTextFile(this.path(f))).split("\n").slice(-lines).join("\n");
      } catch {
        return "(none)";
      }
    };
    return `--- server output ---\n${await tail("server.out")}\n--- client output ---\n${await tail(
      "client.out",
    )}`;
  }

  /** Sends SIGTERM to a process and waits for it (SIGKILL after `graceMs`); returns its status. */
  static async stop(
    child: Deno.ChildProcess | undefined,
    graceMs = 10_000,
  ): Promise<Deno.CommandStatus | undefined> {
    if (!child) return undefined;
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killer = new Promise<void>((res) => {
      timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // gone
        }
        res();
      }, graceMs);
    });
    const status = await Promise.race([child.status, killer.then(() => child.status)]);
    clearTimeout(timer);
    return status;
  }

  /** Stops both xvpn processes (client first) and returns their exit statuses. */
  async stopAll(): Promise<{ client?: Deno.CommandStatus; server?: Deno.CommandStatus }> {
    const client = await Lab.stop(this.client);
    const server = await Lab.stop(this.server);
    this.client = this.server = undefined;
    return { client, server };
  }

  /** Stops xvpn and removes namespaces, veths and the lab directory. */
  async destroy(): Promise<void> {
    await this.stopAll().catch(() => {});
    await this.topo.destroy();
  }
}

/** Parses `ping` output into the per-packet RTTs (ms) and the loss summary. */
export function parsePing(out: string): { rtts: number[]; transmitted: number; received: number } {
  const rtts = [...out.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
  const m = /(\d+) packets transmitted, (\d+) received/.exec(out);
  return { rtts, transmitted: Number(m?.[1] ?? 0), received: Number(m?.[2] ?? 0) };
}
