/**
 * The server runtime: opens the TUN and the UDP socket, configures the link (and NAT), then
 * drives {@link ServerCore} with real I/O until SIGINT/SIGTERM, and removes everything it
 * created on the way out.
 *
 * Two loops share the core (JavaScript runs them on one thread, so the core needs no locks):
 *   - net loop: each `receive()` returns a buffer of its own; the decrypted packet goes to the
 *     TUN synchronously before the next receive, so nothing is queued on a shared buffer;
 *   - TUN loop: drains the non-blocking TUN fd with synchronous reads, sealing each packet into
 *     the loop's own output buffer and awaiting the send before that buffer is reused; when
 *     the fd runs dry it waits in one poll().
 * A one-second timer runs expiry and flushes control-path output.
 *
 * @module
 */
import type { ServerConfig } from "../config/mod.ts";
import { describeSession, ServerCore } from "../core/server.ts";
import { formatCidr, formatIPv4 } from "../core/ip.ts";
import { formatEndpoint, Verdict } from "../core/result.ts";
import { createAead } from "../crypto/aead.ts";
import { PacketBuf } from "../core/packet.ts";
import type { CommandRunner } from "../io/command.ts";
import { openTun } from "../io/tun/open.ts";
import type { TunDevice } from "../io/tun/device.ts";
import { DenoUdpSocket, type UdpSocket } from "../io/udp/socket.ts";
import { RouteApplier } from "../io/route/applier.ts";
import { Nat } from "../io/nat/nat.ts";
import { logger } from "../log.ts";
import { aborted, Cleanup } from "./signals.ts";
import { formatDrops } from "./stats.ts";

const log = logger("server");

/** Largest datagram or packet we handle (IPv4 maximum). */
const MAX_PACKET_BYTES = 65535;

/** Runs the server until `signal` aborts. Throws (after cleaning up) if setup fails. */
export async function runServer(
  cfg: ServerConfig,
  deps: { runner: CommandRunner; signal: AbortSignal },
): Promise<void> {
  const aead = createAead("auto");
  const core = new ServerCore({
    privateKey: cfg.privateKey,
    clients: cfg.clients,
    pool: cfg.pool,
    mtu: cfg.tun.mtu,
    routes: cfg.routes,
    dns: cfg.dns,
    keepaliveMs: cfg.keepaliveMs,
    sessionTimeoutMs: cfg.sessionTimeoutMs,
    aead,
  });
  const cleanup = new Cleanup();
  let tun: TunDevice | undefined;
  let udp: UdpSocket | undefined;
  try {
    tun = openTun(cfg.tun.name);
    const dev = tun;
    cleanup.add(`close TUN ${dev.name}`, () => dev.close());
    const link = new RouteApplier(deps.runner);
    await link.up({
      ifname: tun.name,
      address: { addr: core.serverAddress, prefix: cfg.pool.prefix },
      mtu: cfg.tun.mtu,
      routes: [],
    });
    cleanup.add(`remove address of ${dev.name}`, () => link.down());
    if (cfg.nat) {
      const nat = new Nat(deps.runner);
      await nat.enable(cfg.pool, cfg.natInterface);
      cleanup.add("remove NAT rules", () => nat.disable());
    }
    udp = new DenoUdpSocket(cfg.listen.host, cfg.listen.port);
    const sock = udp;
    cleanup.add("close UDP socket", () => sock.close());
    log.info(
      "Listening on {listen}, TUN {tun} {address} mtu {mtu}, pool {pool}, {clients} clients allowed, " +
        "AEAD {aead}{nat}",
      {
        listen: formatEndpoint(udp.local),
        tun: tun.name,
        address: `${formatIPv4(core.serverAddress)}/${cfg.pool.prefix}`,
        mtu: cfg.tun.mtu,
        pool: formatCidr(cfg.pool),
        clients: cfg.clients.length,
        aead: aead.name,
        nat: cfg.nat ? ", NAT on" : "",
      },
    );

    const flush = () => {
      for (const o of core.outbox.splice(0)) {
        sock.send(o.data, o.to).catch((err) =>
          log.debug("Send failed: {err}", { err: String(err) })
        );
      }
      for (const e of core.events.splice(0)) logServerEvent(e);
    };
    let running = true;
    const stop = aborted(deps.signal).then(async () => {
      // Tell every client first, on the same socket (so they see the server's own address).
      const n = [...core.sessions()].length;
      if (n) log.info("Shutting down: telling {n} clients", { n });
      core.shutdown();
      await Promise.allSettled(core.outbox.splice(0).map((o) => sock.send(o.data, o.to)));
      running = false;
      dev.wake();
      sock.close();
    });

    const netLoop = async () => {
      const out = new Uint8Array(MAX_PACKET_BYTES);
      while (running) {
        let d: Uint8Array, from: Deno.NetAddr;
        try {
          [d, from] = (await sock.receive()) as [Uint8Array, Deno.NetAddr];
        } catch (err) {
          if (!running) return;
          log.warning("UDP receive failed: {err}", { err: String(err) });
          continue;
        }
        const r = core.receive(performance.now(), new PacketBuf(d), from, out);
        if (r.verdict === Verdict.Tun && dev.write(out, r.length) < 0) core.drops.no_route++;
        if (core.outbox.length || core.events.length) flush();
      }
    };
    const tunLoop = async () => {
      const buf = new Uint8Array(MAX_PACKET_BYTES);
      const out = PacketBuf.alloc(MAX_PACKET_BYTES + 64);
      while (running) {
        const n = dev.read(buf);
        if (n === 0) {
          await dev.waitReadable(1000);
          continue;
        }
        const r = core.fromTun(performance.now(), buf, n, out);
        if (r.verdict === Verdict.Net) {
          try {
            await sock.send(out.bytes(), r.to!);
          } catch (err) {
            if (!running) return;
            log.debug("Send failed: {err}", { err: String(err) });
          }
        }
      }
    };
    const timer = setInterval(() => {
      core.tick(performance.now());
      flush();
    }, 1000);
    cleanup.add("stop timer", () => clearInterval(timer));
    const statsTimer = setInterval(() => {
      const drops = formatDrops(core.drops);
      if (drops) log.debug("Drops so far: {drops}", { drops });
    }, 60_000);
    cleanup.add("stop stats timer", () => clearInterval(statsTimer));

    await Promise.all([netLoop(), tunLoop(), stop]);
    const drops = formatDrops(core.drops);
    if (drops) log.info("Dropped datagrams by reason: {drops}", { drops });
  } finally {
    const errors = await cleanup.run();
    for (const e of errors) log.error(e.message);
    if (errors.length === 0 && tun) {
      log.info("Removed TUN {tun} and everything xvpn set up", { tun: tun.name });
    }
  }

  function logServerEvent(e: (typeof core.events)[number]) {
    switch (e.type) {
      case "session_up": {
        const s = [...core.sessions()].find((x) => x.lease.connId === e.connId);
        log.info(e.rekey ? "Rekeyed {who}" : "Session up: {who}, connection id {id}", {
          who: s ? describeSession(s) : e.name,
          id: e.connId.toString(16).padStart(8, "0"),
        });
        break;
      }
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
}
