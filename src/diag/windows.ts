/**
 * The Windows side of `xvpn diag mtu`'s questions to the system (see `platform.ts`), asked of
 * Windows PowerShell 5.1 with `ConvertTo-Json` output, so that nothing depends on the display
 * language (ping.exe's and netsh's text is translated):
 * - the device towards the server: `Find-NetRoute` (as the route applier asks it), then its
 *   IPv4 MTU, `Get-NetIPInterface -InterfaceIndex N -AddressFamily IPv4` (`NlMtu`);
 * - the tunnel adapter: `Get-NetIPInterface -InterfaceAlias` and `Get-NetIPAddress`;
 * - the pings through the tunnel: .NET's `System.Net.NetworkInformation.Ping.Send` with a
 *   buffer of the payload's size and `PingOptions(64, dontFragment)`, three times, 200 ms
 *   apart; each reply's `IPStatus` (`Success`, `PacketTooBig`, `TimedOut`, ...) comes back.
 *
 * Every command only asks. Argv lists and parsers are tested against sample outputs here; the
 * commands themselves have not run on real Windows.
 *
 * @module
 */
import { type Cidr, parseIPv4 } from "../lib/ip.ts";
import { IPV4_HEADER_BYTES } from "../core/mtu.ts";
import type { CommandRunner } from "../io/command.ts";
import {
  checkWindowsIfname,
  powershell,
  psJsonList,
  psJsonRows,
  psQuote,
} from "../io/route/windows_args.ts";
import { findNetRouteArgv, parseFindNetRoute } from "../io/route/windows_lookup.ts";
import type { PingCheck } from "./tunnel.ts";

/** ICMP echo header bytes: a payload of N makes an IP packet of N + 28. */
const ICMP_ECHO_HEADER_BYTES = 8;
/** Echoes per check, as on Linux. */
const COUNT = 3;

/** Runs `argv`; its stdout when it exited 0, undefined when it failed or could not start (no
 * `powershell`: the fake-wintun test hook on Linux). */
async function ask(runner: CommandRunner, argv: string[]): Promise<string | undefined> {
  try {
    const r = await runner.run(argv, { allowFailure: true });
    return r.code === 0 ? r.stdout : undefined;
  } catch {
    return undefined;
  }
}

/** The first JSON object PowerShell printed (it prints an array for several), or undefined. */
function firstObject(output: string): Record<string, unknown> | undefined {
  return psJsonRows(output)?.[0];
}

/** The argv reading the IPv4 MTU of an interface, by index or by alias. */
export function interfaceMtuArgv(which: { index: number } | { alias: string }): string[] {
  const sel = "index" in which
    ? `-InterfaceIndex ${Math.trunc(which.index)}`
    : `-InterfaceAlias ${psQuote(checkWindowsIfname(which.alias, "adapter"))}`;
  return powershell(
    `Get-NetIPInterface ${sel} -AddressFamily IPv4 | ` +
      "Select-Object -Property InterfaceAlias,NlMtu | ConvertTo-Json",
  );
}

/** Parses {@link interfaceMtuArgv}'s output: the alias and MTU, or undefined. */
export function parseInterfaceMtu(output: string): { alias?: string; mtu: number } | undefined {
  const o = firstObject(output);
  const mtu = o?.NlMtu;
  if (typeof mtu !== "number" || !Number.isInteger(mtu) || mtu < 68) return undefined;
  return typeof o?.InterfaceAlias === "string" ? { alias: o.InterfaceAlias, mtu } : { mtu };
}

/** The argv listing an adapter's IPv4 addresses. */
export function interfaceAddressArgv(alias: string): string[] {
  return powershell(
    `Get-NetIPAddress -InterfaceAlias ${psQuote(checkWindowsIfname(alias, "adapter"))} ` +
      "-AddressFamily IPv4 | Select-Object -Property IPAddress,PrefixLength | ConvertTo-Json",
  );
}

/** Parses {@link interfaceAddressArgv}'s output: the first address with its prefix that is
 * not a link-local (APIPA, 169.254/16) one Windows gives an adapter while it has none. */
