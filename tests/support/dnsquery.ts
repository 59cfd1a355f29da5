/**
 * A DNS client for root tests (run inside the client namespace): `deno run -A dnsquery.ts
 * SERVER NAME` sends one A query, and the moment the answer arrives sends a datagram to each
 * answered address (as a game's first packet), then asks the kernel how it routes them (`ip
 * route get`), printing `{"addresses": [...], "sent": {"addr": "ok" | error}, "routes":
 * {"addr": "dev xvpn0 ..."}}`. With domain following, the route must be in before the answer
 * reaches the application: that is what this measures.
 *
 * @module
 */
const [server, name] = Deno.args;
const q = [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
for (const l of name!.split(".")) q.push(l.length, ...new TextEncoder().encode(l));
q.push(0, 0, 1, 0, 1);
const sock = Deno.listenDatagram({ hostname: "0.0.0.0", port: 0, transport: "udp" });
await sock.send(new Uint8Array(q), { hostname: server!, port: 53, transport: "udp" });
const timer = setTimeout(() => {
  console.log(JSON.stringify({ error: "no answer" }));
  Deno.exit(1);
}, 5000);
const [a] = await sock.receive();
clearTimeout(timer);
/** Skips a (possibly compressed) name at `i`; returns the offset after it. */
function skipName(b: Uint8Array, i: number): number {
  while (b[i] !== 0) {
    if ((b[i]! & 0xc0) === 0xc0) return i + 2;
    i += 1 + b[i]!;
  }
  return i + 1;
}
const addresses: string[] = [];
const count = (a[6]! << 8) | a[7]!;
let at = skipName(a, 12) + 4;
for (let k = 0; k < count && at < a.length; k++) {
  at = skipName(a, at);
  const type = (a[at]! << 8) | a[at + 1]!;
  const len = (a[at + 8]! << 8) | a[at + 9]!;
  if (type === 1 && len === 4) addresses.push([...a.subarray(at + 10, at + 14)].join("."));
  at += 10 + len;
}
// First, at once: a datagram to each address, as a game's first packet would go. The client
// namespace has no default route, so without a route into the tunnel this fails (ENETUNREACH).
const sent: Record<string, string> = {};
for (const addr of addresses) {
  try {
    await sock.send(new Uint8Array([0]), { hostname: addr, port: 9, transport: "udp" });
    sent[addr] = "ok";
  } catch (err) {
    sent[addr] = (err as Error).message;
  }
}
const routes: Record<string, string> = {};
for (const addr of addresses) {
  const out = await new Deno.Command("ip", { args: ["route", "get", addr] }).output();
  routes[addr] = new TextDecoder().decode(out.stdout).trim();
}
console.log(JSON.stringify({ addresses, sent, routes }));
Deno.exit(0);
