import { deepStrictEqual as eq } from "node:assert/strict";
import { ConfigError } from "./errors.ts";
import { parseServerConfig } from "./server.ts";
import { parseClientConfig } from "./client.ts";
import { formatCidr } from "../lib/ip.ts";
import { formatCidr6 } from "../lib/ip6.ts";

// Fixed keys, so that positions in the expectations never move.
const S_PRIV = "aDiEcZ4yp9pYAZrKCShAl1M2uSJoxybPFOesqh5h+fg=";
const S_PUB = "7oxW/Wv7fO9AN91/ONegrVYlOf7EwRxj20ZreJBFY2g=";
const A_PUB = "toyR7CXM/J9+BK367bLkjW7tB0nsxh8/7ndcV6Pp2T0=";
const B_PUB = "e9CvL+qVAS4j3hIUdd3FNd43nHPKrYb1JkbSt8P4OEY=";
const C_PRIV = "qMBOhENT0FRTvBH7JNcp3szmVfg4fqPpPV8rNrI36mQ=";

const noFiles = (path: string): string => {
  throw new Error(`unexpected read of ${path}`);
};

/** A server config whose clients' entries end with `alice` and `bob` (lines 8-9 and 11-12). */
function server(alice: string, bob = "", extra = ""): string {
  return `listen: 0.0.0.0:51820
private_key: ${S_PRIV}
pool: 10.7.0.0/24
routes: [10.201.2.0/24, 0.0.0.0/0]
${extra}
clients:
  - name: alice
    public_key: ${A_PUB}
    ${alice}
  - name: bob
    public_key: ${B_PUB}
    ${bob}
`;
}

/** The issue lines of a refused config. */
function refused(parse: () => unknown): string[] {
  try {
    parse();
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split("\n");
    throw e;
  }
  throw new Error("config was accepted");
}

const serverErrors = (text: string) => refused(() => parseServerConfig(text, "s.yaml", noFiles));

Deno.test("lan (server): one CIDR or a list, both families, on the client's entry", () => {
  const c = parseServerConfig(
    server(
      "lan: 192.168.50.0/24",
      "lan: [10.9.0.0/16, 10.9.8.0/24, fd50::/64]",
      "pool6: fd00:77::/64",
    ),
    "s.yaml",
    noFiles,
  );
  eq(c.clients[0]!.lan!.map(formatCidr), ["192.168.50.0/24"]);
  eq(c.clients[0]!.lan6, undefined);
  eq(c.clients[1]!.lan!.map(formatCidr), ["10.9.0.0/16", "10.9.8.0/24"]);
  eq(c.clients[1]!.lan6!.map(formatCidr6), ["fd50::/64"]);
  const none = parseServerConfig(server(""), "s.yaml", noFiles);
  eq("lan" in none.clients[0]!, false, "no lan key, nothing added");
});

Deno.test("lan (server): overlapping LANs of two clients are refused at the later one", () => {
  eq(serverErrors(server("lan: 192.168.50.0/24", "lan: [10.1.0.0/16, 192.168.50.128/25]")), [
    `s.yaml:12:24: clients[1].lan[1]: 192.168.50.128/25 overlaps 192.168.50.0/24, the LAN of ` +
    `client "alice" (line 9); expected each LAN behind one client`,
  ]);
  // One client's own nested LANs are its business.
  parseServerConfig(server("lan: [10.1.0.0/16, 10.1.2.0/24]"), "s.yaml", noFiles);
});

Deno.test("lan (server): the pool, pool6, pushed routes and short prefixes are refused", () => {
  eq(serverErrors(server("lan: 10.7.0.0/16", "lan: 10.201.0.0/16")), [
    "s.yaml:9:10: clients[0].lan: 10.7.0.0/16 overlaps the pool 10.7.0.0/24; expected a LAN " +
    "outside the tunnel's own addresses",
    "s.yaml:12:10: clients[1].lan: 10.201.0.0/16 holds the pushed route 10.201.2.0/24 (line 4), " +
    "a network behind the server; expected a LAN apart from the routes (a route around it, " +
    "such as 0.0.0.0/0, is fine)",
  ]);
  eq(serverErrors(server("lan: [fd00:77::/48]", "lan: 0.0.0.0/1", "pool6: fd00:77::/64")), [
    "s.yaml:9:11: clients[0].lan[0]: fd00:77::/48 overlaps the pool6 fd00:77::/64; expected a " +
    "LAN outside the tunnel's own addresses",
    "s.yaml:12:10: clients[1].lan: expected a LAN of /8 or longer (the server routes it into " +
    "its TUN), got 0.0.0.0/1",
  ]);
  eq(serverErrors(server("lan: fd50::/64", "lan: [1.2.3.4/24, 10.1.0.0/16, 10.1.0.0/16]")), [
    "s.yaml:9:10: clients[0].lan: fd50::/64: an IPv6 LAN needs pool6 (without it the tunnel " +
    "carries no IPv6)",
    `s.yaml:12:11: clients[1].lan[0]: expected a network address, got "1.2.3.4/24" which has ` +
    "host bits set; did you mean 1.2.3.0/24?",
    "s.yaml:12:36: clients[1].lan[2]: 10.1.0.0/16 is already listed at line 12",
  ]);
  eq(serverErrors(server("lan: { cidr: 10.1.0.0/16 }")), [
    "s.yaml:9:10: clients[0].lan: expected a LAN CIDR such as 192.168.50.0/24, or a list of " +
    "them, got a mapping",
  ]);
});

const client = (lan: string, routes = "") =>
  `server: 203.0.113.1:51820
server_public_key: ${S_PUB}
private_key: ${C_PRIV}
${routes}
lan: ${lan}
`;

Deno.test("lan (client): the LAN it carries; its own routes must leave it alone", () => {
  const c = parseClientConfig(client("192.168.50.0/24", "routes: [0.0.0.0/0]"), "c.yaml", noFiles);
  eq(c.lan!.map(formatCidr), ["192.168.50.0/24"]);
  eq(c.lan6, undefined);
  eq(
    refused(() =>
      parseClientConfig(client("[192.168.50.0/24]", "routes: [192.168.50.7/32]"), "c.yaml", noFiles)
    ),
    [
      "c.yaml:5:7: lan[0]: 192.168.50.0/24 holds 192.168.50.7/32 of routes (line 4), which " +
      "would send the LAN's own traffic into the tunnel; expected a LAN apart from routes",
    ],
  );
});
