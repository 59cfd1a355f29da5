/**
 * Turns what `xvpn diag mtu` measured into verdicts a person can act on, as a JSON-ready report
 * and as text. No I/O: the measuring is in `mtu.ts`.
 *
 * A verdict is a problem (exit code 1): the two TUN MTUs differ, a PMTU black hole, a server
 * TUN MTU above path MTU - 60, or full-size packets that do not cross the running tunnel.
 * Everything else is a note.
 *
 * @module
 */
import {
  fragmentsFor,
  IPV4_HEADER_BYTES,
  IPV6_HEADER_BYTES,
  outerPacketBytes,
  TUNNEL_OVERHEAD6_BYTES,
  TUNNEL_OVERHEAD_BYTES,
  UDP_HEADER_BYTES,
  XVPN_OVERHEAD_BYTES,
} from "../core/mtu.ts";
import type { SearchResult, SearchStep } from "./search.ts";
import type { PingCheck } from "./tunnel.ts";

/** Everything `xvpn diag mtu` measured. */
export interface MtuFindings {
  /** `host:port` of the server. */
  server: string;
  /** Wait for each probe's answer, ms. */
  timeoutMs: number;
  /** The path-MTU search; `pathMtu` and `serverMtu` are known (else nothing was measured). */
  search: SearchResult & { pathMtu: number; largestPayload: number; serverMtu: number };
  /** The local device towards the server, when `ip route get` named one. */
  device?: { name: string; mtu: number };
  /** The path MTU the kernel knew for the server before the first probe (`IP_MTU`). */
  kernelPmtuAtStart: number;
  /** The server is reached over IPv6 (headers 40 + 8, tunnel overhead 80). */
  ipv6?: boolean;
  /** The local TUN of a running `xvpn connect`, when it exists. */
  clientTun?: { name: string; mtu: number; address?: string };
  /** The through-the-tunnel pings, when a client is running. */
  tunnel?: { target: string; checks: PingCheck[] };
}

/** The report: `--json` prints it as is. */
export interface MtuReport {
  /** `healthy` (exit 0) or `problems` (exit 1). */
  status: "healthy" | "problems";
  /** The server probed. */
  server: string;
  /** The underlay path to the server. */
  path: {
    /** Path MTU: largest acknowledged UDP payload + 28. */
    mtu: number;
    largestPayload: number;
    /** The local device towards the server and its MTU. */
    device: string | null;
    deviceMtu: number | null;
    /** The kernel's path MTU for the server when diag started. */
    kernelPmtuAtStart: number;
    /** An ICMP "fragmentation needed" (or its cached result) lowered the path MTU to this. */
    icmpReportedMtu: number | null;
    /** An ICMP error for a probe arrived during this run. */
    icmpSeen: boolean;
    /** Datagrams above `mtu` vanish with no ICMP. */
    blackHole: boolean;
    /** The smallest vanished datagram, as a path MTU (payload + 28). */
    smallestVanished: number | null;
    /** Probes per size before it counted as too big, and the wait for each. */
    tries: number;
    timeoutMs: number;
    probes: number;
    /** Unanswered probes on sizes that passed on a later try (loss on the path). */
    lostAndRetried: number;
    rttMs: number | null;
    steps: SearchStep[];
  };
  /** TUN MTUs of both ends (client: null when no `xvpn connect` runs here). */
  tun: {
    server: number;
    client: { name: string; mtu: number; address: string | null } | null;
    equal: boolean | null;
  };
  /** The inner MTU the path allows and how the server's TUN MTU compares. */
  recommendation: {
    innerMtu: number;
    arithmetic: string;
    overhead: { ipv4: number; udp: number; xvpn: number; total: number };
    serverTunMtuFits: boolean;
    /** IP fragments per full-size tunnel packet of the server's TUN MTU. */
    fragmentsPerFullSizePacket: number;
  };
  /** Pings through the running tunnel (null when no client runs here). */
  tunnel: { target: string; checks: PingCheck[] } | null;
  /** Problems, each a plain-language sentence; empty when healthy. */
  verdicts: string[];
  /** What was found that is fine, or context. */
  notes: string[];
}

