/**
 * A tiny authoritative DNS server for root tests (run as a program inside a namespace):
 * `deno run -A dnsserver.ts '<json>'` where the JSON maps a lower-case question name to its
 * answer records: `{"play.example.com": [["A", "10.201.9.9", 30]], "cdn.example.com":
 * [["CNAME", "edge.cdn.test", 60], ["A", "10.201.9.10", 20]]}`. It answers every A query for a
 * known name with those records (owner of a CNAME's next record: the CNAME's target), NXDOMAIN
 * otherwise, and prints `ready` once bound to UDP port 53.
 *
 * @module
 */

type Rec = [type: "A" | "CNAME", value: string, ttl: number];

function encodeName(name: string): number[] {
  const out: number[] = [];
  for (const label of name.split(".").filter(Boolean)) {
    out.push(label.length, ...new TextEncoder().encode(label));
  }
  out.push(0);
  return out;
}

/** Reads the question name at offset 12 (no compression in queries); returns it and its end. */
function questionName(q: Uint8Array): [string, number] {
  const labels: string[] = [];
  let i = 12;
  while (i < q.length && q[i]! !== 0) {
    const n = q[i]!;
    labels.push(new TextDecoder().decode(q.subarray(i + 1, i + 1 + n)));
    i += 1 + n;
  }
  return [labels.join(".").toLowerCase(), i + 1];
}

function u16(n: number): number[] {
  return [(n >> 8) & 255, n & 255];
}
function u32(n: number): number[] {
  return [(n >>> 24) & 255, (n >> 16) & 255, (n >> 8) & 255, n & 255];
}

/** The answer to query `q` from `zone`. */
export function answer(q: Uint8Array, zone: Record<string, Rec[]>): Uint8Array {
  const [name, qEnd] = questionName(q);
  const recs = zone[name];
  const question = [...q.subarray(12, qEnd + 4)];
  const header = [q[0]!, q[1]!, 0x81, recs ? 0x80 : 0x83, ...u16(1), ...u16(recs?.length ?? 0)];
  const body: number[] = [...header, 0, 0, 0, 0, ...question];
  let owner = [0xc0, 12]; // the question name, compressed
  for (const [type, value, ttl] of recs ?? []) {
    if (type === "A") {
      body.push(...owner, ...u16(1), ...u16(1), ...u32(ttl), ...u16(4));
      body.push(...value.split(".").map(Number));
    } else {
      const target = encodeName(value);
      const at = body.length + owner.length + 10; // where the target name will start
      body.push(...owner, ...u16(5), ...u16(1), ...u32(ttl), ...u16(target.length), ...target);
      owner = [0xc0 | (at >> 8), at & 255];
    }
  }
  return new Uint8Array(body);
}

if (import.meta.main) {
  const zone = JSON.parse(Deno.args[0] ?? "{}") as Record<string, Rec[]>;
  const sock = Deno.listenDatagram({ hostname: "0.0.0.0", port: 53, transport: "udp" });
  console.log("ready");
  for await (const [q, from] of sock) {
    try {
      await sock.send(answer(q, zone), from);
    } catch { /* a test tool: ignore */ }
  }
}

/** An A query for `name` (id 0x1234), as a resolver sends it. */
export function query(name: string): Uint8Array {
  return new Uint8Array([
    0x12,
    0x34,
    1,
    0,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    ...encodeName(name),
    0,
    1,
    0,
    1,
  ]);
}
