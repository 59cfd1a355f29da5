import { assert, assertEquals } from "../../../tests/support/assert.ts";
import { parseIPv4 } from "../../lib/ip.ts";
import { answerQuery, parseQuestion, RCODE_FORMERR, RCODE_NXDOMAIN } from "./message.ts";
import { parseRecords, serveStaticDns } from "./static_server.ts";

/** A query as a stub resolver sends it: id, RD, one question, an EDNS0 OPT record. */
function query(name: string, type = 1, id = 0x1234): Uint8Array {
  const labels = name.split(".").flatMap((l) => [l.length, ...new TextEncoder().encode(l)]);
  const opt = [0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0];
  return new Uint8Array([
    id >> 8,
    id & 0xff,
    0x01,
    0x00,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    1,
    ...labels,
    0,
    0,
    type,
    0,
    1,
    ...opt,
  ]);
}

const records = parseRecords(["game.test=10.201.2.2"]);

Deno.test("parseQuestion reads name, type and class, lower-cased", () => {
  const q = parseQuestion(query("Game.TEST"))!;
  assertEquals([q.id, q.name, q.type, q.cls], [0x1234, "game.test", 1, 1]);
  assertEquals(parseQuestion(new Uint8Array(5)), undefined);
});

Deno.test("answerQuery: A record for a known name, echoing id, RD and the question", () => {
  const r = answerQuery(query("game.test"), records)!;
  const v = new DataView(r.buffer);
  assertEquals(v.getUint16(0), 0x1234);
  assertEquals(v.getUint16(2), 0x8580); // QR AA RD RA, NOERROR
  assertEquals([v.getUint16(4), v.getUint16(6), v.getUint16(8), v.getUint16(10)], [1, 1, 0, 0]);
  assertEquals(v.getUint32(r.length - 4), parseIPv4("10.201.2.2"));
});

Deno.test("answerQuery: NXDOMAIN for unknown names, empty NOERROR for AAAA of a known one", () => {
  const nx = answerQuery(query("other.test"), records)!;
  assertEquals(nx[3]! & 0x0f, RCODE_NXDOMAIN);
  assertEquals(new DataView(nx.buffer).getUint16(6), 0);
  const aaaa = answerQuery(query("game.test", 28), records)!;
  assertEquals(aaaa[3]! & 0x0f, 0);
  assertEquals(new DataView(aaaa.buffer).getUint16(6), 0);
});

Deno.test("answerQuery: FORMERR for an unreadable question, silence for responses", () => {
  const bad = new Uint8Array([0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 200]);
  assertEquals(answerQuery(bad, records)![3]! & 0x0f, RCODE_FORMERR);
  const resp = answerQuery(query("game.test"), records)!;
  assertEquals(answerQuery(resp, records), undefined);
});

Deno.test("serveStaticDns answers Deno.resolveDns over loopback", async () => {
  const server = serveStaticDns("127.0.0.1", 0, records);
  try {
    const nameServer = { ipAddr: "127.0.0.1", port: server.addr.port };
    assertEquals(await Deno.resolveDns("game.test", "A", { nameServer }), ["10.201.2.2"]);
    let err: unknown;
    try {
      await Deno.resolveDns("nope.test", "A", { nameServer });
    } catch (e) {
      err = e;
    }
    assert(err instanceof Deno.errors.NotFound, `NXDOMAIN becomes NotFound, got ${err}`);
    assert(server.answered >= 2);
  } finally {
    await server.close();
  }
});