/** Builds the report and its verdicts from the findings. */
export function buildReport(f: MtuFindings): MtuReport {
  const s = f.search;
  const p = s.pathMtu;
  const server = s.serverMtu;
  const v6 = f.ipv6 === true;
  const ipHeader = v6 ? IPV6_HEADER_BYTES : IPV4_HEADER_BYTES;
  const headers = ipHeader + UDP_HEADER_BYTES;
  const overhead = v6 ? TUNNEL_OVERHEAD6_BYTES : TUNNEL_OVERHEAD_BYTES;
  const rec = p - overhead;
  const verdicts: string[] = [];
  const notes: string[] = [];

  // 1. The path.
  const device = f.device ? `${f.device.name} (MTU ${f.device.mtu})` : "unknown";
  notes.push(
    `path MTU to the server ${p}: the largest UDP payload acknowledged was ${s.largestPayload} ` +
      `bytes, + ${headers} for ${v6 ? "IPv6" : "IPv4"} and UDP; local device ${device}`,
  );
  const silent = s.silentPayload === undefined ? undefined : s.silentPayload + headers;
  if (f.kernelPmtuAtStart < (f.device?.mtu ?? f.kernelPmtuAtStart)) {
    notes.push(
      `the kernel already knew a path MTU of ${f.kernelPmtuAtStart} for the server when diag ` +
        `started (from an earlier ICMP "fragmentation needed", kept 10 minutes, or a route ` +
        `mtu); the probes ignored it and measured afresh`,
    );
  }
  if (s.reportedMtu !== undefined) {
    notes.push(
      `ICMP "fragmentation needed" came back: the network reported PMTU ${s.reportedMtu}` +
        (s.icmpSeen ? "" : " (the kernel then refused larger sends with EMSGSIZE)"),
    );
  } else if (f.device && p === f.device.mtu) {
    notes.push(`the path carries the local device's full MTU ${p}`);
  }
  if (s.blackHole) {
    const icmpPart = s.reportedMtu === undefined
      ? `no ICMP "fragmentation needed" came back`
      : `a router reported ${s.reportedMtu} by ICMP, but a later hop drops silently below it`;
    verdicts.push(
      `PMTU black hole: datagrams larger than ${p} bytes vanish on the way to the server ` +
        `(${silent} bytes and up, each size tried ${s.tries} times, twice over at the ` +
        `boundary) and ${icmpPart}; senders relying on path-MTU discovery stall on such ` +
        `packets, so every tunnel datagram must stay within ${p} bytes: TUN MTU at most ${rec}`,
    );
  }
  notes.push(
    `each size was probed up to ${s.tries} times (${f.timeoutMs} ms each) before it counted ` +
      `as too big, so loss on the path does not talk the result down; ${s.lostRetried} of ` +
      `${s.probes} probes went unanswered on sizes that passed on a later try` +
      (s.lostRetried ? " (loss on the path)" : ""),
  );

  // 2. The TUN MTUs.
  const c = f.clientTun;
  if (c && c.mtu !== server) {
    if (c.mtu > server) {
      verdicts.push(
        `client TUN MTU ${c.mtu} but server TUN MTU ${server}: packets of ${server + 1}-` +
          `${c.mtu} bytes from the internet to you will be dropped at the server (its kernel ` +
          `answers ICMP "fragmentation needed, mtu ${server}", which many game servers ` +
          `ignore, so large replies such as logins hang; TCP is spared while mss_clamp is on, ` +
          `UDP sent with DF, as QUIC and many game protocols do, is not); the two must be ` +
          `equal: restart xvpn connect so ${c.name} takes the server's MTU, and find what ` +
          `changed it`,
      );
    } else {
      verdicts.push(
        `client TUN MTU ${c.mtu} but server TUN MTU ${server}: your side announces TCP MSS ` +
          `${c.mtu - 40} and splits packets the server side would carry whole, while replies ` +
          `of ${c.mtu + 1}-${server} bytes rely on your kernel accepting oversized packets ` +
          `on ${c.name}; the two must be equal: restart xvpn connect so ${c.name} takes the ` +
          `server's MTU, and find what changed it`,
      );
    }
  } else if (c) {
    notes.push(`client TUN ${c.name} and the server's TUN have the same MTU, ${server}`);
  } else {
    notes.push(
      `no local TUN (xvpn connect is not running here): only the server's TUN MTU is known`,
    );
  }

  // 3. The recommendation.
  const fits = server <= rec;
  const fragments = fragmentsFor(server + overhead, p);
  if (fits) {
    notes.push(
      `server TUN MTU ${server} fits the path: full-size tunnel packets become ` +
        `${outerPacketBytes(server)}-byte datagrams, within the path MTU ${p}` +
        (server < rec ? ` (${rec - server} bytes to spare)` : ""),
    );
  } else {
    verdicts.push(
      `server TUN MTU ${server} exceeds path MTU - ${overhead} = ${rec}: full-size ` +
        `tunnel packets become ${outerPacketBytes(server)}-byte datagrams that the kernel ` +
        `fragments into ${fragments} IP packets once an ICMP told it the path MTU (works, but ` +
        `costs: more packets, and losing any fragment loses the whole packet; the first ones ` +
        `are lost, and all of them when ICMP is filtered); set tun.mtu: ${rec} in the server ` +
        `config, or leave tun.mtu out (automatic: the underlay device's MTU - 60)`,
    );
  }

  // 4. Through the tunnel.
  if (f.tunnel) {
    const checks = f.tunnel.checks;
    const small = checks.find((k) => k.label === "small");
    if (small && !small.ok) {
      verdicts.push(
        `no echo from the server's tunnel address ${f.tunnel.target} came back, not even a ` +
          `small one: the tunnel does not pass traffic (is xvpn connect connected?)`,
      );
    } else {
      const failed = checks.filter((k) => k !== small && !k.ok);
      if (!failed.length && c && c.mtu !== server) {
        notes.push(
          `pings to the server's own tunnel address pass despite the mismatch: the server's ` +
            `kernel fragments its own echo replies; it is traffic forwarded through the ` +
            `server with DF set that is dropped`,
        );
      }
      for (const k of failed) {
        verdicts.push(
          `${k.packet}-byte packets (${k.label}, ${k.df ? "DF set" : "no DF"}) to the ` +
            `server's tunnel address ${f.tunnel.target} got no answer while small ones did` +
            (k.error ? ` (ping: ${k.error})` : ""),
        );
      }
    }
  }

  return {
    status: verdicts.length ? "problems" : "healthy",
    server: f.server,
    path: {
      mtu: p,
      largestPayload: s.largestPayload,
      device: f.device?.name ?? null,
      deviceMtu: f.device?.mtu ?? null,
      kernelPmtuAtStart: f.kernelPmtuAtStart,
      icmpReportedMtu: s.reportedMtu ?? null,
      icmpSeen: s.icmpSeen,
      blackHole: s.blackHole,
      smallestVanished: silent ?? null,
      tries: s.tries,
      timeoutMs: f.timeoutMs,
      probes: s.probes,
      lostAndRetried: s.lostRetried,
      rttMs: s.bestRttMs === undefined ? null : Math.round(s.bestRttMs * 100) / 100,
      steps: s.steps,
    },
    tun: {
      server,
      client: c ? { name: c.name, mtu: c.mtu, address: c.address ?? null } : null,
      equal: c ? c.mtu === server : null,
    },
    recommendation: {
      innerMtu: rec,
      arithmetic: `${p} - ${overhead} = ${rec}`,
      overhead: {
        ipv4: ipHeader,
        udp: UDP_HEADER_BYTES,
        xvpn: XVPN_OVERHEAD_BYTES,
        total: overhead,
      },
      serverTunMtuFits: fits,
      fragmentsPerFullSizePacket: fragments,
    },
    tunnel: f.tunnel ?? null,
    verdicts,
    notes,
  };
}

