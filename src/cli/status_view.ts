/**
 * How `xvpn status` shows a status document as text (the `--watch` view is the same text, drawn
 * again in place). Pure: a document in, lines out.
 *
 * @module
 */

type Doc = Record<string, unknown>;

const BARS = "▁▂▃▄▅▆▇█";

/** A small RTT graph: one bar per probe, scaled between the window's min and max; `×` a loss. */
export function sparkline(values: readonly number[], width = 30): string {
  const v = values.slice(-width);
  const ok = v.filter((x) => x >= 0);
  if (!ok.length) return v.map(() => "×").join("");
  const lo = Math.min(...ok), hi = Math.max(...ok);
  return v.map((x) => {
    if (x < 0) return "×";
    const k = hi === lo ? 0 : Math.round(((x - lo) / (hi - lo)) * (BARS.length - 1));
    return BARS[k]!;
  }).join("");
}

/** `1.2 MiB` */
export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) {
    n /= 1024;
    u++;
  }
  return `${u === 0 ? n : n.toFixed(1)} ${units[u]}`;
}

/** `3h 02m`, `4m 10s`, `12s`; `-` for a negative age (never). */
export function age(ms: number): string {
  if (ms < 0) return "-";
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

const num = (v: unknown) => (typeof v === "number" ? v : -1);
const ms = (v: unknown) => (num(v) < 0 ? "-" : `${num(v).toFixed(1)} ms`);
const io = (v: unknown) => {
  const o = (v ?? {}) as Doc;
  return `${bytes(num(o.bytes))} in ${num(o.packets)} packets`;
};

function drops(d: unknown): string {
  const e = Object.entries((d ?? {}) as Record<string, number>);
  return e.length ? e.map(([k, n]) => `${k}=${n}`).join(" ") : "none";
}

/** The text view of a status document. */
export function formatStatus(doc: Doc): string {
  return doc.role === "server" ? formatServer(doc) : formatClient(doc);
}

function formatClient(d: Doc): string {
  const node = (d.node ?? {}) as Doc;
  const lines = [
    `xvpn client on ${d.tun}: ${d.state}` +
    (node.name ? ` to ${node.name}${node.region ? ` (${node.region})` : ""}` : "") +
    (node.endpoint ? ` at ${node.endpoint}` : ""),
    `  address ${d.address ?? "-"}${d.address6 ? ` ${d.address6}` : ""}, mtu ${d.mtu ?? "-"}, ` +
    `mode ${d.mode}, up ${age(num(d.uptime_s) * 1000)}, handshake ${
      age(num(d.handshake_age_ms))
    } ago`,
    `  received ${io(d.rx)}; sent ${io(d.tx)}`,
    `  reconnects ${d.dead_paths ?? 0}, handshakes ${d.handshakes ?? 0}` +
    (d.moves !== undefined ? `, node moves ${d.moves}` : ""),
  ];
  for (const p of (d.paths ?? []) as Doc[]) {
    lines.push(
      `  path ${p.index}${p.active ? "*" : ""} ${p.up ? "up" : "DOWN"}: rtt ${ms(p.rtt_ms)} ` +
        `(p50 ${ms(p.p50_ms)}, p99 ${ms(p.p99_ms)}), jitter ${ms(p.jitter_ms)}, loss ${
          num(p.loss_pct)
        }%  ${sparkline((p.recent ?? []) as number[])}`,
    );
  }
  const s = d.scheduler as Doc | undefined;
  if (s) {
    lines.push(
      `  scheduler: ${s.interactive} interactive / ${s.bulk} bulk sent; CE ${s.ce_marked}, ` +
        `CoDel ${s.codel}, overflow ${s.overflow}, shed ${s.shed}`,
    );
  }
  if (d.profiles) {
    lines.push(
      `  profiles ${
        (d.profiles as string[]).join(", ") || "none"
      }; ${d.learned_routes} routes learned from DNS`,
    );
  }
  lines.push(`  drops: ${drops(d.drops)}`);
  return lines.join("\n");
}

function formatServer(d: Doc): string {
  const clients = (d.clients ?? []) as Doc[];
  const lines = [
    `xvpn server on ${d.tun}: ${clients.length} clients connected (pool ${d.leased}/${d.pool_size}), ` +
    `${d.diag_sessions} diagnostic sessions, up ${age(num(d.uptime_s) * 1000)}`,
  ];
  for (const c of clients) {
    lines.push(
      `  ${c.name} ${c.address} from ${c.endpoint}: rtt ${ms(c.rtt_ms)}, jitter ${
        ms(c.jitter_ms)
      }, ` +
        `loss ${num(c.loss_pct)}%, handshake ${age(num(c.handshake_age_ms))} ago, ` +
        `rx ${bytes(num((c.rx as Doc).bytes))} tx ${bytes(num((c.tx as Doc).bytes))}`,
    );
  }
  const s = d.scheduler as Doc | undefined;
  if (s) {
    lines.push(
      `  scheduler: ${s.interactive} interactive / ${s.bulk} bulk sent; CE ${s.ce_marked}, ` +
        `CoDel ${s.codel}, overflow ${s.overflow}, shed ${s.shed}`,
    );
  }
  lines.push(`  drops: ${drops(d.drops)}`);
  return lines.join("\n");
}
