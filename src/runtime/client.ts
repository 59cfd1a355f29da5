/**
 * The client runtime: opens the TUN and a UDP socket, drives {@link ClientCore} until
 * SIGINT/SIGTERM, applies what the server pushes (address, MTU, routes) and removes all of it
 * on the way out.
 *
 * Loops as in the server runtime (src/runtime/server.ts): the net loop writes each decrypted
 * packet to the TUN before its next receive; the TUN loop drains the non-blocking fd and awaits
 * each send before reusing its buffer; a 100 ms timer runs the core's timers.
 *
 * @module
 */
import type { ClientConfig } from "../config/mod.ts";
import { ClientCore, type ClientEvent } from "../core/client.ts";
import type { SessionConfig } from "../core/control.ts";
import { type Cidr, formatCidr, formatIPv4, parseIPv4 } from "../core/ip.ts";
import { type Endpoint, formatEndpoint, sameEndpoint, Verdict } from "../core/result.ts";
import { createAead } from "../crypto/aead.ts";
import { PacketBuf } from "../core/packet.ts";
import type { CommandRunner } from "../io/command.ts";
import { openTun } from "../io/tun/open.ts";
import type { TunDevice } from "../io/tun/device.ts";
import { DenoUdpSocket, type UdpSocket } from "../io/udp/socket.ts";
import { RouteApplier } from "../io/route/applier.ts";
import type { LinkState } from "../io/route/state.ts";
import { logger } from "../log.ts";
import { aborted, Cleanup } from "./signals.ts";
import { formatDrops } from "./stats.ts";

const log = logger("client");
const MAX_PACKET_BYTES = 65535;

/** Resolves `host` to an IPv4 address text (a literal is returned as is). */
export async function resolveHost(host: string): Promise<string> {
  if (parseIPv4(host) !== undefined) return host;
  try {
    const [a] = await Deno.resolveDns(host, "A");
    if (a) return a;
  } catch (err) {
    throw new Error(`Cannot resolve server "${host}": ${(err as Error).message}`, { cause: err });
  }
  throw new Error(`Cannot resolve server "${host}": no IPv4 address`);
}

/** Why the client stopped. */
export type ClientExit = { code: 0 } | { code: 1; reason: string };

