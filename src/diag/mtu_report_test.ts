import { assert, assertEquals, assertStringIncludes } from "../../tests/support/assert.ts";
import { buildReport, formatReport, type MtuFindings } from "./mtu_report.ts";
import { parsePing, plannedChecks } from "./tunnel.ts";

/** Findings of a clean run over a 1400-byte path with ICMP, server TUN `serverMtu`. */
function findings(serverMtu: number, more: Partial<MtuFindings["search"]> = {}): MtuFindings {
  return {
    server: "192.0.2.1:51820",
    timeoutMs: 400,
    kernelPmtuAtStart: 1500,
    device: { name: "eth0", mtu: 1500 },
    search: {
      largestPayload: 1372,
      pathMtu: 1400,
      serverMtu,
      reportedMtu: 1400,
      icmpSeen: true,
      silentPayload: undefined,
      blackHole: false,
      steps: [
        { size: 548, result: "pass", tries: 1 },
        { size: 1472, result: "too_big", tries: 1, pmtu: 1400, via: "icmp" },
        { size: 1372, result: "pass", tries: 1 },
      ],
      probes: 3,
      lostRetried: 0,
      bestRttMs: 1.234,
      tries: 3,
      ...more,
    },
  };
}

Deno.test("report: a server TUN MTU of path MTU - 60 is healthy", () => {
  const r = buildReport(findings(1340));
  assertEquals(r.status, "healthy");
  assertEquals(r.verdicts, []);
  assertEquals(r.recommendation.innerMtu, 1340);
  assertEquals(r.recommendation.arithmetic, "1400 - 60 = 1340");
  assertEquals(r.path.icmpReportedMtu, 1400);
  assertEquals(r.path.rttMs, 1.23);
  const text = formatReport(r);
  assertStringIncludes(text, "Path MTU to the server: 1400 bytes");
  assertStringIncludes(text, `PMTU reported by the network = 1400`);
  assertStringIncludes(text, "each size tried up to 3 times (400 ms each)");
  assertStringIncludes(text, "Verdict: healthy");
});

Deno.test("report: over an IPv6 underlay the headers are 48 bytes and the overhead 80", () => {
  const f = findings(1320, { largestPayload: 1352, pathMtu: 1400 });
  f.ipv6 = true;
  const r = buildReport(f);
  assertEquals(r.status, "healthy");
  assertEquals(r.recommendation.innerMtu, 1320);
  assertEquals(r.recommendation.arithmetic, "1400 - 80 = 1320");
  assertStringIncludes(formatReport(r), "1352 + 48 (IPv6 40 + UDP 8) = 1400");
  // The IPv4 rule would allow 1340: over IPv6 that is 20 bytes too many.
  const over = buildReport({ ...f, search: { ...f.search, serverMtu: 1340 } });
  assertEquals(over.status, "problems");
});

Deno.test("report: a server TUN MTU above path MTU - 60 is a problem that names the cost", () => {
  const r = buildReport(findings(1420));
  assertEquals(r.status, "problems");
  assertEquals(r.recommendation.serverTunMtuFits, false);
  assertEquals(r.recommendation.fragmentsPerFullSizePacket, 2);
  assertEquals(r.verdicts.length, 1);
  assertStringIncludes(r.verdicts[0]!, "server TUN MTU 1420 exceeds path MTU - 60 = 1340");
  assertStringIncludes(r.verdicts[0]!, "1480-byte datagrams");
  assertStringIncludes(r.verdicts[0]!, "tun.mtu: 1340");
});

