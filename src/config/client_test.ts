import { deepStrictEqual as eq } from "node:assert/strict";
import { parseIPv4 } from "../lib/ip.ts";
import { decodeKey, encodeKey, publicKeyOf } from "../core/keys.ts";
import { assertEquals, assertStringIncludes } from "../../tests/support/assert.ts";
import { parseClientConfig } from "./client.ts";
import { ConfigError } from "./errors.ts";

// Fixed keys so line and column numbers in the expectations below never move.
const S_PUB = "7oxW/Wv7fO9AN91/ONegrVYlOf7EwRxj20ZreJBFY2g=";
const A_PRIV = "LXO0xxWaePc/mno4l6yXWgLSUzFg6BeC6PLNtB7WM9w=";
const A_PUB = "toyR7CXM/J9+BK367bLkjW7tB0nsxh8/7ndcV6Pp2T0=";

const noFiles = (path: string): string => {
  throw new Error(`unexpected read of ${path}`);
};

/** The formatted issue lines of a config that must be refused. */
function errors(text: string, readFile = noFiles): string[] {
  try {
    parseClientConfig(text, "client.yaml", readFile);
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split("\n");
    throw e;
  }
  throw new Error("config was accepted");
}

Deno.test("client: full valid config parses to the expected values", () => {
  const c = parseClientConfig(
    `server: vpn.example.com:51820
server_public_key: ${S_PUB}
private_key_file: client.key
tun: { name: vpn0 }
routes: [192.168.50.0/24]
keepalive: 1500ms
log: { level: trace, file: /var/log/xvpn.log }
data_path: portable
dns: false
dns_route: true
`,
    "conf/client.yaml",
    (p) => p === "conf/client.key" ? A_PRIV : noFiles(p),
  );
  eq(c, {
    file: "conf/client.yaml",
    server: { host: "vpn.example.com", port: 51820 },
    serverPublicKey: decodeKey(S_PUB)!,
    nodes: [{
      name: "vpn.example.com:51820",
      server: { host: "vpn.example.com", port: 51820 },
      publicKey: decodeKey(S_PUB)!,
    }],
    nodeSwitch: "dead",
    profiles: [],
    privateKey: decodeKey(A_PRIV)!,
    keySource: "conf/client.key",
    fullTunnel: true,
    localRoutes: false,
    tun: { name: "vpn0" },
    routes: [{ addr: parseIPv4("192.168.50.0")!, prefix: 24 }],
    routes6: [],
    keepaliveMs: 1500,
    log: { level: "trace", file: "/var/log/xvpn.log" },
    dataPath: "portable",
    mssClamp: true,
    dns: false,
    dnsRoute: true,
    priority: [],
    gameDscp: 34,
  });
});

Deno.test("client: shaping, priority and game_dscp (the flow scheduler)", () => {
  const c = parseClientConfig(
    `server: 203.0.113.7:443
server_public_key: ${S_PUB}
private_key: ${A_PRIV}
shaping: { up: 20mbit, down: 1.5gbit }
priority:
  - { ports: [3074, "27015-27030"], protocol: udp }
  - { cidrs: [203.0.113.0/24], dscp: [ef, 40] }
game_dscp: cs4
`,
    "client.yaml",
    noFiles,
  );
  eq(c.shaping, { upBps: 20_000_000, downBps: 1_500_000_000, overheadBytes: 38 });
  eq(c.priority, [
    { ports: [[3074, 3074], [27015, 27030]], protocols: [17] },
    { cidrs: [{ addr: parseIPv4("203.0.113.0")!, prefix: 24 }], dscp: [46, 40] },
  ]);
  eq(c.gameDscp, 32);
  const off = parseClientConfig(
    `server: 203.0.113.7:443\nserver_public_key: ${S_PUB}\nprivate_key: ${A_PRIV}\ngame_dscp: off\n`,
    "client.yaml",
    noFiles,
  );
  eq([off.gameDscp, off.shaping, off.priority], [0, undefined, []]);
});

