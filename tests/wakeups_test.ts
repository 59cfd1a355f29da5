/**
 * Wake-up budgets on a virtual clock: each core has one table of named deadlines, and the pair
 * harness jumps from deadline to deadline, counting how often a core is woken by its own timers.
 * An idle tunnel, a dead server, a rekey and a multipath client with a dead path must each wake
 * no more often than their timers justify (and the harness fails any core that leaves a
 * deadline in the past, which on a real loop would be a busy spin).
 */
import { assert, assertEquals } from "./support/assert.ts";
import { busiestWindow, MultiPair, Pair } from "./support/pair.ts";
import { udpPacket } from "./support/packets.ts";
import { parseIPv4 } from "../src/lib/ip.ts";
import {
  HANDSHAKE_RETRY_FIRST_MS,
  LIVENESS_PROBE_MS,
  LIVENESS_PROBES,
  LIVENESS_SILENCE_MS,
  PATH_PROBE_MS,
  PATH_REPORT_MS,
  REKEY_AFTER_TIME_MS,
} from "../src/core/timers.ts";
import { ClientTimer } from "../src/core/client.ts";

const GAME = parseIPv4("198.51.100.7")!;
const KEEPALIVE_MS = 10_000;

function connected(p = new Pair()): Pair {
  p.client.start(p.now, p.wall);
  p.run(50);
  assert(p.client.ready, "client ready after the handshake and config push");
  return p;
}

/** Sends a 100-byte game packet from the client every `everyMs` for `ms`. */
function game(p: Pair, ms: number, everyMs = 50): number {
  const me = p.client.config!.address.addr;
  let sent = 0;
  for (let t = 0; t < ms; t += everyMs) {
    if (p.clientSend(udpPacket(me, GAME, new Uint8Array(100)))) sent++;
    p.run(everyMs);
  }
  return sent;
}

Deno.test("wake-ups: an idle tunnel without RTT probes wakes once per keepalive interval plus its rekeys", () => {
  const p = connected(new Pair({ client: { probeMs: 0 } }, { probeMs: 0 }));
  p.resetWakes();
  const minutes = 10;
  p.run(minutes * 60_000);
  const keepalives = minutes * 60_000 / KEEPALIVE_MS;
  const rekeys = Math.floor(minutes * 60_000 / REKEY_AFTER_TIME_MS);
  console.log(
    `  idle ${minutes} min: client ${p.wakes.client} wake-ups ${
      JSON.stringify(p.wakes.clientByTimer)
    }, server ${p.wakes.server}`,
  );
  // Each keepalive is one wake; each rekey one (the Rekey timer), its response arrives as a
  // datagram. Nothing else may wake the client.
  assert(
    p.wakes.client <= keepalives + rekeys + 1,
    `client woke ${p.wakes.client} times (budget ${keepalives + rekeys + 1})`,
  );
  assert(p.wakes.client >= keepalives - 1, "keepalives did go out");
  // The server sweeps for expiry only when a session could have expired: its clients are heard
  // from every keepalive, so that is about once per session timeout.
  assert(p.wakes.server <= minutes + 2, `server woke ${p.wakes.server} times in ${minutes} min`);
  assertEquals([...p.server.sessions()].length, 1, "the session lives on");
});

Deno.test("wake-ups: an idle, unwatched tunnel is measured by its keepalives alone", () => {
  const p = connected();
  p.resetWakes();
  const minutes = 10;
  p.run(minutes * 60_000);
  const keepalives = minutes * 60_000 / KEEPALIVE_MS;
  const rekeys = Math.floor(minutes * 60_000 / REKEY_AFTER_TIME_MS);
  assert(
    p.wakes.client <= keepalives + rekeys + 2,
    `client woke ${p.wakes.client} times (budget ${keepalives + rekeys + 2})`,
  );
  // The server measures an idle client every 10 s as well (and sweeps for expiry).
  assert(p.wakes.server <= keepalives + 2 * minutes + 2, `server woke ${p.wakes.server} times`);
  const r = p.client.rtt.report(p.now);
  assert(
    r.answered >= keepalives - 1 && r.lossPct === 0,
    `its pings measured: ${JSON.stringify(r)}`,
  );
});