/** The report as text for a person. */
export function formatReport(r: MtuReport): string {
  const lines: string[] = [];
  const p = r.path;
  lines.push(`xvpn diag mtu: server ${r.server}`, "");
  lines.push(`Path MTU to the server: ${p.mtu} bytes`);
  lines.push(
    `  largest UDP payload acknowledged: ${p.largestPayload} + ${p.mtu - p.largestPayload} ` +
      `(${p.mtu - p.largestPayload === 48 ? "IPv6 40" : "IPv4 20"} + UDP 8) = ${p.mtu}`,
  );
  if (p.device) lines.push(`  local device towards the server: ${p.device}, MTU ${p.deviceMtu}`);
  if (p.icmpReportedMtu !== null) {
    lines.push(
      `  ICMP "fragmentation needed" came back: PMTU reported by the network = ` +
        `${p.icmpReportedMtu}`,
    );
  } else if (!p.blackHole) {
    lines.push(`  no router on the way needed to send ICMP "fragmentation needed"`);
  }
  if (p.blackHole) {
    lines.push(
      `  PMTU BLACK HOLE: ${p.smallestVanished}-byte datagrams and larger vanish, with no ICMP`,
    );
  }
  lines.push(
    `  ${p.probes} probes; each size tried up to ${p.tries} times (${p.timeoutMs} ms each) ` +
      `before it counts as too big,`,
    `  so a lossy path does not talk diag down (${p.lostAndRetried} lost and retried)` +
      (p.rttMs === null ? "" : `; round trip ${p.rttMs} ms`),
  );
  lines.push(
    `  sizes tried: ` +
      p.steps.map((s) =>
        `${s.size}${s.result === "pass" ? " ok" : s.result === "lost" ? " lost" : " too big"}`
      ).join(", "),
  );
  lines.push("");
  lines.push(`TUN MTUs:`);
  lines.push(`  server: ${r.tun.server} (from the probe answers)`);
  lines.push(
    r.tun.client
      ? `  client: ${r.tun.client.mtu} (${r.tun.client.name}${
        r.tun.client.address ? ` ${r.tun.client.address}` : ""
      })${r.tun.equal ? ", equal" : ", DIFFERENT"}`
      : `  client: no local TUN (xvpn connect is not running here)`,
  );
  lines.push("");
  const rec = r.recommendation;
  lines.push(
    `Recommended inner (TUN) MTU: ${rec.arithmetic}`,
    `  (path MTU - ${rec.overhead.total}: ${
      rec.overhead.total === 80 ? "IPv6" : "IPv4"
    } ${rec.overhead.ipv4} + UDP ${rec.overhead.udp} + ` +
      `xvpn header and tag ${rec.overhead.xvpn})`,
    rec.serverTunMtuFits
      ? `  the server's TUN MTU ${r.tun.server} fits: full-size packets cross unfragmented`
      : `  the server's TUN MTU ${r.tun.server} is larger: each full-size packet becomes ` +
        `${rec.fragmentsPerFullSizePacket} fragments`,
  );
  if (r.tunnel) {
    lines.push("", `Through the tunnel, ping to the server's tunnel address ${r.tunnel.target}:`);
    for (const k of r.tunnel.checks) {
      const what = `${k.packet} bytes (-s ${k.payload}) ${k.df ? "DF   " : "no DF"}`;
      lines.push(
        `  ${what.padEnd(28)} ${k.ok ? "ok" : "FAILED"} (${k.received}/${k.sent})  ${k.label}` +
          (k.error ? `: ${k.error}` : ""),
      );
    }
  }
  lines.push("");
  if (r.verdicts.length) {
    lines.push(
      `Verdict: ${r.verdicts.length === 1 ? "a problem" : `${r.verdicts.length} problems`}`,
    );
    for (const v of r.verdicts) lines.push(`  - ${v}`);
  } else {
    lines.push(`Verdict: healthy`);
  }
  return lines.join("\n");
}