Deno.test("client: bad shaping, priority and game_dscp say where and what was expected", () => {
  const head = `server: 203.0.113.7:443\nserver_public_key: ${S_PUB}\nprivate_key: ${A_PRIV}\n`;
  eq(errors(head + "shaping: { up: 20mbps }\n"), [
    `client.yaml:4:16: shaping.up: expected a rate in bits per second such as 20mbit, 950kbit or 1gbit, got "20mbps" (write bits: 20mbit is bits, bps is ambiguous)`,
  ]);
  eq(errors(head + "shaping: { up: 10kbit }\n"), [
    "client.yaml:4:16: shaping.up: expected a rate in bits per second such as 20mbit, 950kbit or 1gbit of at least 64kbit, got 10kbit",
  ]);
  eq(errors(head + 'priority: [{ ports: ["30-20"] }]\n'), [
    'client.yaml:4:22: priority[0].ports[0]: expected a port (3074) or a range ("27015-27030"), got 30-20',
  ]);
  eq(errors(head + "priority: [{}]\n"), [
    "client.yaml:4:12: priority[0]: expected a mapping with ports, cidrs, dscp and/or protocol, got an empty rule (it would match everything)",
  ]);
  eq(errors(head + "game_dscp: af99\n"), [
    'client.yaml:4:12: game_dscp: expected a DSCP: a name (af41, cs4, ef, ...) or a number 0-63, or off, got "af99"',
  ]);
});

Deno.test("client: minimal config gets the documented defaults", () => {
  const c = parseClientConfig(
    `server: 203.0.113.7:443
server_public_key: ${S_PUB}
private_key: ${A_PRIV}
`,
    "client.yaml",
    noFiles,
  );
  eq(c.server, { host: "203.0.113.7", port: 443 });
  eq(c.tun, { name: "xvpn0" });
  eq(c.routes, []);
  eq(c.keepaliveMs, undefined);
  eq(c.log, { level: "info" });
  eq([c.dns, c.dnsRoute], [true, false], "pushed DNS used, no DNS host routes");
});

Deno.test("client: tun.mtu is refused because the server pushes it", () => {
  eq(
    errors(`server: vpn.example.com:51820
server_public_key: ${S_PUB}
private_key: ${A_PRIV}
tun:
  name: xvpn0
  mtu: 1400
`),
    [
      "client.yaml:6:8: tun.mtu: not allowed in a client config: the server pushes the MTU to " +
      "its clients; set tun.mtu in the server config instead",
    ],
  );
});

Deno.test("client: bad server endpoints", () => {
  const at = (server: string) =>
    errors(`server: ${server}
server_public_key: ${S_PUB}
private_key: ${A_PRIV}
`);
  const msg = (got: string) =>
    "client.yaml:1:9: server: expected host:port such as vpn.example.com:51820 (port 1-65535), " +
    `got ${got}`;
  eq(at("vpn.example.com"), [msg('"vpn.example.com"')]);
  eq(at("vpn.example.com:99999"), [msg('"vpn.example.com:99999"')]);
  eq(at("10.0.0.300:51820"), [msg('"10.0.0.300:51820"')]);
  eq(at("vpn_example.com:51820"), [msg('"vpn_example.com:51820"')]);
});

Deno.test("client: missing keys, unknown keys and a swapped server key", () => {
  eq(
    errors(`server: vpn.example.com:51820
server_publickey: ${S_PUB}
private_key: ${A_PRIV}
`),
    [
      "client.yaml:1:1: server_public_key: missing required key; expected a base64 key of 32 " +
      "bytes (44 characters, as printed by xvpn genkey)",
      'client.yaml:2:1: server_publickey: unknown key; did you mean "server_public_key"?',
    ],
  );
  eq(
    errors(`server: vpn.example.com:51820
server_public_key: ${A_PUB}
private_key: ${A_PRIV}
`),
    ["client.yaml:2:20: server_public_key: this is the client's own public key, not the server's"],
  );
});

Deno.test("client: private_key and private_key_file together are refused", () => {
  eq(
    errors(
      `server: vpn.example.com:51820
server_public_key: ${S_PUB}
private_key_file: client.key
private_key: ${A_PRIV}
`,
      () => A_PRIV,
    ),
    ["client.yaml:3:1: private_key_file: give either private_key or private_key_file, not both"],
  );
});

Deno.test("client: bad keepalive duration", () => {
  eq(
    errors(`server: vpn.example.com:51820
server_public_key: ${S_PUB}
private_key: ${A_PRIV}
keepalive: "25"
`),
    [
      "client.yaml:4:12: keepalive: expected a duration such as 10s, 1500ms, 2m or a number of " +
      'seconds, got "25"',
    ],
  );
});

Deno.test("client: dns and dns_route take true or false", () => {
  eq(
    errors(`server: vpn.example.com:51820
server_public_key: ${S_PUB}
private_key: ${A_PRIV}
dns: [1.1.1.1]
dns_route: yes
`),
    [
      "client.yaml:4:6: dns: expected true or false, got a list",
      'client.yaml:5:12: dns_route: expected true or false, got "yes"',
    ],
  );
});

