import { assert, assertEquals } from "../../tests/support/assert.ts";
import { formatCidr, parseCidr, parseIPv4 } from "../lib/ip.ts";
import {
  acceptedSources,
  applyPolicy,
  DEFAULT_POLICY,
  type LocalNetwork,
  MIN_KEEPALIVE_MS,
  SourceFilter,
} from "./policy.ts";
import type { SessionConfig } from "./control.ts";

const c = (s: string) => parseCidr(s)!;
const ip = (s: string) => parseIPv4(s)!;

/** A client on 192.168.77.0/24 behind 192.168.77.1, on a 1500-byte link. */
const LOCAL: LocalNetwork = {
  subnets: [c("192.168.77.0/24"), c("10.201.1.0/24")],
  gateways: [ip("192.168.77.1"), ip("100.64.0.1")], // the second one on-link, outside the LAN
  underlayMtu: 1500,
};

/** What the audit's hostile server pushed. */
const HOSTILE: SessionConfig = {
  address: c("10.7.0.2/24"),
  serverAddress: ip("10.7.0.1"),
  mtu: 65535,
  routes: [
    c("0.0.0.0/0"),
    c("192.168.77.0/24"),
    c("192.168.77.128/25"),
    c("192.168.77.1/32"),
    c("100.64.0.1/32"),
    c("198.51.100.0/24"),
    c("0.0.0.0/1"),
    c("128.0.0.0/1"),
    c("192.168.0.0/16"),
  ],
  dns: [ip("10.7.0.1")],
  keepaliveMs: 100,
  routes6: [],
  dns6: [],
};

Deno.test("applyPolicy() by default: full tunnel and DNS kept, LAN and gateway routes refused", () => {
  const { config, refused } = applyPolicy(HOSTILE, DEFAULT_POLICY, LOCAL);
  assertEquals(config.routes.map(formatCidr), [
    "0.0.0.0/0",
    "198.51.100.0/24",
    "0.0.0.0/1", // the /1 halves leave the connected routes more specific
    "128.0.0.0/1",
    "192.168.0.0/16", // covers the LAN without lying inside it: the LAN route stays more specific
  ]);
  assertEquals(config.mtu, 1440, "capped by the underlay: 1500 - 60");
  assertEquals(config.keepaliveMs, MIN_KEEPALIVE_MS);
  assertEquals(config.dns, [ip("10.7.0.1")]);
  assertEquals(refused.length, 6, refused.join("\n"));
  assert(refused.some((r) => r.includes("192.168.77.0/24") && r.includes("connected subnet")));
  assert(refused.some((r) => r.includes("192.168.77.1/32")));
  assert(refused.some((r) => r.includes("100.64.0.1/32") && r.includes("the gateway")));
  assert(refused.some((r) => r.startsWith("MTU 65535: capped at 1440")));
  assert(refused.some((r) => r.startsWith("keepalive 100 ms")));
});

Deno.test("applyPolicy() config switches: no full tunnel, local routes, accept_routes", () => {
  const strict = applyPolicy(HOSTILE, { ...DEFAULT_POLICY, fullTunnel: false }, LOCAL);
  assert(!strict.config.routes.some((r) => r.prefix === 0));
  const lax = applyPolicy(HOSTILE, { ...DEFAULT_POLICY, localRoutes: true }, LOCAL);
  assertEquals(lax.config.routes.length, HOSTILE.routes.length);
  const only = applyPolicy(
    HOSTILE,
    { ...DEFAULT_POLICY, acceptRoutes: [c("198.51.100.0/24")] },
    LOCAL,
  );
  assertEquals(only.config.routes.map(formatCidr), ["198.51.100.0/24"]);
  // Nothing known of the local network: nothing refused as local, no MTU cap.
  const blind = applyPolicy(HOSTILE, DEFAULT_POLICY, { subnets: [], gateways: [] });
  assertEquals(blind.config.mtu, 65535);
  assertEquals(blind.config.routes.length, HOSTILE.routes.length);
});

Deno.test("SourceFilter accepts only sources the client routes into the tunnel", () => {
  const f = new SourceFilter();
  assert(!f.accepts(ip("198.51.100.7")), "nothing before a config");
  const { config } = applyPolicy(
    { ...HOSTILE, routes: [c("198.51.100.0/24")] },
    DEFAULT_POLICY,
    LOCAL,
  );
  f.set(acceptedSources(config, [c("203.0.113.0/24")]));
  assert(f.accepts(ip("198.51.100.7")), "a pushed route");
  assert(f.accepts(ip("203.0.113.9")), "the client's own route");
  assert(f.accepts(ip("10.7.0.1")), "the tunnel subnet");
  assert(!f.accepts(ip("192.168.77.10")), "the client's own LAN is not the tunnel's");
  assert(!f.accepts(ip("8.8.8.8")));
  f.set(acceptedSources(applyPolicy(HOSTILE, DEFAULT_POLICY, LOCAL).config, []));
  assert(f.accepts(ip("8.8.8.8")), "a full tunnel accepts any source");
  assertEquals(f.describe(), "any");
});
