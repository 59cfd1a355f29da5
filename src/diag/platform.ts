/**
 * What `xvpn diag mtu` asks of the system it runs on, behind one seam: the probe socket, the
 * device (and its MTU) the server is reached through, the running tunnel's device, and the
 * pings through it. On Linux: {@link PmtuSocket}, `ip -j` and the system `ping`
 * (`links.ts`, `tunnel.ts`); on Windows: {@link WinsockPmtuSocket}, PowerShell's
 * `Find-NetRoute`, `Get-NetIPInterface`, `Get-NetIPAddress`, and .NET's `Ping` with
 * `PingOptions.DontFragment` (`diag/windows.ts`), all locale-independent.
 *
 * @module
 */
import type { Cidr } from "../lib/ip.ts";
import type { CommandRunner } from "../io/command.ts";
import { PmtuSocket, type ProbeSocket } from "../io/udp/pmtu.ts";
import { WinsockPmtuSocket } from "../io/udp/pmtu_winsock.ts";
import { linkAddress, linkMtu, routeTo } from "./links.ts";
import { type PingCheck, pingCheck } from "./tunnel.ts";
import { windowsPingCheck, windowsRouteDevice, windowsTunLink } from "./windows.ts";

/** One planned ping through the tunnel (see `plannedChecks`). */
export type PlannedCheck = { packet: number; df: boolean; label: string };

/** See the module docs. */
export interface DiagPlatform {
  /** Opens the probe socket, connected to the server, DF on every datagram. */
  openSocket(host: string, port: number): ProbeSocket;
  /** The device the system reaches `dst` (an IPv4 literal) through, and its MTU if known. */
  routeDevice(dst: string): Promise<{ name: string; mtu?: number } | undefined>;
  /** The tunnel device `name` with its MTU and IPv4 address; undefined when there is none. */
  tunLink(name: string): Promise<{ mtu: number; address?: Cidr } | undefined>;
  /** One ping check through the tunnel to `target`. */
  pingCheck(target: string, check: PlannedCheck): Promise<PingCheck>;
}

/** Linux: libc's socket, `ip -j`, `ping`. */
export function linuxDiagPlatform(runner: CommandRunner): DiagPlatform {
  return {
    openSocket: (host, port) => PmtuSocket.open(host, port, "probe"),
    routeDevice: async (dst) => {
      const route = await routeTo(runner, dst);
      if (!route) return undefined;
      const mtu = await linkMtu(runner, route.dev);
      return mtu === undefined ? { name: route.dev } : { name: route.dev, mtu };
    },
    tunLink: async (name) => {
      const mtu = await linkMtu(runner, name);
      if (mtu === undefined) return undefined;
      const address = await linkAddress(runner, name);
      return address ? { mtu, address } : { mtu };
    },
    pingCheck: (target, check) => pingCheck(runner, target, check),
  };
}

/** Windows: Winsock by FFI (`winsock` is ws2_32, or the fake on Linux) and PowerShell. */
export function windowsDiagPlatform(runner: CommandRunner, winsock = "ws2_32.dll"): DiagPlatform {
  return {
    openSocket: (host, port) => WinsockPmtuSocket.open(host, port, winsock),
    routeDevice: (dst) => windowsRouteDevice(runner, dst),
    tunLink: (name) => windowsTunLink(runner, name),
    pingCheck: (target, check) => windowsPingCheck(runner, target, check),
  };
}
