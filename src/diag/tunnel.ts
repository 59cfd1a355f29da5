/**
 * The through-the-tunnel part of `xvpn diag mtu`: when `xvpn connect` is running, ICMP echoes
 * to the server's tunnel address with sizes around the TUN MTU, with DF and without, using the
 * system `ping` (root or ping_group_range is needed for `-i 0.2`; xvpn runs as root anyway).
 *
 * @module
 */
import type { CommandRunner } from "../io/command.ts";
import { IPV4_HEADER_BYTES } from "../core/mtu.ts";

/** ICMP echo header bytes: `ping -s N` sends IP packets of N + 28 bytes. */
const ICMP_ECHO_HEADER_BYTES = 8;
/** Echoes per check: one lost echo on a lossy path must not fail a check. */
const COUNT = 3;

/** One ping check. */
export interface PingCheck {
  /** Inner IP packet bytes (`ping -s` payload + 28). */
  packet: number;
  /** `ping -s` value. */
  payload: number;
  /** DF set (`-M do`) or not (`-M dont`: the kernel fragments when needed). */
  df: boolean;
  /** Why this size: "small", "full-size", "one byte over the TUN MTU". */
  label: string;
  /** Echoes sent and answered. */
  sent: number;
  received: number;
  /** At least one echo came back. */
  ok: boolean;
  /** The first error line ping printed, e.g. `Frag needed and DF set (mtu = 1460)`. */
  error?: string;
}

/** The checks for a TUN MTU: small, full-size with and without DF, and one byte over. */
export function plannedChecks(tunMtu: number): { packet: number; df: boolean; label: string }[] {
  return [
    { packet: 84, df: true, label: "small" },
    { packet: tunMtu, df: true, label: "full-size" },
    { packet: tunMtu, df: false, label: "full-size" },
    { packet: tunMtu + 1, df: false, label: "one byte over the TUN MTU, fragmented" },
  ];
}

/** Runs one ping check against `target`. */
export async function pingCheck(
  runner: CommandRunner,
  target: string,
  check: { packet: number; df: boolean; label: string },
): Promise<PingCheck> {
  const payload = check.packet - IPV4_HEADER_BYTES - ICMP_ECHO_HEADER_BYTES;
  // Not -q: it hides the error lines ("local error: message too long", "Frag needed").
  const argv = ["ping", "-n", "-c", String(COUNT), "-i", "0.2", "-W", "1", "-s"]
    .concat([String(payload), "-M", check.df ? "do" : "dont", target]);
  const r = await runner.run(argv, { allowFailure: true });
  return { ...check, payload, ...parsePing(r.stdout + "\n" + r.stderr) };
}

/** Reads ping's statistics line and its first error line. */
export function parsePing(
  text: string,
): { sent: number; received: number; ok: boolean; error?: string } {
  const stats = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(text);
  const sent = stats ? Number(stats[1]) : 0;
  const received = stats ? Number(stats[2]) : 0;
  const errLine = text.split("\n").map((l) => l.trim()).find((l) =>
    /message too long|Frag needed|unreachable|ping: /i.test(l)
  );
  const out: { sent: number; received: number; ok: boolean; error?: string } = {
    sent,
    received,
    ok: received > 0,
  };
  if (errLine) out.error = errLine.replace(/^From \S+ (icmp_seq=\d+ )?/, "");
  return out;
}
