/**
 * The client runtime: opens the TUN, starts a data path (fast Worker or portable) that runs the
 * handshake and keepalives, applies what the server pushes (address, MTU, routes, DNS), and on
 * SIGINT/SIGTERM says goodbye and removes every address and route it added and restores DNS.
 *
 * @module
 */
import type { ClientConfig } from "../config/mod.ts";
import type { ClientEvent, ClientParams, ClientStatus } from "../core/client.ts";
import type { FollowAddress } from "../core/follow.ts";
import type { GameProfile } from "../config/profile.ts";
import type { NodeSpec } from "../config/nodes.ts";
import { NodeWatch, startNode } from "./nodes.ts";
import { cachedStatus, serveStatus, statusDoc } from "./status.ts";
import { LearnedRoutes } from "./learned_routes.ts";
import type { Engine } from "./portable.ts";
import type { SessionConfig } from "../core/control.ts";
import { type Cidr, formatCidr, formatIPv4, parseIPv4 } from "../lib/ip.ts";
import { type Cidr6, formatCidr6, formatIPv6, parseIPv6 } from "../lib/ip6.ts";
import { type Endpoint, formatEndpoint } from "../lib/endpoint.ts";
import type { CommandRunner } from "../io/command.ts";
import { openTun, usesWintun } from "../io/tun/open.ts";
import { RouteApplier } from "../io/route/applier.ts";
import { DnsNotApplied } from "../io/dns/applier.ts";
import { type SystemDns, systemDns } from "../io/dns/platform.ts";
import { checkElevated } from "../io/state/elevation.ts";
import { dnsHostRoutes } from "../io/dns/routes.ts";
import type { LinkState } from "../io/route/state.ts";
import { logger } from "../log.ts";
import { resolveHost } from "../io/resolve.ts";
import { aborted, Cleanup } from "./signals.ts";
import { formatDrops, formatScheduler } from "./stats.ts";
import type { CoreEvent } from "./engine.ts";
import { startDataPath } from "./datapath.ts";
import { CLIENT_SCHED } from "./dataplane/loop.ts";
import { useFastPath } from "./choose.ts";
import { TUNNEL_OVERHEAD6_BYTES, TUNNEL_OVERHEAD_BYTES } from "../core/mtu.ts";
import { fastPathSockets, logPathsEvent, openPortablePathSocket } from "./multipath.ts";
import { type PathToServer, watchPathToServer } from "./netwatch.ts";
import { claimTun } from "./state.ts";
import { localNetwork } from "../io/route/local.ts";
import { carryLan } from "./lan.ts";
import type { LocalNetwork } from "../core/policy.ts";

const log = logger("client");

/** Why the client stopped. */
export type ClientExit = { code: 0 } | { code: 1; reason: string };

