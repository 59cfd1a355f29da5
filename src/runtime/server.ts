/**
 * The server runtime: opens the TUN, configures its address and MTU (and NAT), starts a data
 * path (fast Worker or portable), logs what the core reports, and on SIGINT/SIGTERM tells the
 * clients, stops, and removes everything it created.
 *
 * @module
 */
import type { ServerConfig } from "../config/mod.ts";
import { ServerCore, type ServerEvent } from "../core/server.ts";
import { formatCidr, formatIPv4 } from "../core/ip.ts";
import { formatEndpoint } from "../core/result.ts";
import { createAead } from "../crypto/aead.ts";
import type { CommandRunner } from "../io/command.ts";
import { openTun } from "../io/tun/open.ts";
import { DenoUdpSocket } from "../io/udp/socket.ts";
import { RouteApplier } from "../io/route/applier.ts";
import { Nat } from "../io/nat/nat.ts";
import { logger } from "../log.ts";
import { aborted, Cleanup } from "./signals.ts";
import { formatDrops } from "./stats.ts";
import { type CoreEvent, ServerAdapter } from "./engine.ts";
import { type Engine, startPortable } from "./portable.ts";
import { startFast } from "./dataplane/host.ts";
import { useFastPath } from "./choose.ts";
import { serverAddress } from "../config/server.ts";

const log = logger("server");

/** Runs the server until `signal` aborts. Throws (after cleaning up) if setup fails. */
export async function runServer(
  cfg: ServerConfig,
  deps: { runner: CommandRunner; signal: AbortSignal },
): Promise<void> {
  const cleanup = new Cleanup();
  try {
    const tun = openTun(cfg.tun.name);
    cleanup.add(`close TUN ${tun.name}`, () => tun.close());
    const link = new RouteApplier(deps.runner);
    const address = serverAddress(cfg.pool);
    await link.up({
      ifname: tun.name,
      address: { addr: address, prefix: cfg.pool.prefix },
      mtu: cfg.tun.mtu,
      routes: [],
    });
    cleanup.add(`remove address of ${tun.name}`, () => link.down());
    if (cfg.nat) {
      const nat = new Nat(deps.runner, tun.name);
      await nat.enable(cfg.pool, cfg.natInterface);
      cleanup.add("remove NAT rules", () => nat.disable());
    }
    const onEvents = (events: CoreEvent[]) =>
      events.forEach((e) => logServerEvent(e as ServerEvent));
    const params = {
      privateKey: cfg.privateKey,
      clients: cfg.clients,
      pool: cfg.pool,
      mtu: cfg.tun.mtu,
      routes: cfg.routes,
      dns: cfg.dns,
      keepaliveMs: cfg.keepaliveMs,
      sessionTimeoutMs: cfg.sessionTimeoutMs,
      mssClamp: cfg.mssClamp,
    };
    const bind = { hostname: cfg.listen.host, port: cfg.listen.port };
    let engine: Engine;
    if (useFastPath(cfg.dataPath)) {
      engine = await startFast({
        role: "server",
        tunFd: tun.fd,
        tunName: tun.name,
        bind,
        ...params,
      }, onEvents);
    } else {
      const aead = createAead("auto");
      const udp = new DenoUdpSocket(bind.hostname, bind.port);
      const portable = startPortable(
        new ServerAdapter(new ServerCore({ ...params, aead })),
        tun,
        udp,
        onEvents,
      );
      engine = {
        ...portable,
        description: `${portable.description}, AEAD ${aead.name}, UDP ${formatEndpoint(udp.local)}`,
      };
    }
    log.info(
      "Listening on {listen}, TUN {tun} {address} mtu {mtu}, pool {pool}, {clients} clients allowed{nat}; data path {path}",
      {
        listen: `${cfg.listen.host}:${cfg.listen.port}`,
        tun: tun.name,
        address: `${formatIPv4(address)}/${cfg.pool.prefix}`,
        mtu: cfg.tun.mtu,
        pool: formatCidr(cfg.pool),
        clients: cfg.clients.length,
        nat: cfg.nat ? ", NAT on" : "",
        path: engine.description,
      },
    );
    await Promise.race([aborted(deps.signal), engine.ended]);
    log.info("Shutting down");
    const drops = formatDrops(await engine.stop());
    if (drops) log.info("Dropped datagrams by reason: {drops}", { drops });
  } finally {
    const errors = await cleanup.run();
    for (const e of errors) log.error(e.message);
    if (errors.length === 0) log.info("Removed the TUN device and everything xvpn set up");
  }
}

function logServerEvent(e: ServerEvent): void {
  switch (e.type) {
    case "session_up":
      log.info(
        e.rekey
          ? "Rekeyed {name} ({address}) at {endpoint}"
          : "Session up: {name} ({address}) at {endpoint}, connection id {id}",
        {
          name: e.name,
          address: formatIPv4(e.address),
          endpoint: formatEndpoint(e.endpoint),
          id: e.connId.toString(16).padStart(8, "0"),
        },
      );
      break;
    case "roamed":
      log.info("{name} moved from {from} to {to}", {
        name: e.name,
        from: formatEndpoint(e.from),
        to: formatEndpoint(e.to),
      });
      break;
    case "session_expired":
      log.info("Session of {name} ({address}) expired after {idle} s without traffic", {
        name: e.name,
        address: formatIPv4(e.address),
        idle: Math.round(e.idleMs / 1000),
      });
      break;
    case "session_closed":
      log.info("Session of {name} ({address}) closed: {reason}", {
        name: e.name,
        address: formatIPv4(e.address),
        reason: e.reason,
      });
      break;
    case "pool_exhausted":
      log.warning("Refused {name}: {message}", { name: e.name, message: e.message });
      break;
  }
}
