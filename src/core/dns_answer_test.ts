import { deepStrictEqual as eq, ok } from "node:assert/strict";
import { parseIPv4 } from "../lib/ip.ts";
import { parseIPv6 } from "../lib/ip6.ts";
import {
  type DnsAnswer,
  DomainMatcher,
  followedAddresses,
  followKey4,
  followKey6,
  FollowTable,
  isDnsResponse,
  MAX_FOLLOW_TTL_S,
  parseDnsAnswer,
} from "./dns_answer.ts";

// Hand-built packets: a DNS message is a list of byte runs, so compression pointers can point
// at offsets worked out by hand (the question name always starts at offset 12).

/** A name as labels, ending with the root label unless `tail` (a pointer) ends it. */
function name(text: string, tail: number[] = [0]): number[] {
  const out: number[] = [];
  for (const l of text ? text.split(".") : []) {
    out.push(
      l.length,
      ...[...l].map((c) => c.charCodeAt(0)),
    );
  }
  return [...out, ...tail];
}
const ptr = (off: number) => [0xc0 | (off >> 8), off & 255];
const u16 = (v: number) => [v >> 8, v & 255];
const u32 = (v: number) => [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
const ip4 = (s: string) => u32(parseIPv4(s)!);
const ip6 = (s: string) => [...parseIPv6(s)!];

interface Rr {
  owner: number[];
  type: number;
  ttl: number;
  rdata: number[];
  cls?: number;
}

/** A DNS response: header, one question, answers. */
function dns(question: number[], answers: Rr[], opts: { flags?: number; qtype?: number } = {}) {
  const out = [...u16(0x1234), ...u16(opts.flags ?? 0x8180), ...u16(1), ...u16(answers.length)];
  out.push(...u16(0), ...u16(0), ...question, ...u16(opts.qtype ?? 1), ...u16(1));
  for (const a of answers) {
    out.push(...a.owner, ...u16(a.type), ...u16(a.cls ?? 1), ...u32(a.ttl));
    out.push(...u16(a.rdata.length), ...a.rdata);
  }
  return out;
}

/** IPv4 + UDP around `payload`, from port `sport`. */
function v4(payload: number[], sport = 53, opts: { proto?: number; frag?: number } = {}) {
  const udp = [...u16(sport), ...u16(40000), ...u16(8 + payload.length), 0, 0, ...payload];
  const total = 20 + udp.length;
  const ip = [0x45, 0, ...u16(total), 0, 1, ...u16(opts.frag ?? 0x4000), 64, opts.proto ?? 17];
  ip.push(0, 0, ...ip4("198.51.100.53"), ...ip4("10.77.0.2"));
  return new Uint8Array([...ip, ...udp]);
}

/** IPv6 + (optional extension headers) + UDP around `payload`. */
function v6(payload: number[], sport = 53, ext: number[][] = []) {
  const udp = [...u16(sport), ...u16(40000), ...u16(8 + payload.length), 0, 0, ...payload];
  // Each extension header given as [type, ...8n bytes with the next header patched in].
  const chain: number[] = [];
  let first = 17;
  for (let i = ext.length - 1; i >= 0; i--) {
    const [type, ...body] = ext[i]!;
    body[0] = first;
    chain.unshift(...body);
    first = type!;
  }
  const plen = chain.length + udp.length;
  const ip = [0x60, 0, 0, 0, ...u16(plen), first, 64, ...ip6("2001:db8::53"), ...ip6("fd00::2")];
  return new Uint8Array([...ip, ...chain, ...udp]);
}

const Q = name("Login.Example.COM"); // offsets 12..30 in the message

Deno.test("dns: an A answer over IPv4 with a pointer to the question", () => {
  const pkt = v4(dns(Q, [{ owner: ptr(12), type: 1, ttl: 300, rdata: ip4("192.0.2.10") }]));
  ok(isDnsResponse(pkt, pkt.length));
  eq(
    parseDnsAnswer(pkt, pkt.length),
    {
      question: "login.example.com",
      records: [{ name: "login.example.com", type: "A", ttl: 300, addr: parseIPv4("192.0.2.10") }],
    } satisfies DnsAnswer,
  );
  // Bytes past the IP packet's own length (padding, a reused buffer) are ignored.
  const padded = new Uint8Array(pkt.length + 64);
  padded.set(pkt);
  eq(parseDnsAnswer(padded, padded.length)?.records.length, 1);
});

Deno.test("dns: a CNAME chain is followed from the question, with the least TTL", () => {
  // Message offsets: question name at 12 ("login" 12, "example" 18, "com" 26, root 30),
  // qtype/qclass 31..34, first answer at 35.
  const a1 = { owner: ptr(12), type: 5, ttl: 600, rdata: name("edge", ptr(18)) }; // edge.example.com
  // a1: owner 35-36, fixed 37-46, rdata at 47: "edge" label 47..51, pointer 52-53.
  const a2 = { owner: ptr(47), type: 5, ttl: 120, rdata: name("lb.cdn.example.net") };
  // a2: owner 54-55, fixed 56-65, rdata 66.. ("lb" 66, "cdn" 69, "example" 73, "net" 81, root 85)
  const a3 = { owner: ptr(66), type: 1, ttl: 30, rdata: ip4("198.51.100.7") };
  const a4 = { owner: ptr(66), type: 1, ttl: 900, rdata: ip4("198.51.100.8") };
  const planted = {
    owner: name("evil.example.org"),
    type: 1,
    ttl: 900,
    rdata: ip4("203.0.113.66"),
  };
  const pkt = v4(dns(Q, [a1, a2, a3, a4, planted]));
  const answer = parseDnsAnswer(pkt, pkt.length)!;
  eq(answer.records.map((r) => [r.name, r.type, r.target ?? r.addr]), [
    ["login.example.com", "CNAME", "edge.example.com"],
    ["edge.example.com", "CNAME", "lb.cdn.example.net"],
    ["lb.cdn.example.net", "A", parseIPv4("198.51.100.7")],
    ["lb.cdn.example.net", "A", parseIPv4("198.51.100.8")],
    ["evil.example.org", "A", parseIPv4("203.0.113.66")],
  ]);
  const followed = followedAddresses(answer, new DomainMatcher(["example.com"]));
  eq(followed, [
    { addr: parseIPv4("198.51.100.7"), ttl: 30, name: "lb.cdn.example.net" },
    { addr: parseIPv4("198.51.100.8"), ttl: 120, name: "lb.cdn.example.net" },
  ]);
  // A profile naming only the CDN at the end of the chain matches too; an unrelated one not.
  eq(followedAddresses(answer, new DomainMatcher(["*.cdn.example.net"])).length, 2);
  eq(followedAddresses(answer, new DomainMatcher(["example.org"])), []);
});

Deno.test("dns: AAAA over IPv6, past a destination options header", () => {
  const q = name("game.example.com");
  const pkt = v6(
    dns(q, [{ owner: ptr(12), type: 28, ttl: 60, rdata: ip6("2001:db8::7") }], { qtype: 28 }),
    53,
    [[60, 0, 0, 1, 4, 0, 0, 0, 0]], // type 60, then next header (patched), length 0, PadN
  );
  ok(isDnsResponse(pkt, pkt.length));
  const answer = parseDnsAnswer(pkt, pkt.length)!;
  eq(answer.records, [{
    name: "game.example.com",
    type: "AAAA",
    ttl: 60,
    addr6: parseIPv6("2001:db8::7"),
  }]);
  eq(followedAddresses(answer, new DomainMatcher(["Example.com."])), [
    { addr6: parseIPv6("2001:db8::7"), ttl: 60, name: "game.example.com" },
  ]);
});

Deno.test("dns: a truncated message, at any byte, gives undefined and never throws", () => {
  const msg = dns(Q, [
    { owner: ptr(12), type: 5, ttl: 600, rdata: name("edge", ptr(18)) },
    { owner: ptr(47), type: 1, ttl: 30, rdata: ip4("198.51.100.7") },
  ]);
  for (let cut = 0; cut < msg.length; cut++) {
    const pkt = v4(msg.slice(0, cut));
    eq(parseDnsAnswer(pkt, pkt.length), undefined, `cut at ${cut}`);
  }
  // A packet cut shorter than its IP header says is not a packet at all.
  const whole = v4(msg);
  for (let len = 0; len < whole.length; len++) {
    eq(isDnsResponse(whole, len), false, `len ${len}`);
    eq(parseDnsAnswer(whole, len), undefined);
  }
  eq(parseDnsAnswer(whole, whole.length)?.records.length, 2);
});

Deno.test("dns: pointer loops, forward pointers and bad lengths are malformed", () => {
  const loop = [1, 0x61, ...ptr(12)]; // "a" then a pointer back to itself: a.a.a.a...
  eq(parseDnsAnswer(v4(dns(loop, [])), 999), undefined);
  eq(parseDnsAnswer(v4(dns(ptr(12), [])), 999), undefined); // points at itself
  eq(parseDnsAnswer(v4(dns(ptr(40), [])), 999), undefined); // points forward
  // An answer whose owner points into the question is fine; one pointing past the end is not.
  const beyond = { owner: ptr(0x3fff), type: 1, ttl: 1, rdata: ip4("192.0.2.1") };
  eq(parseDnsAnswer(v4(dns(Q, [beyond])), 999), undefined);
  const shortA = { owner: ptr(12), type: 1, ttl: 1, rdata: [192, 0, 2] };
  eq(parseDnsAnswer(v4(dns(Q, [shortA])), 999), undefined);
  // A CNAME whose name overruns its rdata length.
  const overrun = { owner: ptr(12), type: 5, ttl: 1, rdata: [4, 0x65, 0x64] };
  eq(parseDnsAnswer(v4(dns(Q, [overrun])), 999), undefined);
  // A label holding a dot is escaped, so it cannot pass for two labels.
  const dotted = [9, ...[..."x.example"].map((c) => c.charCodeAt(0)), 3, 0x63, 0x6f, 0x6d, 0];
  const answer = parseDnsAnswer(
    v4(dns(dotted, [{ owner: ptr(12), type: 1, ttl: 5, rdata: ip4("192.0.2.1") }])),
    999,
  )!;
  eq(answer.question, "x\\046example.com");
  eq(followedAddresses(answer, new DomainMatcher(["example.com"])), []);
});

Deno.test("dns: isDnsResponse refuses queries, other ports, TCP and fragments", () => {
  const msg = dns(Q, [{ owner: ptr(12), type: 1, ttl: 300, rdata: ip4("192.0.2.10") }]);
  eq(isDnsResponse(v4(msg), 999), true);
  eq(isDnsResponse(v4(dns(Q, [], { flags: 0x0100 })), 999), false); // QR = 0
  eq(isDnsResponse(v4(msg, 5353), 999), false);
  eq(isDnsResponse(v4(msg, 53, { proto: 6 }), 999), false);
  eq(isDnsResponse(v4(msg, 53, { frag: 0x2000 }), 999), false); // more fragments
  eq(isDnsResponse(v4(msg, 53, { frag: 0x0010 }), 999), false); // a later fragment
  eq(isDnsResponse(v6(msg), 999), true);
  eq(isDnsResponse(v6(msg, 53, [[44, 0, 0, 0, 0, 0, 0, 0, 1]]), 999), false); // fragment header
  eq(isDnsResponse(new Uint8Array([0x45]), 1), false);
  eq(isDnsResponse(new Uint8Array(0), 0), false);
  // Only class IN records are kept; a TTL with the top bit set counts as 0.
  const chaos = { owner: ptr(12), type: 1, ttl: 5, rdata: ip4("192.0.2.1"), cls: 3 };
  const big = { owner: ptr(12), type: 1, ttl: 0x80000000, rdata: ip4("192.0.2.2") };
  eq(parseDnsAnswer(v4(dns(Q, [chaos, big])), 999)!.records.map((r) => r.ttl), [0]);
});

Deno.test("dns: CNAME loops end; records off the chain are not answers", () => {
  const answer: DnsAnswer = {
    question: "a.example.com",
    records: [
      { name: "a.example.com", type: "CNAME", ttl: 50, target: "b.example.com" },
      { name: "b.example.com", type: "CNAME", ttl: 40, target: "a.example.com" },
      { name: "b.example.com", type: "A", ttl: 300, addr: 1 },
      { name: "c.example.com", type: "A", ttl: 300, addr: 2 },
    ],
  };
  eq(followedAddresses(answer, new DomainMatcher(["example.com"])), [
    { addr: 1, ttl: 50, name: "b.example.com" }, // the TTL of a -> b; b -> a is not on the way
  ]);
});

Deno.test("dns: DomainMatcher matches on label boundaries, ignoring case", () => {
  const m = new DomainMatcher(["Example.com", "*.game.test", "", "cdn.example.net."]);
  eq(m.size, 3);
  for (
    const n of ["example.com", "A.EXAMPLE.COM.", "x.y.game.test", "game.test", "cdn.example.net"]
  ) {
    ok(m.matches(n), n);
  }
  for (const n of ["badexample.com", "example.co", "com", "", "example.net", "xcdn.example.net"]) {
    ok(!m.matches(n), n);
  }
  ok(!new DomainMatcher([]).matches("example.com"));
});

Deno.test("dns: FollowTable learns, extends, caps, and expires on TTL and idleness both", () => {
  const t = new FollowTable(2);
  const a = followKey4(parseIPv4("192.0.2.1")!), b = followKey6(parseIPv6("2001:db8::1")!);
  eq(b, "20010db8000000000000000000000001");
  eq(t.learn(a, 10, 0), true);
  eq(t.learn(a, 30, 1000), false); // known: TTL extended to 31 s
  eq(t.learn(b, 5, 1000), true);
  eq(t.learn(followKey4(3), 5, 1000), false); // full
  eq([t.size, t.refused, t.has(followKey4(3))], [2, 1, false]);
  eq(t.expired(10_000, 5000), [b]); // b's TTL (6 s) passed and idle 9 s; a lives to 31 s
  eq(t.touch(a, 30_000), true);
  eq(t.expired(32_000, 5000), []); // TTL passed, but traffic 2 s ago
  eq(t.expired(35_000, 5000), [a]);
  eq([t.size, t.touch(a, 36_000)], [0, false]);
  // TTLs are capped at a day.
  t.learn(a, 10 * MAX_FOLLOW_TTL_S, 0);
  eq(t.expired(MAX_FOLLOW_TTL_S * 1000, 0), [a]);
});
