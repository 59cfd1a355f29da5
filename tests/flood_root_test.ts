/**
 * Root test: a handshake flood from spoofed sources while a real client connects and pings.
 *
 * Inside the client namespace a raw-socket sender (tests/support/rawsend.ts) sends 20 000
 * initiations over 10 s from random addresses in 10.203.0.0/16 (10% from one "hot" address).
 * Each passes mac1, as an attacker who knows the server's public key can make it, and carries
 * a random Noise message: without the cookie (WireGuard whitepaper 5.4.7) each would cost the
 * server a Diffie-Hellman. The server has a route back to 10.203.0.0/16 through the client
 * namespace, so its cookie replies go somewhere (and are dropped there), as on the internet.
 *
 * Asserted: the legitimate client connects during the flood (one cookie round trip) and its
 * pings through the tunnel succeed; almost no flood datagram reached the Diffie-Hellman; the
 * server's memory stays bounded; it exits cleanly. Reported: what the flood did.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { encodeKey, publicKeyOf } from "../src/core/keys.ts";
import { DEFAULT_HANDSHAKE_LOAD_THRESHOLD } from "../src/core/cookie.ts";
import { COOKIE_REPLY_BYTES, HANDSHAKE_INIT_BYTES } from "../src/core/wire.ts";
import { capture, LAB, Lab, ping } from "./support/net.ts";
import { rawSendCommand } from "./support/rawsend.ts";
import { dropsFromLog, memoryKiB, sleep, udpCounters, waitRoute } from "./support/labstats.ts";

const SPOOF = "10.203";
const FLOOD = { count: 20_000, seconds: 10 };
/** The server may grow by this much under the flood (KiB); its per-source state is capped. */
const RSS_GROWTH_LIMIT_KIB = 64 * 1024;

