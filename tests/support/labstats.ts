/**
 * Figures the hostile-input root tests read from a running lab: a process's memory from /proc,
 * the kernel's UDP counters inside a namespace, and the drop counters an xvpn process logs when
 * it stops (`Dropped datagrams by reason: bad_mac1=3 replay=1`).
 *
 * @module
 */
import type { Lab } from "../../src/demo/lab.ts";

/** Resident and peak resident memory of a process, in KiB (VmRSS, VmHWM). */
export async function memoryKiB(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const kib = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { rss: kib("VmRSS"), peak: kib("VmHWM") };
}

/** The kernel's UDP counters in `host`'s namespace (/proc/net/snmp `Udp:` rows). */
export async function udpCounters(lab: Lab, host: string): Promise<Record<string, number>> {
  const r = await lab.topo.exec(host, ["cat", "/proc/net/snmp"]);
  const rows = r.stdout.split("\n").filter((l) => l.startsWith("Udp:"));
  const names = rows[0]?.split(/\s+/).slice(1) ?? [];
  const values = rows[1]?.split(/\s+/).slice(1) ?? [];
  return Object.fromEntries(names.map((n, i) => [n, Number(values[i])]));
}

/** The drop counters from an xvpn log (the last `Dropped datagrams by reason` line). */
export function dropsFromLog(log: string): Record<string, number> {
  const lines = [...log.matchAll(/Dropped datagrams by reason: (.*)/g)];
  const last = lines.at(-1)?.[1] ?? "";
  const out: Record<string, number> = {};
  for (const m of last.matchAll(/([a-z0-9_]+)=(\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
}

/** Sleeps `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Waits until `dst` is routed through xvpn0 in `host` (the client applies its pushed routes
 * just after its address, so the address alone is not enough before a ping). */
export async function waitRoute(lab: Lab, host: string, dst: string, timeoutMs = 10_000) {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const r = await lab.topo.exec(host, ["ip", "route", "get", dst], { allowFailure: true });
    if (r.stdout.includes("dev xvpn0")) return;
    if (performance.now() > deadline) throw new Error(`${dst} is not routed via xvpn0 in ${host}`);
    await sleep(50);
  }
}