/** Runs the client until `signal` aborts or the server refuses us for good. */
export async function runClient(
  cfg: ClientConfig,
  deps: {
    runner: CommandRunner;
    signal: AbortSignal;
    /** Game profiles in force: their CIDRs are routed, their domains followed. */
    profiles?: GameProfile[];
    /** Start on this node of `servers:` (`--node`). */
    node?: string;
  },
): Promise<ClientExit> {
  const cleanup = new Cleanup();
  let exit: ClientExit = { code: 0 };
  let dns: SystemDns = systemDns({ runner: deps.runner });
  try {
    // Windows: every change below needs an elevated process; say so before touching anything.
    if (Deno.build.os === "windows") await checkElevated(deps.runner);
    // Before anything else: one client per TUN name (a second one must not recover the first
    // one's DNS from under it), and what a killed run left put back (its host route to the
    // server, which would make this run's `ip route add` fail).
    const claim = await claimTun(cfg.tun.name, deps.runner, log);
    cleanup.add(`release the lock of ${cfg.tun.name}`, () => claim.lock?.release());
    // Windows keeps an NRPT rule in the registry: its undo goes into the crash journal.
    dns = systemDns({
      runner: deps.runner,
      ...(claim.journal ? { journal: { journal: claim.journal, key: "dns", what: "DNS" } } : {}),
    });
    // Then, even before resolving the server's name: an earlier run that died may have left
    // resolv.conf pointing at a tunnel that no longer exists.
    await recoverDns(dns, cfg.tun.name);
    const profiles = deps.profiles ?? [];
    const follow = [...new Set(profiles.flatMap((p) => p.domains))];
    if (profiles.length) {
      // A profile's ranges are routed as the config's own routes are (trusted: its sources too).
      cfg = {
        ...cfg,
        routes: dedupe([...cfg.routes, ...profiles.flatMap((p) => p.cidrs)]),
        routes6: dedupe6([...cfg.routes6, ...profiles.flatMap((p) => p.cidrs6)]),
      };
      log.info("Profiles {names}: {n} ranges routed, {d} domains followed", {
        names: profiles.map((p) => p.name).join(", "),
        n: profiles.reduce((a, p) => a + p.cidrs.length + p.cidrs6.length, 0),
        d: follow.length,
      });
    }
    // Every node's address, looked up once now, while DNS works outside the tunnel (pushed DNS
    // may go through it, and a move happens when the tunnel is dead). A name that does not
    // resolve now is tried again when it is needed.
    const nodes: NodeSpec[] = [];
    for (const n of cfg.nodes) {
      const ip = await resolveHost(n.server.host).catch((err) => {
        if (cfg.nodes.length > 1) {
          log.warning("Node {name}: {err}", { name: n.name, err: err.message });
        }
        return undefined;
      });
      nodes.push(ip ? { ...n, server: { host: ip, port: n.server.port } } : n);
    }
    const hostOf = (n: NodeSpec) => cfg.nodes.find((c) => c.name === n.name)!.server.host;
    let node = await startNode(nodes, cfg.privateKey, log, deps.node);
    let server: Endpoint = {
      hostname: await resolveHost(node.server.host),
      port: node.server.port,
    };
    // The other nodes stay reachable outside a full tunnel (node choice measures them there).
    // IPv4 only: around an IPv6 server, or for IPv6 nodes, they are measured through the tunnel.
    const bypass = [...new Set(nodes.flatMap((n) => parseIPv4(n.server.host) ?? []))];
    // What this host's own network looks like, before the tunnel exists (for the push policy,
    // and for whether IPv6 must be blocked around a full tunnel).
    const local = await localNetwork(deps.runner, server.hostname, cfg.tun.name);
    if (cfg.lan || cfg.lan6) {
      // A LAN behind us (lan:): forwarding on until exit, journaled (runtime/lan.ts).
      const undo = await carryLan(cfg, { runner: deps.runner, journal: claim.journal }, local, log);
      cleanup.add("restore forwarding", undo);
    }
    let reconnect: () => Promise<void> = () => Promise.resolve();
    let routeFollowed: (id: number, a: FollowAddress[]) => Promise<void> = () => Promise.resolve();
    // Moving to another node: a request (dead node, a clearly better one, `xvpn control node`).
    let moveTo: ((m: { to: NodeSpec; why: string }) => void) | undefined;
    let moves = 0;
    const requestMove = (to: NodeSpec, why: string) => moveTo?.({ to, why });
    // A node that refuses us for good (its pool is full): another one, if any answers.
    let refusedMove: Promise<{ to: NodeSpec; why: string } | undefined> | undefined;
    // The engine in use (replaced on a move); read by the closures below when they run.
    let engine: Engine | undefined;
    // Built before the first engine: its events (a handshake done) must find it.
    const watch = new NodeWatch({
      nodes,
      privateKey: cfg.privateKey,
      mode: cfg.nodeSwitch,
      log,
      current: () => node,
      figures: async () => {
        if (!engine) return undefined;
        const st = (await engine.status()).core as ClientStatus;
        const p = st.paths.find((x) => x.active) ?? st.paths[0];
        return p && { rtt: p, up: st.state === "connected" };
      },
      move: requestMove,
    });
    cleanup.add("stop watching the nodes", () => watch.stop());
    // The fast path writes coalesced TCP segments (GSO) to the TUN: that needs IFF_VNET_HDR.
    // A Wintun adapter (Windows, or the fake under the test hook) takes plain packets: its
    // data path is the Windows Worker, or the portable one.
    const wintun = usesWintun();
    const fast = !wintun && useFastPath(cfg.dataPath);
    // TSO reads need one socket per TUN read; with several paths the reads stay plain.
    const tun = openTun(cfg.tun.name, { vnetHdr: fast, offload: fast && !cfg.paths?.length });
    cleanup.add(`close TUN ${tun.name}`, () => tun.close());
    const learned = new LearnedRoutes(deps.runner, tun.name, log, new Set(bypass));
    const link = new RouteApplier(
      deps.runner,
      Deno.build.os,
      claim.journal && { journal: claim.journal, key: "routes", what: `routes of ${cfg.tun.name}` },
    );
    let applied: LinkState | undefined;
    cleanup.add("remove addresses and routes", () => applied && link.down());
    // Runs before the routes go (cleanup is last-in first-out): resolvectl needs the link.
    cleanup.add("restore DNS", async () => {
      const done = await dns.restore();
      if (done) log.info("DNS: {done}", { done });
    });
    let dnsApplied: string | undefined; // the servers in place, as text

    let fail: (reason: string) => void = () => {};
    const failed = new Promise<void>((res) => {
      fail = (reason) => {
        exit = { code: 1, reason };
        res();
      };
    });

    // Config changes are applied one at a time, in order.
    let applying: Promise<void> = Promise.resolve();
    const apply = (c: SessionConfig) => {
      applying = applying.then(async () => {
        // An IPv6 server: IPv4 routes cannot catch the tunnel's own datagrams.
        const endpointIp = parseIPv4(server.hostname);
        const routes = dedupe([...c.routes, ...cfg.routes]);
        if (cfg.dns && cfg.dnsRoute) {
          // dns_route: /32s for the pushed DNS servers, removed with the other routes.
          const r = dnsHostRoutes(c.dns, { address: c.address, routes, endpoint: endpointIp });
          for (const s of r.skipped) log.info("DNS: no host route: {why}", { why: s.why });
          routes.push(...r.routes);
        }
        // IPv6: carried when the server has an IPv6 pool; blocked (never leaked) around a full
        // IPv4 tunnel when it has none and this host has IPv6 of its own.
        const routes6 = c.address6 ? dedupe6([...c.routes6, ...cfg.routes6]) : [];
        const full4 = routes.some((r) => r.prefix === 0);
        const full6 = routes6.some((r) => r.prefix === 0);
        const blockIPv6 = full4 && !full6 && local.hasIPv6 === true;
        const ip6 = endpointIp === undefined ? parseIPv6(server.hostname) : undefined;
        const want: LinkState = {
          ifname: tun.name,
          ...(bypass.length > 1 ? { bypass } : {}),
          address: c.address,
          mtu: c.mtu,
          // A Wintun adapter's queue is its 8 MiB ring, not a Linux queue length (on Windows
          // there is none to set; on Linux it is the fake's stand-in, left as the ring sets it).
          ...(wintun ? { txqueuelen: 0 } : {}),
          routes,
          ...(endpointIp !== undefined
            ? { endpoint: { ip: endpointIp } }
            : { serverOverIPv6: true }),
          ...(c.address6 ? { address6: c.address6, routes6 } : {}),
          ...(blockIPv6 ? { blockIPv6 } : {}),
          ...(ip6 ? { endpoint6: { ip6 } } : {}),
        };
        if (!applied || JSON.stringify(applied) !== JSON.stringify(want)) {
          if (applied) await link.down();
          applied = undefined;
          dnsApplied = undefined; // the link is rebuilt: its DNS settings are applied again
          await link.up(want);
          applied = want;
          await learned.reapply(); // the rebuilt link lost the routes learnt from DNS
          log.info("Tunnel up: {address} mtu {mtu}, routes {routes}, DNS offered {dns}{six}", {
            address: `${formatIPv4(c.address.addr)}/${c.address.prefix}` +
              (c.address6 ? ` ${formatIPv6(c.address6.addr)}/${c.address6.prefix}` : ""),
            mtu: c.mtu,
            routes: [...want.routes.map(formatCidr), ...routes6.map(formatCidr6)].join(", ") ||
              "none",
            dns: [...c.dns.map(formatIPv4), ...c.dns6.map(formatIPv6)].join(", ") || "none",
            six: blockIPv6 ? "; IPv6 blocked (the server carries none), so none leaks" : "",
          });
        }
        // DNS only once the link is up, so that the servers are reachable when first asked.
        const servers = cfg.dns ? c.dns : [];
        if (c.dns.length > 0 && !cfg.dns && dnsApplied === undefined) {
          log.info("DNS: left as it is (dns: false in {file})", { file: cfg.file });
          dnsApplied = "";
        }
        if (servers.length > 0 && dnsApplied !== servers.join()) {
          dnsApplied = servers.join();
          await applyDns(dns, servers, tun.name, c.dns6);
        } else if (servers.length === 0 && dns.active) {
          dnsApplied = undefined;
          const done = await dns.restore();
          if (done) log.info("DNS: the server pushes no DNS servers any more; {done}", { done });
        }
      }).catch((err) => {
        log.error("Cannot apply the pushed config: {err}", { err: (err as Error).message });
        fail((err as Error).message);
      });
    };
    const onEvents = (events: CoreEvent[]) => {
      for (const e of events as ClientEvent[]) {
        switch (e.type) {
          case "handshake_sent":
            if (e.attempt > 1) {
              log.info("Handshake attempt {n} to {server}", {
                n: e.attempt,
                server: formatEndpoint(server),
              });
            }
            break;
          case "connected":
            watch.connected();
            log.info(
              e.rekey
                ? "Rekeyed with {server}"
                : "Handshake complete with {server}, connection id {id}",
              { server: formatEndpoint(server), id: e.connId.toString(16).padStart(8, "0") },
            );
            break;
          case "config":
            for (const r of e.refused) log.warning("Refused from the server's push: {r}", { r });
            apply(e.config);
            break;
          case "path_dead":
            log.warning(
              "No reply from the server for {ms} ms ({reason}): new socket, new handshake",
              {
                ms: Math.round(e.silentMs),
                reason: e.reason,
              },
            );
            watch.pathDead();
            void reconnect();
            break;
          case "follow":
            void routeFollowed(e.id, e.addresses);
            break;
          case "unfollow":
            void learned.remove(e.addresses);
            break;
          case "paths":
            logPathsEvent(log, e, cfg.paths ?? [], cfg.multipath ?? "failover");
            break;
          case "disconnected":
            if (e.final && nodes.length > 1) {
              // Another node may have room: measure the others now (the loop waits for it).
              log.error("Node {name} refused us: {reason}", { name: node.name, reason: e.reason });
              refusedMove = watch.elsewhere(`${node.name} refused us: ${e.reason}`);
            } else if (e.final) {
              log.error("The server refused us: {reason}", { reason: e.reason });
              fail(`the server refused us: ${e.reason}`);
            } else {
              log.warning("Disconnected: {reason}; reconnecting", { reason: e.reason });
              watch.pathDead(); // a node that went away: left if it stays away
            }
            break;
        }
      }
    };

    const paths = cfg.paths;
    const startEngine = () =>
      startDataPath({
        role: "client",
        fast,
        tun,
        server,
        params: {
          ...clientParams(cfg, local, server.hostname.includes(":")),
          serverPublicKey: node.publicKey,
          ...(follow.length ? { follow } : {}),
        },
        sched: {
          ...CLIENT_SCHED,
          priority: cfg.priority,
          dscp: cfg.gameDscp,
          shaping: cfg.shaping?.upBps
            ? { rateBps: cfg.shaping.upBps, overheadBytes: cfg.shaping.overheadBytes }
            : undefined,
        },
        windowsWorker: wintun && cfg.dataPath !== "portable",
        fastPaths: paths && fastPathSockets(paths),
        portablePaths: paths && {
          count: paths.length,
          open: (path) => openPortablePathSocket(paths, path),
        },
      }, onEvents);
    engine = await startEngine();
    // Stopped by the loop below; this is for a failure on the way there (stop() is idempotent).
    cleanup.add("stop the data path", () => engine?.stop());
    log.info("Connecting to {node} at {server} with TUN {tun}; data path {path}", {
      node: node.name,
      server: formatEndpoint(server),
      tun: tun.name,
      path: engine.description,
    });
    // Domain following: the answered addresses are routed into the tunnel before the answer is
    // released to the TUN (so the game's first packet to them takes the tunnel). The routes go
    // with the TUN device at exit, so no cleanup step removes them one by one.
    routeFollowed = async (id, addresses) => {
      const e = engine; // a move meanwhile: the hold died with the old engine
      const failed = await learned.add(addresses, applied?.address6 !== undefined);
      if (e === engine) e?.release?.(id, failed);
    };
    // A dead path: a fresh socket (new source port, fresh NAT mapping and route lookup), and
    // a server given by name is resolved again, in case it moved (WireGuard resolves once).
    let reconnecting = false;
    reconnect = async () => {
      if (reconnecting) return;
      reconnecting = true;
      try {
        const e = engine;
        await e?.rebind?.();
        const host = hostOf(node);
        if (parseIPv4(host) === undefined && !host.includes(":")) {
          const ip = await resolveHost(host).catch(() => undefined);
          if (ip && ip !== server.hostname && e === engine) {
            log.info("{host} now resolves to {ip}", { host, ip });
            server = { hostname: ip, port: node.server.port };
            e?.setServer?.(server);
          }
        }
      } finally {
        reconnecting = false;
      }
    };
    // `xvpn status` and `xvpn control`.
    const startedWallMs = Date.now();
    const closeStatus = await serveStatus(
      tun.name,
      cachedStatus(async () =>
        statusDoc({
          role: "client",
          tun: tun.name,
          startedWallMs,
          dataPath: engine!.description,
          node: {
            name: node.name,
            ...(node.region ? { region: node.region } : {}),
            endpoint: formatEndpoint(server),
          },
          moves,
          ...(profiles.length
            ? { profiles: profiles.map((p) => p.name), learnedRoutes: learned.size }
            : {}),
        }, await engine!.status())
      ),
      (c) => {
        if (c.cmd === "reconnect") {
          void reconnect();
          return Promise.resolve("reconnecting: a fresh socket and a new handshake");
        }
        const to = nodes.find((n) => n.name === c.name);
        if (!to) {
          return Promise.reject(
            new Error(
              `no node ${c.name}; the config has ${cfg.nodes.map((n) => n.name).join(", ")}`,
            ),
          );
        }
        if (to.name === node.name) return Promise.resolve(`already on ${to.name}`);
        if (!moveTo) return Promise.reject(new Error("a move is under way; ask again shortly"));
        requestMove(to, "asked by xvpn control");
        return Promise.resolve(`moving to ${to.name}`);
      },
    ).catch((err) => {
      // Status is a convenience: the tunnel runs without it.
      log.warning("No status socket: {err}", { err: (err as Error).message });
      return () => {};
    });
    cleanup.add("close the status sockets", closeStatus);
    for (;;) {
      // A changed way to the server (new address, new default route): probe at once on a fresh
      // socket instead of waiting for the path to look dead.
      const unwatch = await watchPathToServer(deps.runner, server.hostname, (before, after) => {
        log.info("The way to the server changed ({before} -> {after}): probing on a new socket", {
          before: describePath(before),
          after: describePath(after),
        });
        void engine?.rebind?.();
      });
      const moved = new Promise<{ to: NodeSpec; why: string }>((res) => (moveTo = res));
      let ended = false;
      let outcome = await Promise.race([
        aborted(deps.signal).then(() => undefined),
        engine.ended.then(() => (ended = true, undefined)),
        failed.then(() => undefined),
        moved,
      ]);
      moveTo = undefined;
      if (!outcome && refusedMove && !deps.signal.aborted) {
        outcome = await refusedMove; // the node refused us: another one, or the end
        refusedMove = undefined;
        if (!outcome) exit = { code: 1, reason: "every node refused us or is unreachable" };
      }
      // Where the move goes, before anything stops: a name that does not resolve (DNS through a
      // dead tunnel) keeps the client where it is.
      let to: Endpoint | undefined;
      if (outcome) {
        const target = outcome.to;
        to = await resolveHost(target.server.host).then(
          (hostname) => ({ hostname, port: target.server.port }),
          (err) => {
            log.warning("Cannot move to node {to}: {err}; staying on {node}", {
              to: target.name,
              err: (err as Error).message,
              node: node.name,
            });
            return undefined;
          },
        );
        if (!to && !ended) {
          await unwatch();
          continue;
        }
      }
      await unwatch();
      const report = await engine.stop();
      const drops = formatDrops(report.drops);
      if (report.scheduler) {
        log.info("Scheduler: {s}", { s: formatScheduler(report.scheduler) });
      }
      await applying;
      if (drops) log.info("Dropped datagrams by reason: {drops}", { drops });
      if (!outcome || !to) break;
      // The move: the game server will see another address; say why, with the figures.
      log.warning("Moving from node {from} to {to}: {why}", {
        from: node.name,
        to: outcome.to.name,
        why: outcome.why,
      });
      await learned.flush();
      node = outcome.to;
      server = to;
      moves++;
      watch.reset();
      engine = await startEngine();
      log.info("Connecting to {node} at {server}", {
        node: node.name,
        server: formatEndpoint(server),
      });
    }
  } finally {
    const errors = await cleanup.run();
    for (const e of errors) log.error(e.message);
    if (errors.length === 0) log.info("Removed the TUN device, its address and routes");
  }
  return exit;
}

