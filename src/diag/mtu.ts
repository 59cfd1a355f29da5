/**
 * `xvpn diag mtu`, the measuring half: a diagnostic session with the server, the path-MTU
 * search over it, the TUN MTUs of both ends, and pings through a running tunnel. The verdicts
 * are made in `mtu_report.ts`.
 *
 * @module
 */
import { formatIPv4, networkOf } from "../lib/ip.ts";
import { payloadOfPathMtu } from "../core/mtu.ts";
import { type Endpoint, formatEndpoint } from "../lib/endpoint.ts";
import type { DiagPlatform } from "./platform.ts";
import { buildReport, type MtuFindings, type MtuReport } from "./mtu_report.ts";
import { searchPathMtu } from "./search.ts";
import { DEFAULT_PROBE_TIMEOUT_MS, DiagSession, UnmeasurableError } from "./session.ts";
import { plannedChecks } from "./tunnel.ts";

/** The search's ceiling when the device's MTU is unknown (see diagnoseMtu). */
const ETHERNET_MTU = 1500;

/** What {@link diagnoseMtu} needs. */
export interface DiagnoseMtuOptions {
  /** The server, `hostname` an IPv4 literal. */
  server: Endpoint;
  /** A client key the server accepts. */
  privateKey: Uint8Array;
  /** The server's public key. */
  serverPublicKey: Uint8Array;
  /** The local TUN of `xvpn connect` (checked only when it exists). */
  tunName: string;
  /** Probes per size before it counts as too big. */
  tries: number;
  /** Wait for each probe's answer, ms (default 400). */
  timeoutMs?: number;
  /** The system's socket, devices and pings (`platform.ts`: Linux or Windows). */
  platform: DiagPlatform;
  /** Skip the pings through a running tunnel. */
  noTunnelCheck?: boolean;
}

/**
 * Measures and judges; see the module docs. Throws {@link UnmeasurableError} when nothing
 * could be measured (no handshake, not a single probe answered).
 */
export async function diagnoseMtu(o: DiagnoseMtuOptions): Promise<MtuReport> {
  const timeoutMs = o.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
  const route = await o.platform.routeDevice(o.server.hostname);
  const deviceMtu = route?.mtu;
  const session = await DiagSession.open({
    server: o.server,
    privateKey: o.privateKey,
    serverPublicKey: o.serverPublicKey,
    probeTimeoutMs: timeoutMs,
    openSocket: (host, port) => o.platform.openSocket(host, port),
  });
  let findings: MtuFindings;
  try {
    const kernelPmtuAtStart = session.kernelPathMtu();
    // The probe socket ignores a cached path MTU (see session.ts): only the device limits.
    // When the device's MTU is unknown, the estimate at start may be one cached from an
    // earlier run: a search capped by it would never probe above it, so start at least at
    // Ethernet's 1500 (a send above the device's MTU fails at once, a too-big answer).
    const localMtu = deviceMtu ?? Math.max(kernelPmtuAtStart, ETHERNET_MTU);
    const headers = session.headerBytes;
    const search = await searchPathMtu(session, {
      maxPayload: payloadOfPathMtu(localMtu, headers),
      localMtu,
      tries: o.tries,
      headers,
    });
    const { pathMtu, largestPayload, serverMtu } = search;
    if (pathMtu === undefined || largestPayload === undefined || serverMtu === undefined) {
      throw new UnmeasurableError(
        `the server at ${formatEndpoint(o.server)} completed the handshake but answered none ` +
          `of ${search.probes} MTU probes of ${search.steps[0]?.size ?? "?"} bytes ` +
          `(an xvpn server without diag support, or a path that loses almost everything)`,
      );
    }
    findings = {
      server: formatEndpoint(o.server),
      timeoutMs,
      search: { ...search, pathMtu, largestPayload, serverMtu },
      kernelPmtuAtStart,
      ipv6: headers === 48,
    };
    if (route && deviceMtu !== undefined) findings.device = { name: route.name, mtu: deviceMtu };
  } finally {
    session.close();
  }

  const tun = await o.platform.tunLink(o.tunName);
  if (tun !== undefined) {
    const tunMtu = tun.mtu, addr = tun.address;
    findings.clientTun = { name: o.tunName, mtu: tunMtu };
    if (addr) {
      findings.clientTun.address = `${formatIPv4(addr.addr)}/${addr.prefix}`;
      if (!o.noTunnelCheck) {
        // The server's tunnel address is the first host of the pool the client's address is in.
        const target = formatIPv4((networkOf(addr) + 1) >>> 0);
        const checks = [];
        for (const c of plannedChecks(tunMtu)) {
          checks.push(await o.platform.pingCheck(target, c));
        }
        findings.tunnel = { target, checks };
      }
    }
  }
  return buildReport(findings);
}
