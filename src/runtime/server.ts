/**
 * The server runtime: opens the TUN, configures its address and MTU (and NAT), starts a data
 * path (fast Worker or portable), logs what the core reports, and on SIGINT/SIGTERM tells the
 * clients, stops, and removes everything it created.
 *
 * @module
 */
import type { ServerConfig } from "../config/mod.ts";
import type { ServerEvent, ServerParams } from "../core/server.ts";
import { formatCidr, formatIPv4, networkOf } from "../lib/ip.ts";
import { formatCidr6, formatIPv6, hostIn6 } from "../lib/ip6.ts";
import { formatEndpoint } from "../lib/endpoint.ts";
import type { CommandRunner } from "../io/command.ts";
import { openTun } from "../io/tun/open.ts";
import { RouteApplier } from "../io/route/applier.ts";
import { SERVER_TUN_TXQUEUELEN } from "../io/route/linux.ts";
import { Nat } from "../io/nat/nat.ts";
import { logger } from "../log.ts";
import { aborted, Cleanup } from "./signals.ts";
import { formatDrops, formatScheduler } from "./stats.ts";
import type { CoreEvent } from "./engine.ts";
import { startDataPath } from "./datapath.ts";
import { cachedStatus, serveStatus, statusDoc, type StatusInfo } from "./status.ts";
import { useFastPath } from "./choose.ts";
import { DEFAULT_MTU, serverAddress } from "../config/server.ts";
import { autoTunMtu, TUNNEL_OVERHEAD6_BYTES, TUNNEL_OVERHEAD_BYTES } from "../core/mtu.ts";
import { listenDevice } from "../diag/links.ts";
import { claimTun } from "./state.ts";
import { serverLans } from "./lan.ts";

const log = logger("server");

/** Runs the server until `signal` aborts. Throws (after cleaning up) if setup fails. */
export async function runServer(
  cfg: ServerConfig,
  deps: { runner: CommandRunner; signal: AbortSignal },
): Promise<void> {
  const cleanup = new Cleanup();
  try {
    // First of all: one server per TUN name, and what a killed one left (its NAT table, the
    // ip_forward it turned on) put back before anything here reads or changes it.
    const claim = await claimTun(cfg.tun.name, deps.runner, log);
    cleanup.add(`release the lock of ${cfg.tun.name}`, () => claim.lock?.release());
    const mtu = await chooseMtu(cfg, deps.runner);
    const lans = await serverLans(cfg, deps.runner, log); // checked before anything changes
    // The fast path writes coalesced TCP segments (GSO) to the TUN: that needs IFF_VNET_HDR.
    const fast = useFastPath(cfg.dataPath);
    const tun = openTun(cfg.tun.name, { vnetHdr: fast, offload: fast });
    cleanup.add(`close TUN ${tun.name}`, () => tun.close());
    // The clients' LANs are routes on our TUN, journaled as a client's routes are.
    const journaled = lans.routes.length + lans.routes6.length > 0 && claim.journal;
    const link = new RouteApplier(
      deps.runner,
      Deno.build.os,
      journaled
        ? { journal: journaled, key: "routes", what: `LAN routes of ${tun.name}` }
        : undefined,
    );
    const address = serverAddress(cfg.pool);
    // The server's IPv6 address has its IPv4 address's host number, as every client's does.
    const address6 = cfg.pool6 && hostIn6(cfg.pool6, (address - networkOf(cfg.pool)) >>> 0);
    await link.up({
      ifname: tun.name,
      address: { addr: address, prefix: cfg.pool.prefix },
      mtu,
      txqueuelen: SERVER_TUN_TXQUEUELEN,
      routes: lans.routes,
      ...(address6 ? { address6: { addr: address6, prefix: cfg.pool6!.prefix } } : {}),
      ...(lans.routes6.length ? { routes6: lans.routes6 } : {}),
    });
    cleanup.add(`remove address of ${tun.name}`, () => link.down());
    if (cfg.nat) {
      const nat = new Nat(deps.runner, tun.name, claim.journal);
      // Registered first: disable() undoes only the families that were enabled, so an IPv6
      // NAT that fails still takes the IPv4 one down with it.
      cleanup.add("remove NAT rules", () => nat.disable());
      const filter = { tun: tun.name, inbound: cfg.inbound };
      await nat.enable(cfg.pool, cfg.natInterface, { ...filter, lans: lans.routes });
      if (cfg.pool6) {
        await nat.enable6(cfg.pool6, cfg.natInterface, { ...filter, lans: lans.routes6 });
      }
    }
    const onEvents = (events: CoreEvent[]) =>
      events.forEach((e) => logServerEvent(e as ServerEvent));
    const engine = await startDataPath({
      role: "server",
      fast,
      tun,
      bind: { hostname: cfg.listen.host, port: cfg.listen.port },
      params: serverParams(cfg, mtu),
      sched: {
        flows: SERVER_FLOWS_PER_CLIENT,
        limitPackets: SERVER_QUEUE_PER_CLIENT,
        priority: cfg.priority,
        dscp: cfg.gameDscp,
        upstream: false,
      },
    }, onEvents);
    // Stopped below; this is for a failure on the way there (stop() is idempotent).
    cleanup.add("stop the data path", () => engine.stop());
    log.info(
      "Listening on {listen}, TUN {tun} {address} mtu {mtu}, pool {pool}, {clients} clients allowed{nat}; data path {path}",
      {
        listen: `${cfg.listen.host}:${cfg.listen.port}`,
        tun: tun.name,
        address: `${formatIPv4(address)}/${cfg.pool.prefix}` +
          (address6 ? ` ${formatIPv6(address6)}/${cfg.pool6!.prefix}` : ""),
        mtu,
        pool: formatCidr(cfg.pool) + (cfg.pool6 ? ` ${formatCidr6(cfg.pool6)}` : ""),
        clients: cfg.clients.length,
        nat: cfg.nat ? ", NAT on" : "",
        path: engine.description,
      },
    );
    // `xvpn status` (and `xvpn control`, which a server answers with a refusal for now).
    const startedWallMs = Date.now();
    const info = { role: "server", tun: tun.name, startedWallMs, dataPath: engine.description };
    const closeStatus = await serveStatus(
      tun.name,
      cachedStatus(async () => statusDoc(info as StatusInfo, await engine.status())),
      (c) => Promise.reject(new Error(`a server takes no "${c.cmd}" command`)),
    ).catch((err) => {
      // Status is a convenience: the node runs without it.
      log.warning("No status socket: {err}", { err: (err as Error).message });
      return () => {};
    });
    cleanup.add("close the status sockets", closeStatus);
    await Promise.race([aborted(deps.signal), engine.ended]);
    log.info("Shutting down");
    const report = await engine.stop();
    const drops = formatDrops(report.drops);
    if (report.scheduler) {
      log.info("Scheduler: {s}", { s: formatScheduler(report.scheduler) });
    }
    if (drops) log.info("Dropped datagrams by reason: {drops}", { drops });
  } finally {
    const errors = await cleanup.run();
    for (const e of errors) log.error(e.message);
    if (errors.length === 0) log.info("Removed the TUN device and everything xvpn set up");
  }
}