/** The client core's settings from its config and what it knows of its own network. */
export function clientParams(
  cfg: ClientConfig,
  local?: LocalNetwork,
  serverOverIPv6 = false,
): ClientParams {
  const p: ClientParams = {
    privateKey: cfg.privateKey,
    serverPublicKey: cfg.serverPublicKey,
    keepaliveMs: cfg.keepaliveMs,
    mssClamp: cfg.mssClamp,
    paths: cfg.paths?.length,
    multipath: cfg.multipath,
    routes: cfg.routes,
    routes6: cfg.routes6,
    local,
    policy: {
      fullTunnel: cfg.fullTunnel,
      localRoutes: cfg.localRoutes,
      acceptRoutes: cfg.acceptRoutes,
      acceptRoutes6: cfg.acceptRoutes6,
      overhead: serverOverIPv6 ? TUNNEL_OVERHEAD6_BYTES : TUNNEL_OVERHEAD_BYTES,
    },
  };
  // The server's queue for our traffic down: our link's rate, and our priority classes.
  if (cfg.shaping?.downBps || cfg.priority.length > 0) {
    p.queue = {
      downBps: cfg.shaping?.downBps ?? 0,
      overheadBytes: cfg.shaping?.overheadBytes ?? 0,
      priority: cfg.priority,
    };
  }
  return p;
}

