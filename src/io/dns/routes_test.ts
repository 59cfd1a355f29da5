import { assertEquals } from "../../../tests/support/assert.ts";
import { type Cidr, parseCidr, parseIPv4 } from "../../lib/ip.ts";
import { dnsHostRoutes } from "./routes.ts";

const ip = (t: string): number => parseIPv4(t)!;
const cidr = (t: string): Cidr => parseCidr(t)!;

Deno.test("dnsHostRoutes: a /32 per server outside the tunnel's routes, once each", () => {
  const r = dnsHostRoutes([ip("8.8.8.8"), ip("10.77.0.1"), ip("10.201.2.53"), ip("8.8.8.8")], {
    address: cidr("10.77.0.2/24"),
    routes: [cidr("10.201.2.0/24")],
    endpoint: ip("203.0.113.5"),
  });
  assertEquals(r.routes, [cidr("8.8.8.8/32")]);
  assertEquals(r.skipped.map((s) => s.why), [
    "10.77.0.1 is already routed into the tunnel",
    "10.201.2.53 is already routed into the tunnel",
  ]);
});

Deno.test("dnsHostRoutes: never routes the VPN server itself into the tunnel", () => {
  const r = dnsHostRoutes([ip("203.0.113.5")], {
    address: cidr("10.77.0.2/24"),
    routes: [],
    endpoint: ip("203.0.113.5"),
  });
  assertEquals(r.routes, []);
  assertEquals(r.skipped, [{
    server: ip("203.0.113.5"),
    why: "203.0.113.5 is the VPN server itself and must stay outside the tunnel",
  }]);
});