export function parseInterfaceAddress(output: string): Cidr | undefined {
  for (const o of psJsonRows(output) ?? []) {
    const addr = typeof o.IPAddress === "string" ? parseIPv4(o.IPAddress) : undefined;
    const prefix = o.PrefixLength;
    if (addr === undefined || typeof prefix !== "number" || prefix < 0 || prefix > 32) continue;
    if (addr >>> 16 === 0xa9fe) continue; // 169.254.0.0/16
    return { addr, prefix };
  }
  return undefined;
}

/** The argv of one ping check: COUNT echoes of `payload` bytes, DF as asked. */
export function pingArgv(target: string, payload: number, df: boolean): string[] {
  const n = Math.trunc(payload);
  if (!(n >= 0 && n <= 65500)) throw new RangeError(`ping payload ${payload} out of range`);
  return powershell(
    "$p = New-Object System.Net.NetworkInformation.Ping; " +
      `$o = New-Object System.Net.NetworkInformation.PingOptions(64, $${df}); ` +
      `$b = New-Object byte[] ${n}; ` +
      `$r = @(1..${COUNT} | ForEach-Object { ` +
      `if ($_ -gt 1) { Start-Sleep -Milliseconds 200 }; ` +
      // One echo that throws (no route yet) is a failed echo, not the end of the script.
      `try { $p.Send(${psQuote(target)}, 1000, $b, $o).Status.ToString() } ` +
      `catch { 'Exception' } }); ` +
      "ConvertTo-Json -InputObject $r",
  );
}

/** Parses {@link pingArgv}'s output (a JSON array of IPStatus names). */
export function parsePingStatuses(
  output: string,
): { sent: number; received: number; ok: boolean; error?: string } {
  const list = (psJsonList(output) ?? []).filter((s): s is string => typeof s === "string");
  const received = list.filter((s) => s === "Success").length;
  const failed = list.find((s) => s !== "Success");
  const out: { sent: number; received: number; ok: boolean; error?: string } = {
    sent: list.length,
    received,
    ok: received > 0,
  };
  if (failed !== undefined) out.error = failed;
  return out;
}

/** The device towards `dst` and its MTU (see the module docs); undefined when unknown. */
export async function windowsRouteDevice(
  runner: CommandRunner,
  dst: string,
): Promise<{ name: string; mtu?: number } | undefined> {
  const out = await ask(runner, findNetRouteArgv(dst));
  let found;
  try {
    found = out === undefined ? undefined : parseFindNetRoute(out);
  } catch {
    return undefined;
  }
  if (!found) return undefined;
  const m = await ask(runner, interfaceMtuArgv({ index: found.ifIndex }));
  const link = m === undefined ? undefined : parseInterfaceMtu(m);
  const name = found.alias ?? link?.alias ?? `interface ${found.ifIndex}`;
  return link ? { name, mtu: link.mtu } : { name };
}

/** The tunnel adapter's MTU and IPv4 address; undefined when there is no such adapter. */
export async function windowsTunLink(
  runner: CommandRunner,
  name: string,
): Promise<{ mtu: number; address?: Cidr } | undefined> {
  const m = await ask(runner, interfaceMtuArgv({ alias: name }));
  const link = m === undefined ? undefined : parseInterfaceMtu(m);
  if (!link) return undefined;
  const a = await ask(runner, interfaceAddressArgv(name));
  const address = a === undefined ? undefined : parseInterfaceAddress(a);
  return address ? { mtu: link.mtu, address } : { mtu: link.mtu };
}

/** One ping check through the tunnel, as `tunnel.ts`'s `pingCheck` on Linux. */
export async function windowsPingCheck(
  runner: CommandRunner,
  target: string,
  check: { packet: number; df: boolean; label: string },
): Promise<PingCheck> {
  const payload = Math.max(0, check.packet - IPV4_HEADER_BYTES - ICMP_ECHO_HEADER_BYTES);
  const out = await ask(runner, pingArgv(target, payload, check.df));
  const got = parsePingStatuses(out ?? "");
  if (out === undefined) got.error = "the PowerShell ping did not run";
  return { ...check, payload, ...got };
}