Deno.test("report: the field-notes mismatch names both MTUs and the dropped range", () => {
  const f = findings(1340);
  f.search.serverMtu = 1460;
  f.search.pathMtu = 1500;
  f.search.largestPayload = 1472;
  f.clientTun = { name: "xvpn0", mtu: 1500, address: "10.7.0.2/24" };
  const r = buildReport(f);
  assertEquals(r.tun.equal, false);
  // Two problems: the mismatch, and 1460 is above 1500 - 60 as well.
  assertEquals(r.verdicts.length, 2, JSON.stringify(r.verdicts));
  assertStringIncludes(r.verdicts[1]!, "server TUN MTU 1460 exceeds path MTU - 60 = 1440");
  assertStringIncludes(
    r.verdicts[0]!,
    "client TUN MTU 1500 but server TUN MTU 1460: packets of 1461-1500 bytes from the internet " +
      "to you will be dropped at the server",
  );
  assertStringIncludes(formatReport(r), "client: 1500 (xvpn0 10.7.0.2/24), DIFFERENT");
  // The other way round is a mismatch too.
  f.clientTun.mtu = 1400;
  assertStringIncludes(buildReport(f).verdicts[0]!, "client TUN MTU 1400 but server TUN MTU 1460");
});

Deno.test("report: a black hole is a verdict, with the smallest vanished size", () => {
  const r = buildReport(findings(1340, {
    reportedMtu: undefined,
    icmpSeen: false,
    blackHole: true,
    silentPayload: 1373,
  }));
  assertEquals(r.status, "problems");
  assertEquals(r.path.smallestVanished, 1401);
  assertStringIncludes(r.verdicts[0]!, "PMTU black hole: datagrams larger than 1400 bytes vanish");
  assertStringIncludes(r.verdicts[0]!, `no ICMP "fragmentation needed" came back`);
  assertStringIncludes(formatReport(r), "PMTU BLACK HOLE: 1401-byte datagrams and larger vanish");
});

Deno.test("report: full-size pings that fail through the tunnel are a verdict", () => {
  const f = findings(1340);
  f.clientTun = { name: "xvpn0", mtu: 1340, address: "10.7.0.2/24" };
  const checks = plannedChecks(1340).map((c) => ({
    ...c,
    payload: c.packet - 28,
    sent: 3,
    received: c.packet > 1000 && c.df ? 0 : 3,
    ok: !(c.packet > 1000 && c.df),
  }));
  f.tunnel = { target: "10.7.0.1", checks };
  const r = buildReport(f);
  assertEquals(r.verdicts.length, 1, JSON.stringify(r.verdicts));
  assertStringIncludes(r.verdicts[0]!, "1340-byte packets (full-size, DF set)");
  // No echo at all: one verdict about the tunnel, not one per size.
  f.tunnel.checks = checks.map((c) => ({ ...c, received: 0, ok: false }));
  const dead = buildReport(f);
  assertEquals(dead.verdicts.length, 1);
  assertStringIncludes(dead.verdicts[0]!, "not even a small one");
});

Deno.test("ping output: statistics and the first error line", () => {
  const ok = parsePing(
    "PING 10.7.0.1 (10.7.0.1) 1312(1340) bytes of data.\n" +
      "1320 bytes from 10.7.0.1: icmp_seq=1 ttl=64 time=0.5 ms\n\n" +
      "--- 10.7.0.1 ping statistics ---\n3 packets transmitted, 3 received, 0% packet loss",
  );
  assertEquals(ok, { sent: 3, received: 3, ok: true });
  const local = parsePing(
    "--- 127.0.0.1 ping statistics ---\n" +
      "1 packets transmitted, 0 received, +1 errors, 100% packet loss, time 0ms\n" +
      "ping: local error: message too long, mtu=1400",
  );
  assertEquals(local.ok, false);
  assertEquals(local.error, "ping: local error: message too long, mtu=1400");
  const icmp = parsePing(
    "From 10.201.2.1 icmp_seq=1 Frag needed and DF set (mtu = 1460)\n" +
      "3 packets transmitted, 0 received, +3 errors, 100% packet loss",
  );
  assertEquals(icmp.error, "Frag needed and DF set (mtu = 1460)");
  assert(!icmp.ok);
});