rootTest(
  "flood: 20k spoofed initiations in 10 s; a real client still connects and pings",
  async () => {
    const lab = await Lab.create({});
    try {
      lab.startServer();
      await lab.waitAddress("server", LAB.serverTunnel);
      await lab.topo.exec("server", [
        "ip",
        "route",
        "add",
        `${SPOOF}.0.0/16`,
        "via",
        LAB.clientUnderlay,
      ]);
      const pid = lab.server!.pid;
      await sleep(1000);
      const memBefore = await memoryKiB(pid);
      const udpBefore = await udpCounters(lab, "server");

      const flood = lab.topo.spawn(
        "client",
        rawSendCommand({
          mode: "flood",
          dst: LAB.serverUnderlay,
          port: LAB.port,
          serverPublic: encodeKey(publicKeyOf(lab.serverKey)),
          count: FLOOD.count,
          seconds: FLOOD.seconds,
          spoofPrefix: SPOOF,
          hotShare: 0.1,
          seed: 1,
        }),
        { stdout: "piped", stderr: "piped" },
      );
      const floodOut = new Response(flood.stdout).text();
      const floodErr = new Response(flood.stderr).text();
      await sleep(1500); // well over the threshold by now

      // The client's side of its handshake on the wire: under load it can only connect through
      // a cookie reply (72 bytes) and then a response (100 bytes).
      let connectMs = 0;
      const wire = await capture(
        lab,
        "client",
        `udp and src port ${LAB.port} and dst host ${LAB.clientUnderlay}`,
        async () => {
          const t0 = performance.now();
          lab.startClient();
          await lab.waitAddress("client", LAB.clientTunnel, 15_000);
          await waitRoute(lab, "client", LAB.game);
          connectMs = performance.now() - t0;
        },
      );
      const cookiesToClient = wire.filter((l) => l.endsWith(`length ${COOKIE_REPLY_BYTES}`)).length;
      const responsesToClient = wire.filter((l) => l.endsWith("length 100")).length;
      const pings = await ping(lab, "client", LAB.game, { count: 20, interval: 0.2 });
      const floodStatus = await flood.status;
      assertEquals(floodStatus.code, 0, `flood sender: ${await floodErr}`);
      const sent = JSON.parse((await floodOut).trim().split("\n").pop()!) as {
        sent: number;
        refused: number;
        sources: number;
        seconds: number;
      };
      const memAfter = await memoryKiB(pid);
      const udpAfter = await udpCounters(lab, "server");
      const after = await ping(lab, "client", LAB.game, { count: 3 });

      const st = await lab.stopAll();
      const log = await Deno.readTextFile(lab.path("server.log"));
      const drops = dropsFromLog(log);
      const sessions = [...log.matchAll(/Session up|Rekeyed/g)].length;
      const processedFlood = (drops.bad_handshake ?? 0) + (drops.unknown_key ?? 0);
      const kernelDropped = (udpAfter.RcvbufErrors ?? 0) - (udpBefore.RcvbufErrors ?? 0);
      const loss = 1 - pings.received / pings.transmitted;
      const avgRtt = pings.rtts.reduce((a, b) => a + b, 0) / Math.max(pings.rtts.length, 1);
      console.log(
        [
          `  flood: ${sent.sent} initiations (${HANDSHAKE_INIT_BYTES} B) from ${sent.sources} spoofed ` +
          `addresses in ${sent.seconds.toFixed(1)} s (${sent.refused} refused by the local kernel)`,
          `  server: cookie replies (${COOKIE_REPLY_BYTES} B) ${drops.under_load ?? 0}, ` +
          `rate-limited per source ${drops.source_rate ?? 0}, over the reply budget ` +
          `${drops.cookie_budget ?? 0}, flood initiations that reached ` +
          `the Diffie-Hellman ${processedFlood} (threshold ${DEFAULT_HANDSHAKE_LOAD_THRESHOLD}/s), ` +
          `sessions ${sessions}, lost in the socket buffer ${kernelDropped}`,
          `  client: connected in ${connectMs.toFixed(0)} ms during the flood (process start ` +
          `included; ${cookiesToClient} cookie reply, ${responsesToClient} response); ping ` +
          `${pings.received}/${pings.transmitted} (loss ${(loss * 100).toFixed(0)}%, avg ` +
          `${avgRtt.toFixed(2)} ms), after the flood ${after.received}/3 (avg ${
            (after.rtts.reduce((a, b) => a + b, 0) / Math.max(after.rtts.length, 1)).toFixed(2)
          } ms)`,
          `  server memory: VmRSS ${memBefore.rss} -> ${memAfter.rss} KiB ` +
          `(delta ${memAfter.rss - memBefore.rss} KiB), peak ${memAfter.peak} KiB`,
          `  server drops: ${log.match(/Dropped datagrams by reason: (.*)/)?.[1]}`,
        ].join("\n"),
      );

      assertEquals(sent.sent, FLOOD.count, "the whole flood went out");
      assert(cookiesToClient >= 1, `the client connected through a cookie:\n${wire.join("\n")}`);
      assert(pings.received >= 18, `pings through the tunnel during the flood: ${pings.out}`);
      assertEquals(after.received, 3, "and after it");
      const refused = (drops.under_load ?? 0) + (drops.source_rate ?? 0) +
        (drops.cookie_budget ?? 0);
      assert((drops.under_load ?? 0) > 0, "the server answered the flood with cookies");
      assert(
        refused + processedFlood + kernelDropped >= FLOOD.count * 0.99,
        `every flood datagram is accounted for: ${refused} + ${processedFlood} + ${kernelDropped}`,
      );
      assert(
        processedFlood < FLOOD.count / 20,
        `at most a few flood initiations cost a Diffie-Hellman, not ${processedFlood}`,
      );
      assert(
        memAfter.rss - memBefore.rss < RSS_GROWTH_LIMIT_KIB,
        `server RSS grew by ${memAfter.rss - memBefore.rss} KiB`,
      );
      assertEquals(st.server?.code, 0, "server exited cleanly");
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${await lab.logs()}`, { cause: err });
    } finally {
      await lab.destroy();
    }
  },
);
