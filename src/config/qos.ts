/**
 * Config settings of the flow scheduler, shared by the server and client configs:
 *
 * ```yaml
 * shaping: { up: 20mbit, down: 100mbit, overhead: 38 }   # client only: the link's real rates
 * priority:                                               # explicit classes, served first
 *   - { ports: [3074, "27015-27030"], protocol: udp }
 *   - { cidrs: [203.0.113.0/24] }
 *   - { dscp: [ef] }
 * game_dscp: af41                                         # outer DSCP of interactive packets
 * ```
 *
 * @module
 */
import { type Cidr, formatCidr } from "../lib/ip.ts";
import type { PriorityRule } from "../core/sched/classify.ts";
import { cidr, int, list, opt, parser, readMap, Refusal, struct, text } from "./schema.ts";

/** DSCP names (RFC 2474 class selectors, RFC 2597 AF, RFC 3246 EF, RFC 5865 VOICE-ADMIT). */
export const DSCP_NAMES: Readonly<Record<string, number>> = {
  cs0: 0,
  cs1: 8,
  cs2: 16,
  cs3: 24,
  cs4: 32,
  cs5: 40,
  cs6: 48,
  cs7: 56,
  af11: 10,
  af12: 12,
  af13: 14,
  af21: 18,
  af22: 20,
  af23: 22,
  af31: 26,
  af32: 28,
  af33: 30,
  af41: 34,
  af42: 36,
  af43: 38,
  ef: 46,
  va: 44,
};

/** The outer DSCP of interactive packets by default: AF41 (RFC 4594 multimedia conferencing:
 * low loss, low delay), which Wi-Fi WMM maps to its video access category, ahead of best effort. */
export const DEFAULT_GAME_DSCP = DSCP_NAMES.af41!;

const DSCP_EXPECTED = "a DSCP: a name (af41, cs4, ef, ...) or a number 0-63";

/** The DSCP a name or number stands for, or undefined. */
function dscpOf(s: string): number | undefined {
  const name = DSCP_NAMES[s.toLowerCase()];
  if (name !== undefined) return name;
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 63 ? n : undefined;
}

/** A DSCP by name or number. */
export const dscp = text<number>(DSCP_EXPECTED, dscpOf);

/** `game_dscp`: a DSCP, or `off` for none. */
export const gameDscp = text<number>(
  `${DSCP_EXPECTED}, or off`,
  (s) => s.toLowerCase() === "off" ? 0 : dscpOf(s),
);

const RATE_EXPECTED = "a rate in bits per second such as 20mbit, 950kbit or 1gbit";

/** A link rate: `20mbit`, `950kbit`, `1gbit`, `1.5mbit`, or plain bits per second. */
export const rate = text<number>(RATE_EXPECTED, (s) => {
  const m = /^(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)?$/i.exec(s.trim());
  if (!m) {
    if (/bps$/i.test(s)) {
      return new Refusal(
        `expected ${RATE_EXPECTED}, got "${s}" (write bits: ${
          s.replace(/ps$/i, "it")
        } is bits, bps is ambiguous)`,
      );
    }
    return undefined;
  }
  const unit = (m[2] ?? "bit").toLowerCase();
  const mult = unit === "gbit" ? 1e9 : unit === "mbit" ? 1e6 : unit === "kbit" ? 1e3 : 1;
  const bps = Math.round(Number(m[1]) * mult);
  if (bps < 64_000) return new Refusal(`expected ${RATE_EXPECTED} of at least 64kbit, got ${s}`);
  if (bps > 100e9) return new Refusal(`expected ${RATE_EXPECTED} of at most 100gbit, got ${s}`);
  return bps;
});

const PORTS_EXPECTED = 'a port (3074) or a range ("27015-27030")';

/** A port or an inclusive range. */
const portRange = text<[number, number]>(PORTS_EXPECTED, (s) => {
  const m = /^(\d{1,5})(?:\s*-\s*(\d{1,5}))?$/.exec(s.trim());
  if (!m) return undefined;
  const lo = Number(m[1]), hi = Number(m[2] ?? m[1]);
  if (lo < 1 || hi > 65535 || lo > hi) return new Refusal(`expected ${PORTS_EXPECTED}, got ${s}`);
  return [lo, hi];
});

const PROTOCOLS: Readonly<Record<string, number>> = { tcp: 6, udp: 17, icmp: 1 };
const protocol = text<number>("udp, tcp or icmp", (s) => PROTOCOLS[s.toLowerCase()]);

const RULE_EXPECTED = "a mapping with ports, cidrs, dscp and/or protocol";

/** One `priority` rule: every field given must match. */
const rule = parser<PriorityRule>(RULE_EXPECTED, (at) => {
  const before = at.ctx.issues.length;
  const m = readMap(at, {
    ports: opt(list(`a list of ports, each ${PORTS_EXPECTED}`, portRange, (p) => p.join("-"))),
    cidrs: opt(list("a list of IPv4 CIDRs", cidr(), (c: Cidr) => formatCidr(c))),
    dscp: opt(list(`a list of DSCPs, each ${DSCP_EXPECTED}`, dscp, String)),
    protocol: opt(protocol),
  }, RULE_EXPECTED);
  if (!m || at.ctx.issues.length !== before) return undefined;
  const v = m.values;
  const r: PriorityRule = {};
  if (v.ports) r.ports = v.ports;
  if (v.cidrs) r.cidrs = v.cidrs;
  if (v.dscp) r.dscp = v.dscp;
  if (v.protocol !== undefined) r.protocols = [v.protocol];
  if (Object.keys(r).length === 0) {
    at.ctx.report(
      at.offset,
      at.path,
      `expected ${RULE_EXPECTED}, got an empty rule (it would match everything)`,
    );
    return undefined;
  }
  return r;
});

/** `priority`: up to 32 rules. */
export const priorityField = opt(
  parser<PriorityRule[]>(`a list of up to 32 rules, each ${RULE_EXPECTED}`, (at) => {
    const before = at.ctx.issues.length;
    const rules = list(`a list of rules, each ${RULE_EXPECTED}`, rule, (r) => JSON.stringify(r))(
      at,
    );
    if (at.ctx.issues.length !== before || !rules) return undefined;
    if (rules.length > 32) {
      at.ctx.report(at.offset, at.path, `expected at most 32 rules, got ${rules.length}`);
      return undefined;
    }
    return rules;
  }),
);

/** The client's `shaping`. */
export const shapingField = opt(
  struct(
    { up: opt(rate), down: opt(rate), overhead: opt(int(0, 256)) },
    "a mapping with up and/or down (rates such as 20mbit) and overhead (bytes per packet)",
  ),
);

/** The link overhead the shaper counts by default: Ethernet's 14-byte header, 4-byte FCS,
 * 8-byte preamble and 12-byte gap (cake's `ethernet` keyword). */
export const DEFAULT_LINK_OVERHEAD = 38;