/** Runs the client until `signal` aborts or the server refuses us. */
export async function runClient(
  cfg: ClientConfig,
  deps: { runner: CommandRunner; signal: AbortSignal },
): Promise<ClientExit> {
  const core = new ClientCore({
    privateKey: cfg.privateKey,
    serverPublicKey: cfg.serverPublicKey,
    aead: createAead("auto"),
    keepaliveMs: cfg.keepaliveMs,
  });
  const cleanup = new Cleanup();
  let exit: ClientExit = { code: 0 };
  try {
    const server: Endpoint = {
      hostname: await resolveHost(cfg.server.host),
      port: cfg.server.port,
    };
    const tun: TunDevice = openTun(cfg.tun.name);
    cleanup.add(`close TUN ${tun.name}`, () => tun.close());
    const udp: UdpSocket = new DenoUdpSocket("0.0.0.0", 0);
    cleanup.add("close UDP socket", () => udp.close());
    const link = new RouteApplier(deps.runner);
    let applied: LinkState | undefined;
    cleanup.add("remove addresses and routes", () => applied && link.down());
    log.info("Connecting to {server} from {local} with TUN {tun}", {
      server: formatEndpoint(server),
      local: formatEndpoint(udp.local),
      tun: tun.name,
    });

    let running = true;
    const stopLoops = () => {
      running = false;
      tun.wake();
      udp.close();
    };
    const stop = aborted(deps.signal).then(async () => {
      // Tell the server at once, so our address is free for the next start; best effort.
      core.close();
      await Promise.allSettled(core.outbox.splice(0).map((d) => udp.send(d, server)));
      stopLoops();
    });

    // Config changes are applied one at a time, in order.
    let applying: Promise<void> = Promise.resolve();
    const apply = (c: SessionConfig) => {
      applying = applying.then(async () => {
        const want: LinkState = {
          ifname: tun.name,
          address: c.address,
          mtu: c.mtu,
          routes: dedupe([...c.routes, ...cfg.routes]),
          endpoint: { ip: parseIPv4(server.hostname)! },
        };
        if (applied && JSON.stringify(applied) === JSON.stringify(want)) return;
        if (applied) await link.down();
        applied = undefined;
        await link.up(want);
        applied = want;
        log.info("Tunnel up: {address} mtu {mtu}, routes {routes}, DNS offered {dns}", {
          address: `${formatIPv4(c.address.addr)}/${c.address.prefix}`,
          mtu: c.mtu,
          routes: want.routes.map(formatCidr).join(", ") || "none",
          dns: c.dns.map(formatIPv4).join(", ") || "none",
        });
      }).catch((err) => {
        log.error("Cannot apply the pushed config: {err}", { err: (err as Error).message });
        exit = { code: 1, reason: (err as Error).message };
        stopLoops();
      });
    };

    const onEvent = (e: ClientEvent) => {
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
          log.info(
            e.rekey
              ? "Rekeyed with {server}"
              : "Handshake complete with {server}, connection id {id}",
            {
              server: formatEndpoint(server),
              id: e.connId.toString(16).padStart(8, "0"),
            },
          );
          break;
        case "config":
          apply(e.config);
          break;
        case "path_dead":
          log.warning("No reply from the server for {s} s: handshaking again", {
            s: Math.round(e.silentMs / 1000),
          });
          break;
        case "rtt":
          log.debug("Keepalive RTT {rtt} ms", { rtt: e.rttMs });
          break;
        case "disconnected":
          if (e.reason.includes("exhausted")) {
            log.error("The server refused us: {reason}", { reason: e.reason });
            exit = { code: 1, reason: `the server refused us: ${e.reason}` };
            stopLoops();
          } else {
            log.warning("Disconnected: {reason}; reconnecting", { reason: e.reason });
            core.start(performance.now(), Date.now());
          }
          break;
      }
    };
    const flush = () => {
      for (const d of core.outbox.splice(0)) {
        udp.send(d, server).catch((err) => log.debug("Send failed: {err}", { err: String(err) }));
      }
      for (const e of core.events.splice(0)) onEvent(e);
    };

    const netLoop = async () => {
      const out = new Uint8Array(MAX_PACKET_BYTES);
      let strangers = 0;
      while (running) {
        let d: Uint8Array, from: Endpoint;
        try {
          [d, from] = await udp.receive();
        } catch (err) {
          if (!running) return;
          log.warning("UDP receive failed: {err}", { err: String(err) });
          continue;
        }
        if (!sameEndpoint(from, server)) {
          if (strangers++ === 0) {
            log.warning("Ignoring datagrams from {from}", { from: formatEndpoint(from) });
          }
          continue;
        }
        const r = core.receive(performance.now(), new PacketBuf(d), out);
        if (r.verdict === Verdict.Tun) tun.write(out, r.length);
        if (core.outbox.length || core.events.length) flush();
      }
    };
    const tunLoop = async () => {
      const buf = new Uint8Array(MAX_PACKET_BYTES);
      const out = PacketBuf.alloc(MAX_PACKET_BYTES + 64);
      while (running) {
        const n = tun.read(buf);
        if (n === 0) {
          await tun.waitReadable(1000);
          continue;
        }
        const r = core.fromTun(performance.now(), buf, n, out);
        if (r.verdict === Verdict.Net) {
          try {
            await udp.send(out.bytes(), server);
          } catch (err) {
            if (!running) return;
            log.debug("Send failed: {err}", { err: String(err) });
          }
        }
      }
    };
    core.start(performance.now(), Date.now());
    flush();
    const timer = setInterval(() => {
      core.tick(performance.now(), Date.now());
      flush();
    }, 100);
    cleanup.add("stop timer", () => clearInterval(timer));

    await Promise.race([Promise.all([netLoop(), tunLoop()]), stop]);
    stopLoops();
    await applying;
    const drops = formatDrops(core.drops);
    if (drops) log.info("Dropped datagrams by reason: {drops}", { drops });
  } finally {
    const errors = await cleanup.run();
    for (const e of errors) log.error(e.message);
    if (errors.length === 0) log.info("Removed the TUN device, its address and routes");
  }
  return exit;
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