Deno.test("client: paths and multipath (dual channel)", () => {
  const base = `server: vpn.example.com:51820
server_public_key: ${S_PUB}
private_key: ${A_PRIV}
`;
  const c = parseClientConfig(
    base + `paths:\n  - interface: wlan0\n  - source: 192.168.8.100\nmultipath: redundant\n`,
    "client.yaml",
    noFiles,
  );
  eq(c.paths, [{ interface: "wlan0" }, { source: "192.168.8.100" }]);
  eq(c.multipath, "redundant");
  const d = parseClientConfig(base + `paths: [{ interface: eth0 }]\n`, "client.yaml", noFiles);
  eq([d.paths, d.multipath], [[{ interface: "eth0" }], "failover"], "failover by default");
  const none = parseClientConfig(base, "client.yaml", noFiles);
  eq([none.paths, none.multipath], [undefined, undefined], "no paths: single path as ever");
});

Deno.test("client: bad paths and multipath", () => {
  const base = `server: vpn.example.com:51820
server_public_key: ${S_PUB}
private_key: ${A_PRIV}
`;
  eq(errors(base + `multipath: redundant\n`), [
    "client.yaml:4:1: multipath: needs paths: list the interfaces or addresses to use",
  ]);
  eq(errors(base + `paths: [{ interface: wlan0 }]\nmultipath: redundnat\n`), [
    'client.yaml:5:12: multipath: expected one of redundant, failover, got "redundnat"; ' +
    'did you mean "redundant"?',
  ]);
  eq(errors(base + `paths:\n  - { interface: wlan0, source: 10.0.0.2 }\n  - {}\n`), [
    "client.yaml:5:5: paths[0]: expected interface or source, not both: a path is one or the other",
    "client.yaml:6:5: paths[1]: expected a mapping with interface (a device name) or source " +
    "(a local IPv4 address), got neither",
  ]);
  eq(errors(base + `paths:\n  - source: 10.0.0.300\n  - interface: eth0\n  - interface: eth0\n`), [
    "client.yaml:5:13: paths[0].source: expected an IPv4 address such as 10.7.0.2, got " +
    '"10.0.0.300"',
    "client.yaml:7:5: paths[2]: interface eth0 is already listed at line 6",
  ]);
  eq(errors(base + `paths: []\n`), ["client.yaml:4:8: paths: expected 1-8 paths, got 0"]);
  eq(errors(base + `paths: [{ iface: eth0 }]\n`), [
    "client.yaml:4:11: paths[0].iface: unknown key; expected one of interface, source",
  ]);
});

Deno.test("client: servers lists several nodes; never together with server", () => {
  const B_PUB = encodeKey(publicKeyOf(decodeKey(A_PRIV)!.map((b, i) => b ^ (i + 1))));
  const cfg = parseClientConfig(
    `servers:
  - name: fra
    region: Frankfurt
    endpoint: fra.example.net:51820
    public_key: ${S_PUB}
  - name: ams
    endpoint: 198.51.100.7:4500
    public_key: ${B_PUB}
node_switch: better
profiles: [example]
private_key: ${A_PRIV}
`,
    "client.yaml",
  );
  assertEquals(cfg.nodes.map((n) => [n.name, n.region, n.server.host, n.server.port]), [
    ["fra", "Frankfurt", "fra.example.net", 51820],
    ["ams", undefined, "198.51.100.7", 4500],
  ]);
  assertEquals(cfg.server, cfg.nodes[0]!.server, "server: the first node");
  assertEquals(cfg.nodeSwitch, "better");
  assertEquals(cfg.profiles, ["example"]);
  const errs = (text: string) => {
    try {
      parseClientConfig(text, "client.yaml");
    } catch (e) {
      return (e as Error).message;
    }
    return "parsed";
  };
  const both = errs(
    `server: a.example:1\nserver_public_key: ${S_PUB}\nprivate_key: ${A_PRIV}\nservers:\n` +
      `  - {name: a, endpoint: "a.example:1", public_key: ${S_PUB}}\n`,
  );
  assertStringIncludes(both, "client.yaml:1:1: server: not with servers");
  assertStringIncludes(both, "client.yaml:2:1: server_public_key: not with servers");
  const dup = errs(
    `private_key: ${A_PRIV}\nservers:\n  - {name: a, endpoint: "a.example:1", public_key: ${S_PUB}}\n` +
      `  - {name: a, endpoint: "b.example:1", public_key: ${S_PUB}}\n`,
  );
  assertStringIncludes(dup, 'a second node named "a"');
  assertStringIncludes(dup, 'the same key as node "a"');
  assertStringIncludes(errs(`private_key: ${A_PRIV}\n`), "expected server and server_public_key");
  assertStringIncludes(
    errs(`private_key: ${A_PRIV}\nservers: []\nnode_switch: sometimes\n`),
    "expected 1-32 nodes, got 0",
  );
});