/**
 * Flow queues per client on the server: a player's home rarely has more than a few dozen flows
 * at once, and the table is set-associative (8 ways), so two flows share a queue only when nine
 * land in one set. 64 keeps a client's queue state at ~9 KiB, made when its first packet comes
 * down: with 256, 1000 clients starting to play at once held the data thread ~90 ms
 * (bench/clients.ts), and 5000 active clients would need 180 MB of it.
 */
const SERVER_FLOWS_PER_CLIENT = 64;
/** Most packets one client's queue down may hold (the pool holds 4096 over all clients). */
const SERVER_QUEUE_PER_CLIENT = 1024;

/** The server core's settings from its config, with the TUN MTU in force. */
export function serverParams(cfg: ServerConfig, mtu: number): ServerParams {
  return {
    privateKey: cfg.privateKey,
    clients: cfg.clients,
    pool: cfg.pool,
    mtu,
    routes: cfg.routes,
    dns: cfg.dns,
    routes6: cfg.routes6,
    dns6: cfg.dns6,
    ...(cfg.pool6 ? { pool6: cfg.pool6 } : {}),
    keepaliveMs: cfg.keepaliveMs,
    sessionTimeoutMs: cfg.sessionTimeoutMs,
    mssClamp: cfg.mssClamp,
  };
}

/**
 * The TUN MTU: `tun.mtu` when set; otherwise the MTU of the underlay device the server listens
 * on (the default route's for a wildcard address) minus xvpn's overhead, the rule wg-quick
 * uses, so that full-size tunnel packets leave that device unfragmented. Logged with the
 * arithmetic, since clients inherit it.
 */
async function chooseMtu(cfg: ServerConfig, runner: CommandRunner): Promise<number> {
  if (cfg.tun.mtu !== undefined) return cfg.tun.mtu;
  const dev = await listenDevice(runner, cfg.listen.host).catch(() => undefined);
  if (!dev) {
    log.warning(
      "tun.mtu is not set and no underlay device was found for {listen}: TUN MTU {mtu}",
      { listen: cfg.listen.host, mtu: DEFAULT_MTU },
    );
    return DEFAULT_MTU;
  }
  const v6 = cfg.listen.host.includes(":");
  const auto = autoTunMtu(dev.mtu, v6);
  log.info(
    "TUN MTU {mtu}, automatic (tun.mtu not set): {dev}, {how}, has MTU {deviceMtu}; {arithmetic} ({ip} + UDP 8 + xvpn header 16 + tag 16 = {overhead})",
    {
      mtu: auto.mtu,
      dev: dev.dev,
      how: dev.how,
      deviceMtu: dev.mtu,
      arithmetic: auto.arithmetic,
      ip: v6 ? "IPv6 40, for IPv6 clients" : "IPv4 20",
      overhead: v6 ? TUNNEL_OVERHEAD6_BYTES : TUNNEL_OVERHEAD_BYTES,
    },
  );
  return auto.mtu;
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
    case "diag_session":
      log.info("Diagnostic session of {name} at {endpoint} (no address, answers MTU probes)", {
        name: e.name,
        endpoint: formatEndpoint(e.endpoint),
      });
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
        address: e.address === 0 ? "diagnostic" : formatIPv4(e.address),
        reason: e.reason,
      });
      break;
    case "pool_exhausted":
      log.warning("Refused {name}: {message}", { name: e.name, message: e.message });
      break;
  }
}