Deno.test("wake-ups: a tunnel in use, or watched, is measured once a second", () => {
  const p = connected();
  const sentAt = () => p.client.rtt.report(p.now).sent;
  // In use: a game packet each way every 50 ms for a minute.
  let before = sentAt();
  const me = p.client.config!.address.addr;
  for (let t = 0; t < 60_000; t += 50) {
    p.clientSend(udpPacket(me, GAME, new Uint8Array(100)));
    p.serverSend(udpPacket(GAME, me, new Uint8Array(100)));
    p.run(50);
  }
  const inUse = sentAt() - before;
  assert(inUse >= 58 && inUse <= 62, `a probe a second while in use: ${inUse}`);
  // Then idle: back to the keepalive rate once the traffic is 10 s old.
  p.run(15_000);
  before = sentAt();
  p.run(60_000);
  const idle = sentAt() - before;
  assert(idle <= 60_000 / KEEPALIVE_MS + 1, `keepalives only while idle: ${idle}`);
  // Watched (a status read): once a second for the next 30 s, idle or not.
  p.client.status(p.now);
  before = sentAt();
  p.run(30_000);
  const watched = sentAt() - before;
  assert(watched >= 28 && watched <= 31, `a probe a second while watched: ${watched}`);
});

Deno.test("wake-ups: with the server gone, the client wakes no faster than the handshake retries", () => {
  const p = connected();
  p.linkUp = false;
  p.resetWakes();
  // Gone while idle: noticed after three keepalives, then handshakes with backoff.
  p.run(120_000);
  const busiest = busiestWindow(p.wakes.clientTimes, 1000);
  console.log(
    `  server gone, idle, 120 s: ${p.wakes.client} wake-ups, busiest second ${busiest} ` +
      JSON.stringify(p.wakes.clientByTimer),
  );
  assert(busiest < 20, `at most 20 wake-ups in any second, saw ${busiest}`);
  // 250 ms doubling to 8 s: about 7 retries in the first 16 s, then one per 8 s.
  assert(p.wakes.client <= 40, `client woke ${p.wakes.client} times in 120 s`);
  assert(p.client.stats.handshakes >= 10, "it keeps trying");
});

Deno.test("wake-ups: a client sending into a dead path notices in about a second, then only retries", () => {
  const p = connected();
  game(p, 2000);
  p.linkUp = false;
  p.resetWakes();
  const t0 = p.now;
  game(p, 10_000);
  const dead = p.client.events.filter((e) => e.type === "path_dead");
  assertEquals(dead.length, 1, "one verdict for one dead spell");
  const silent = dead[0]!.type === "path_dead" ? dead[0]!.silentMs : 0;
  const expected = LIVENESS_SILENCE_MS + LIVENESS_PROBES * LIVENESS_PROBE_MS;
  console.log(
    `  dead path while sending every 50 ms: noticed after ${silent.toFixed(0)} ms; ` +
      `${p.wakes.client} timer wake-ups in 10 s, busiest second ${
        busiestWindow(p.wakes.clientTimes, 1000)
      } ${JSON.stringify(p.wakes.clientByTimer)}`,
  );
  assert(silent <= expected + 60, `noticed after ${silent} ms (expected about ${expected})`);
  // Before the verdict: 6 probes at 100 ms; after it: handshake retries only.
  assert(busiestWindow(p.wakes.clientTimes, 1000) < 20, "under 20 wake-ups in any second");
  assert(p.wakes.client <= LIVENESS_PROBES + 1 + 12, `woke ${p.wakes.client} times in 10 s`);
  assert(p.now - t0 >= 10_000);
});

Deno.test("wake-ups: a send arms the liveness timer at once (the deadline moves earlier)", () => {
  // Without RTT probes, the next deadline of an idle client is the keepalive, seconds away.
  const p = connected(new Pair({ client: { probeMs: 0 } }));
  p.run(5000); // quiet: the next deadline is the keepalive, seconds away
  const before = p.client.deadline();
  assert(before - p.now > 1000, "nothing due soon while idle");
  const me = p.client.config!.address.addr;
  assert(p.clientSend(udpPacket(me, GAME, new Uint8Array(100))));
  assertEquals(p.client.timers.nextId(), ClientTimer.Liveness);
  assert(
    p.client.deadline() <= p.now + LIVENESS_SILENCE_MS,
    "the liveness probe is due within the silence limit, not at the next keepalive",
  );
});

