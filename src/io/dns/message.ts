/**
 * Just enough of the DNS wire format (RFC 1035) to answer A queries from a fixed table: read a
 * query's question, build a response. Used by the small server the tests and the lab run on the
 * VPN server's tunnel address.
 *
 * @module
 */

/** Record type A (IPv4 address). */
export const TYPE_A = 1;
/** Class IN. */
export const CLASS_IN = 1;
/** Response code: no error. */
export const RCODE_NOERROR = 0;
/** Response code: the query could not be understood. */
export const RCODE_FORMERR = 1;
/** Response code: the name does not exist. */
export const RCODE_NXDOMAIN = 3;

/** The parts of a query an answer needs. */
export interface Question {
  /** Transaction id, echoed in the response. */
  id: number;
  /** The query's flags word (opcode and RD are echoed). */
  flags: number;
  /** Lower-case name without the trailing dot, e.g. `game.test`. */
  name: string;
  /** Query type (1 = A, 28 = AAAA, ...). */
  type: number;
  /** Query class (1 = IN). */
  cls: number;
  /** The question section's bytes, copied into the response as they came. */
  raw: Uint8Array;
}

/** Reads the first question of a query; undefined when the bytes are not a query we can read. */
export function parseQuestion(msg: Uint8Array): Question | undefined {
  if (msg.length < 12) return undefined;
  const v = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
  const flags = v.getUint16(2);
  if (flags & 0x8000 || v.getUint16(4) < 1) return undefined; // a response, or no question
  const labels: string[] = [];
  let at = 12;
  for (;;) {
    const len = msg[at];
    if (len === undefined || len > 63) return undefined; // truncated, or a pointer: not in queries
    at += 1;
    if (len === 0) break;
    if (at + len > msg.length) return undefined;
    labels.push(new TextDecoder().decode(msg.subarray(at, at + len)).toLowerCase());
    at += len;
  }
  if (at + 4 > msg.length) return undefined;
  return {
    id: v.getUint16(0),
    flags,
    name: labels.join("."),
    type: v.getUint16(at),
    cls: v.getUint16(at + 2),
    raw: msg.slice(12, at + 4),
  };
}

/**
 * A response to `q`: authoritative, recursion available, with the query's opcode and RD bit,
 * `rcode`, and one A record per address in `answers` (TTL `ttl` seconds).
 */
export function buildResponse(
  q: Question,
  rcode: number,
  answers: readonly number[] = [],
  ttl = 60,
): Uint8Array {
  const out = new Uint8Array(12 + q.raw.length + answers.length * 16);
  const v = new DataView(out.buffer);
  v.setUint16(0, q.id);
  // QR | opcode (echoed) | AA | RD (echoed) | RA | rcode
  v.setUint16(2, 0x8000 | (q.flags & 0x7800) | 0x0400 | (q.flags & 0x0100) | 0x0080 | rcode);
  v.setUint16(4, 1);
  v.setUint16(6, answers.length);
  out.set(q.raw, 12);
  let at = 12 + q.raw.length;
  for (const a of answers) {
    v.setUint16(at, 0xc00c); // name: pointer to the question's name
    v.setUint16(at + 2, TYPE_A);
    v.setUint16(at + 4, CLASS_IN);
    v.setUint32(at + 6, ttl);
    v.setUint16(at + 10, 4);
    v.setUint32(at + 12, a >>> 0);
    at += 16;
  }
  return out;
}

/**
 * The answer to a query from a table of A records: the addresses for a known name, an empty
 * NOERROR answer for another type of a known name (the name exists, just has no such record),
 * NXDOMAIN for an unknown name, FORMERR for a query whose question cannot be read.
 */
export function answerQuery(
  msg: Uint8Array,
  records: ReadonlyMap<string, readonly number[]>,
): Uint8Array | undefined {
  const q = parseQuestion(msg);
  if (!q) {
    if (msg.length < 12 || msg[2]! & 0x80) return undefined; // too short to answer, or a response
    const v = new DataView(msg.buffer, msg.byteOffset, 12);
    const out = new Uint8Array(12);
    const o = new DataView(out.buffer);
    o.setUint16(0, v.getUint16(0));
    o.setUint16(2, 0x8000 | (v.getUint16(2) & 0x7900) | RCODE_FORMERR);
    return out;
  }
  const addrs = records.get(q.name);
  if (!addrs) return buildResponse(q, RCODE_NXDOMAIN);
  const wanted = q.type === TYPE_A && q.cls === CLASS_IN;
  return buildResponse(q, RCODE_NOERROR, wanted ? addrs : []);
}