function describePath(p: PathToServer | undefined): string {
  if (!p) return "no route";
  return [p.dev && `dev ${p.dev}`, p.prefsrc && `src ${p.prefsrc}`, p.gateway && `via ${p.gateway}`]
    .filter(Boolean).join(" ");
}

/** Puts back DNS settings a crashed earlier run left behind; failures are logged, not fatal. */
async function recoverDns(dns: SystemDns, ifname: string): Promise<void> {
  try {
    const done = await dns.recoverStale(ifname);
    if (done) log.warning("DNS: {done}", { done });
  } catch (err) {
    log.error("DNS: cannot recover an earlier run's resolv.conf: {err}", {
      err: (err as Error).message,
    });
  }
}

/**
 * Points DNS at the pushed servers. A failure is logged but keeps the tunnel up: the game
 * traffic still flows, only names resolve as they did before the tunnel.
 */
async function applyDns(
  dns: SystemDns,
  servers: number[],
  ifname: string,
  servers6: Uint8Array[] = [],
): Promise<void> {
  try {
    const done = await dns.apply(servers, ifname, servers6);
    for (const note of dns.notes.splice(0)) log.warning("DNS: {note}", { note });
    log.info("DNS: {done}", { done });
  } catch (err) {
    for (const note of dns.notes.splice(0)) log.warning("DNS: {note}", { note });
    if (err instanceof DnsNotApplied) {
      log.warning("DNS: not changed: {why}", { why: err.message });
    } else {
      log.error("DNS: cannot point DNS at the tunnel: {err}", { err: (err as Error).message });
    }
  }
}

function dedupe6(routes: Cidr6[]): Cidr6[] {
  const seen = new Set<string>();
  return routes.filter((r) => !seen.has(formatCidr6(r)) && (seen.add(formatCidr6(r)), true));
}

function dedupe(routes: Cidr[]): Cidr[] {
  const seen = new Set<string>();
  return routes.filter((r) => {
    const k = formatCidr(r);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}