Deno.test("wake-ups: a rekey costs a bounded handful", () => {
  const p = connected();
  p.run(REKEY_AFTER_TIME_MS - 1000);
  p.resetWakes();
  const rekeysBefore = p.client.events.filter((e) => e.type === "connected").length;
  p.run(2000); // across the rekey
  const rekeysAfter = p.client.events.filter((e) => e.type === "connected").length;
  assertEquals(rekeysAfter - rekeysBefore, 1, "one rekey");
  console.log(
    `  rekey: ${p.wakes.client} client wake-ups ${JSON.stringify(p.wakes.clientByTimer)}`,
  );
  assert(p.wakes.client <= 3, `rekey woke the client ${p.wakes.client} times`);
});

Deno.test("wake-ups: a lost initiation is retried on the backoff schedule, not sooner", () => {
  const p = new Pair();
  p.linkUp = false;
  p.client.start(p.now, p.wall);
  p.run(HANDSHAKE_RETRY_FIRST_MS * 0.9);
  assertEquals(p.client.stats.handshakes, 1, "no retry before the first backoff");
  p.run(HANDSHAKE_RETRY_FIRST_MS * 0.5);
  assertEquals(p.client.stats.handshakes, 2, "one retry after it");
  assertEquals(p.wakes.client, 1);
});

Deno.test("wake-ups: a multipath client with a dead path wakes at most at the probe rate", () => {
  const p = new MultiPair("failover", [{}, {}]);
  p.client.start(p.now, p.wall);
  p.run(100);
  assert(p.client.ready);
  p.links[1]!.up = false;
  p.resetWakes();
  const seconds = 30;
  p.run(seconds * 1000);
  const probeWakes = seconds * 1000 / PATH_PROBE_MS; // both paths' probes share the wakes
  const reports = seconds * 1000 / PATH_REPORT_MS;
  console.log(
    `  multipath, path 2 dead, ${seconds} s: ${p.wakes.client} wake-ups, busiest second ${
      busiestWindow(p.wakes.clientTimes, 1000)
    } ${JSON.stringify(p.wakes.clientByTimer)}`,
  );
  // One wake per probe round (both paths probed together), one per probe timeout of the dead
  // path, one per report: at most twice the probe rate, never a spin.
  assert(
    p.wakes.client <= 2 * probeWakes + reports + 2,
    `client woke ${p.wakes.client} times (budget ${2 * probeWakes + reports + 2})`,
  );
  assert(busiestWindow(p.wakes.clientTimes, 1000) <= 2 * 1000 / PATH_PROBE_MS + 1);
  assert(!p.client.paths!.isUp(1), "path 2 is down");
  assert(p.client.paths!.isUp(0), "path 1 is up");
});

Deno.test("liveness: the server's own probes do not keep a path alive whose way up is broken", () => {
  // The server pings four times a second here: were its pings proof of life, the client's six
  // liveness probes (100 ms apart) would never all go unanswered.
  const p = connected(new Pair({}, { probeMs: 250 }));
  p.links[0]!.upstreamDown = true;
  game(p, 5000);
  const dead = p.client.events.filter((e) => e.type === "path_dead");
  assertEquals(dead.length, 1, "the broken way up is found");
});

Deno.test("liveness: a nudge during a dead spell brings the next handshake near, no new verdict", () => {
  const p = connected();
  p.linkUp = false;
  game(p, 3000);
  assertEquals(p.client.events.filter((e) => e.type === "path_dead").length, 1);
  // The runtime's fresh socket after the verdict, and network changes meanwhile, nudge the core.
  for (let i = 0; i < 8; i++) {
    p.client.nudge(p.now);
    assert(
      p.client.timers.get(ClientTimer.Retry) <= p.now + 250,
      "the handshake is retried within 250 ms of a network change",
    );
    game(p, 600);
  }
  const verdicts = p.client.events.filter((e) => e.type === "path_dead").length;
  assertEquals(verdicts, 1, "one verdict for one dead spell, however often it is nudged");
});
