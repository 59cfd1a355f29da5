import { formatCidr6, formatIPv6 } from "../lib/ip6.ts";
import { deepStrictEqual as eq, ok } from "node:assert/strict";
import { parseIPv4 } from "../lib/ip.ts";
import { decodeKey } from "../core/keys.ts";
import { ConfigError } from "./errors.ts";
import { parseServerConfig, serverAddress } from "./server.ts";

// Fixed keys so line and column numbers in the expectations below never move.
const S_PRIV = "aDiEcZ4yp9pYAZrKCShAl1M2uSJoxybPFOesqh5h+fg=";
const S_PUB = "7oxW/Wv7fO9AN91/ONegrVYlOf7EwRxj20ZreJBFY2g=";
const A_PUB = "toyR7CXM/J9+BK367bLkjW7tB0nsxh8/7ndcV6Pp2T0=";
const B_PUB = "e9CvL+qVAS4j3hIUdd3FNd43nHPKrYb1JkbSt8P4OEY=";

const noFiles = (path: string): string => {
  throw new Error(`unexpected read of ${path}`);
};

/** The formatted issue lines of a config that must be refused. */
function errors(text: string, readFile = noFiles): string[] {
  try {
    parseServerConfig(text, "server.yaml", readFile);
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split("\n");
    throw e;
  }
  throw new Error("config was accepted");
}

const ip = (s: string) => parseIPv4(s)!;
const k = (s: string) => decodeKey(s)!;

Deno.test("server: full valid config parses to the expected values", () => {
  const c = parseServerConfig(
    `# comment
listen: 0.0.0.0:51820
private_key: ${S_PRIV}
tun: { name: tun-vpn, mtu: 1380 }
pool: 10.7.0.0/24
routes: [0.0.0.0/0, 192.168.1.0/24]
dns: [1.1.1.1, 9.9.9.9]
keepalive: 5
session_timeout: 2m
nat: true
nat_interface: eth0
clients:
  - name: alice
    public_key: ${A_PUB}
    address: 10.7.0.20
  - name: 2024
    public_key: ${B_PUB}
log:
  level: debug
  file: logs/server.log
`,
    "/etc/xvpn/server.yaml",
    noFiles,
  );
  eq(c, {
    file: "/etc/xvpn/server.yaml",
    listen: { host: "0.0.0.0", port: 51820 },
    privateKey: k(S_PRIV),
    keySource: "/etc/xvpn/server.yaml",
    tun: { name: "tun-vpn", mtu: 1380 },
    pool: { addr: ip("10.7.0.0"), prefix: 24 },
    routes: [{ addr: 0, prefix: 0 }, { addr: ip("192.168.1.0"), prefix: 24 }],
    dns: [ip("1.1.1.1"), ip("9.9.9.9")],
    routes6: [],
    dns6: [],
    keepaliveMs: 5000,
    sessionTimeoutMs: 120_000,
    nat: true,
    inbound: false,
    natInterface: "eth0",
    clients: [
      { name: "alice", publicKey: k(A_PUB), address: ip("10.7.0.20") },
      // A plain number as a name keeps its source text.
      { name: "2024", publicKey: k(B_PUB) },
    ],
    log: { level: "debug", file: "/etc/xvpn/logs/server.log" },
    dataPath: "auto",
    mssClamp: true,
    priority: [],
    gameDscp: 34,
  });
  eq(serverAddress(c.pool), ip("10.7.0.1"));
});

Deno.test("server: minimal config gets the documented defaults", () => {
  const c = parseServerConfig(
    `listen: "[::]:443"
private_key: ${S_PRIV}
pool: 10.9.0.0/30
routes:
clients:
  - { name: a, public_key: "${A_PUB}" }
`,
    "server.yaml",
    noFiles,
  );
  eq(c.listen, { host: "::", port: 443 });
  eq(c.tun, { name: "xvpn0" }, "no tun.mtu: automatic, decided at start from the underlay");
  eq(c.routes, []);
  eq(c.dns, []);
  eq([c.keepaliveMs, c.sessionTimeoutMs, c.nat, c.natInterface], [
    10_000,
    60_000,
    false,
    undefined,
  ]);
  eq(c.log, { level: "info" });
});

Deno.test("server: missing required key points at the parent mapping", () => {
  eq(
    errors(`
private_key: ${S_PRIV}
pool: 10.7.0.0/24
clients:
  - name: a
    address: 10.7.0.2
`),
    [
      "server.yaml:2:1: listen: missing required key; expected address:port such as " +
      "0.0.0.0:51820 or [::]:51820 (port 1-65535)",
      "server.yaml:5:5: clients[0].public_key: missing required key; expected a base64 key " +
      "of 32 bytes (44 characters, as printed by xvpn genkey)",
    ],
  );
});

Deno.test("server: wrong types name the expected type", () => {
  eq(
    errors(`listen: 0.0.0.0:51820
private_key: ${S_PRIV}
tun:
  mtu: "1420"
pool: 10.7.0.0/24
nat: yes
dns: 1.1.1.1
clients:
  name: a
`),
    [
      'server.yaml:4:8: tun.mtu: expected an integer from 576 to 9000, got "1420"',
      'server.yaml:6:6: nat: expected true or false, got "yes"',
      'server.yaml:7:6: dns: expected a list of addresses such as [1.1.1.1, 2606:4700::1111], got "1.1.1.1"',
      "server.yaml:9:3: clients: expected a list of clients, each with name and public_key, " +
      "got a mapping",
    ],
  );
});

Deno.test("server: bad CIDRs in pool and routes", () => {
  eq(
    errors(`listen: 0.0.0.0:51820
private_key: ${S_PRIV}
pool: 10.7.0.0/33
routes:
  - 10.1.2.3/16
  - 10.2.0.0
  - 10.3.0.0/16
  - 10.3.0.0/16
clients: [{ name: a, public_key: "${A_PUB}" }]
`),
    [
      'server.yaml:3:7: pool: expected an IPv4 CIDR such as 10.7.0.0/24, got "10.7.0.0/33"',
      'server.yaml:5:5: routes[0]: expected a network address, got "10.1.2.3/16" which has ' +
      "host bits set; did you mean 10.1.0.0/16?",
      'server.yaml:6:5: routes[1]: expected an IPv4 CIDR such as 10.7.0.0/24, got "10.2.0.0"',
      "server.yaml:8:5: routes[3]: 10.3.0.0/16 is already listed at line 7",
    ],
  );
  eq(
    errors(`listen: 0.0.0.0:51820
private_key: ${S_PRIV}
pool: 10.7.0.0/31
clients: [{ name: a, public_key: "${A_PUB}" }]
`),
    [
      "server.yaml:3:7: pool: expected a prefix of at most /30 so the pool has room for " +
      'clients, got "10.7.0.0/31"',
    ],
  );
});

Deno.test("server: bad listen ports and hosts", () => {
  const at = (listen: string) =>
    errors(`listen: ${listen}
private_key: ${S_PRIV}
pool: 10.7.0.0/24
clients: [{ name: a, public_key: "${A_PUB}" }]
`);
  const msg = (got: string) =>
    "server.yaml:1:9: listen: expected address:port such as 0.0.0.0:51820 or [::]:51820 " +
    `(port 1-65535), got ${got}`;
  eq(at("0.0.0.0:0"), [msg('"0.0.0.0:0"')]);
  eq(at("0.0.0.0:65536"), [msg('"0.0.0.0:65536"')]);
  eq(at("0.0.0.0"), [msg('"0.0.0.0"')]);
  eq(at("51820"), [msg("51820")]);
  // The server binds an address, so a hostname is refused.
  eq(at("vpn.example.com:51820"), [msg('"vpn.example.com:51820"')]);
  eq(at("10.0.0.256:51820"), [msg('"10.0.0.256:51820"')]);
});

Deno.test("server: bad base64 keys", () => {
  eq(
    errors(`listen: 0.0.0.0:51820
private_key: ${S_PRIV.slice(1)}
pool: 10.7.0.0/24
clients:
  - name: a
    public_key: not-a-key
`),
    [
      // The private key is not echoed: a nearly right one would leak into logs.
      "server.yaml:2:14: private_key: expected a base64 key of 32 bytes (44 characters, as " +
      "printed by xvpn genkey), got 43 characters (not shown: it is secret)",
      "server.yaml:6:17: clients[0].public_key: expected a base64 key of 32 bytes (44 " +
      'characters, as printed by xvpn genkey), got "not-a-key"',
    ],
  );
});

Deno.test("server: duplicate client names, keys and addresses", () => {
  eq(
    errors(`listen: 0.0.0.0:51820
private_key: ${S_PRIV}
pool: 10.7.0.0/24
clients:
  - name: alice
    public_key: ${A_PUB}
    address: 10.7.0.5
  - name: alice
    public_key: ${B_PUB}
  - name: bob
    public_key: ${A_PUB}
    address: 10.7.0.5
`),
    [
      'server.yaml:8:11: clients[1].name: duplicate client name "alice" (also at line 5)',
      'server.yaml:11:17: clients[2].public_key: same public key as client "alice" (line 6)',
      'server.yaml:12:14: clients[2].address: 10.7.0.5 is already assigned to client "alice" ' +
      "(line 7)",
    ],
  );
});

Deno.test("server: static addresses must be usable hosts of the pool", () => {
  eq(
    errors(`listen: 0.0.0.0:51820
private_key: ${S_PRIV}
pool: 10.7.0.0/24
clients:
  - { name: a, public_key: "${A_PUB}", address: 10.8.0.5 }
  - { name: b, public_key: "${B_PUB}", address: 10.7.0.1 }
  - { name: c, public_key: "${k2(1)}", address: 10.7.0.0 }
  - { name: d, public_key: "${k2(2)}", address: 10.7.0.255 }
  - { name: e, public_key: "${k2(3)}", address: 10.7.0 }
`),
    [
      "server.yaml:5:85: clients[0].address: 10.8.0.5 is outside the pool 10.7.0.0/24",
      "server.yaml:6:85: clients[1].address: 10.7.0.1 is the server's own address in the " +
      "pool 10.7.0.0/24",
      "server.yaml:7:85: clients[2].address: 10.7.0.0 is the network address of the pool " +
      "10.7.0.0/24",
      "server.yaml:8:85: clients[3].address: 10.7.0.255 is the broadcast address of the pool " +
      "10.7.0.0/24",
      "server.yaml:9:85: clients[4].address: expected an IPv4 address such as 10.7.0.2, got " +
      '"10.7.0"',
    ],
  );
});

/** Distinct valid keys for tests that need many clients. */
function k2(n: number): string {
  return btoa(String.fromCharCode(...new Uint8Array(32).fill(n)));
}

Deno.test("server: unknown keys are refused, with a suggestion when close", () => {
  eq(
    errors(`listen: 0.0.0.0:51820
privateKey: ${S_PRIV}
pool: 10.7.0.0/24
sesion_timeout: 30s
tun:
  nmae: tun0
  frobnicate: 1
clients: [{ name: a, public_key: "${A_PUB}", adress: 10.7.0.2 }]
`),
    [
      "server.yaml:1:1: private_key: missing required key; expected a base64 key of 32 bytes " +
      "(44 characters, as printed by xvpn genkey) (or private_key_file: a path to a key file)",
      'server.yaml:2:1: privateKey: unknown key; did you mean "private_key"?',
      'server.yaml:4:1: sesion_timeout: unknown key; did you mean "session_timeout"?',
      'server.yaml:6:3: tun.nmae: unknown key; did you mean "name"?',
      "server.yaml:7:3: tun.frobnicate: unknown key; expected one of name, mtu",
      'server.yaml:8:82: clients[0].adress: unknown key; did you mean "address"?',
    ],
  );
});

Deno.test("server: private_key and private_key_file together are refused", () => {
  eq(
    errors(
      `listen: 0.0.0.0:51820
private_key: ${S_PRIV}
private_key_file: server.key
pool: 10.7.0.0/24
clients: [{ name: a, public_key: "${A_PUB}" }]
`,
      () => S_PRIV,
    ),
    ["server.yaml:3:1: private_key_file: give either private_key or private_key_file, not both"],
  );
});

Deno.test("server: private_key_file is read relative to the config and checked", () => {
  const text = (file: string) =>
    `listen: 0.0.0.0:51820
private_key_file: ${file}
pool: 10.7.0.0/24
clients: [{ name: a, public_key: "${A_PUB}" }]
`;
  const read: string[] = [];
  const c = parseServerConfig(text("keys/server.key"), "/etc/xvpn/server.yaml", (p) => {
    read.push(p);
    return `${S_PRIV}\n`;
  });
  eq(read, ["/etc/xvpn/keys/server.key"]);
  eq(c.privateKey, k(S_PRIV));

  eq(
    errors(text("/nonexistent/server.key"), (p) => {
      throw new Deno.errors.NotFound(`No such file or directory (os error 2): open '${p}'`);
    }),
    [
      'server.yaml:2:19: private_key_file: cannot read key file "/nonexistent/server.key": ' +
      "No such file or directory (os error 2): open '/nonexistent/server.key'",
    ],
  );
  eq(errors(text("server.pub"), () => "hello\n"), [
    'server.yaml:2:19: private_key_file: key file "server.pub" does not hold a base64 key of ' +
    "32 bytes (44 characters, as printed by xvpn genkey)",
  ]);
});

Deno.test("server: bad durations", () => {
  eq(
    errors(`listen: 0.0.0.0:51820
private_key: ${S_PRIV}
pool: 10.7.0.0/24
keepalive: 10 sec
session_timeout: 0
clients: [{ name: a, public_key: "${A_PUB}" }]
`),
    [
      "server.yaml:4:12: keepalive: expected a duration such as 10s, 1500ms, 2m or a number " +
      'of seconds, got "10 sec"',
      "server.yaml:5:18: session_timeout: expected a duration such as 10s, 1500ms, 2m or a " +
      "number of seconds, got 0",
    ],
  );
});

Deno.test("server: session_timeout must exceed twice keepalive", () => {
  eq(
    errors(`listen: 0.0.0.0:51820
private_key: ${S_PRIV}
pool: 10.7.0.0/24
keepalive: 15s
session_timeout: 30s
clients: [{ name: a, public_key: "${A_PUB}" }]
`),
    ["server.yaml:5:18: session_timeout: session_timeout (30s) must be more than twice keepalive (15s)"],
  );
  // With session_timeout left at its default, the keepalive that breaks it is blamed.
  eq(
    errors(`listen: 0.0.0.0:51820
private_key: ${S_PRIV}
pool: 10.7.0.0/24
keepalive: 1m
clients: [{ name: a, public_key: "${A_PUB}" }]
`),
    ["server.yaml:4:12: keepalive: session_timeout (1m) must be more than twice keepalive (1m)"],
  );
  // An invalid session_timeout is reported once, not compared with its default as well.
  eq(
    errors(`listen: 0.0.0.0:51820
private_key: ${S_PRIV}
pool: 10.7.0.0/24
keepalive: 40s
session_timeout: soon
clients: [{ name: a, public_key: "${A_PUB}" }]
`),
    [
      "server.yaml:5:18: session_timeout: expected a duration such as 10s, 1500ms, 2m or a " +
      'number of seconds, got "soon"',
    ],
  );
});

Deno.test("server: YAML syntax errors carry line and column", () => {
  eq(
    errors(`listen: 0.0.0.0:51820
pool: [10.7.0.0/24
clients: []
`),
    [
      "server.yaml:3:1: YAML syntax: Flow sequence in block collection must be sufficiently " +
      "indented and end with a ]",
    ],
  );
  eq(
    errors(`listen: 0.0.0.0:51820
pool: 10.7.0.0/24
nat: true: false
`),
    ["server.yaml:3:6: YAML syntax: Nested mappings are not allowed in compact mappings"],
  );
  eq(errors(`listen: &l 0.0.0.0:51820\npool: *p\n`), [
    "server.yaml:2:7: YAML syntax: alias *p names no anchor",
  ]);
  eq(
    errors(`listen: 0.0.0.0:51820
pool: 10.7.0.0/24
pool: 10.8.0.0/24
`),
    ["server.yaml:3:1: YAML syntax: Map keys must be unique"],
  );
  eq(errors(""), ["server.yaml:1:1: expected a mapping of server settings, got nothing"]);
});

Deno.test("server: clients must be non-empty and fit in the pool", () => {
  const cfg = (pool: string, clients: string) =>
    `listen: 0.0.0.0:51820
private_key: ${S_PRIV}
pool: ${pool}
clients: ${clients}
`;
  eq(errors(cfg("10.7.0.0/24", "[]")), [
    "server.yaml:4:10: clients: expected at least one client, got an empty list",
  ]);
  eq(
    errors(
      cfg("10.7.0.0/30", `[{name: a, public_key: "${A_PUB}"}, {name: b, public_key: "${B_PUB}"}]`),
    ),
    ["server.yaml:4:10: clients: 2 clients do not fit in pool 10.7.0.0/30, which has room for 1"],
  );
});

Deno.test("server: nat_interface without nat, and the server's own key as a client", () => {
  eq(
    errors(`listen: 0.0.0.0:51820
private_key: ${S_PRIV}
pool: 10.7.0.0/24
nat_interface: eth0
clients:
  - name: a
    public_key: ${S_PUB}
`),
    [
      "server.yaml:4:1: nat_interface: has no effect unless nat is true; set nat: true or remove it",
      "server.yaml:7:17: clients[0].public_key: this is the server's own public key, not the " +
      "client's",
    ],
  );
});

Deno.test("server: every mistake is collected into one ConfigError", () => {
  const text = `listen: 0.0.0.0:0
private_key: x
pool: 10.7.0.0/40
clients: []
log: { level: warn }
`;
  let e: unknown;
  try {
    parseServerConfig(text, "s.yaml", noFiles);
  } catch (err) {
    e = err;
  }
  ok(e instanceof ConfigError);
  eq(e.file, "s.yaml");
  eq(e.issues.map((i) => [i.line, i.column, i.path]), [
    [1, 9, "listen"],
    [2, 14, "private_key"],
    [3, 7, "pool"],
    [4, 10, "clients"],
    [5, 15, "log.level"],
  ]);
  eq(
    e.issues[4]?.message,
    'expected one of trace, debug, info, warning, error, got "warn"; did you mean "warning"?',
  );
  eq(e.message.split("\n").length, 5);
});

Deno.test("server: data_path must be auto, fast or portable", () => {
  const base = `listen: 0.0.0.0:51820
private_key: ${S_PRIV}
pool: 10.7.0.0/24
clients: [{ name: a, public_key: ${A_PUB} }]
`;
  eq(errors(base + "data_path: turbo\n"), [
    'server.yaml:5:12: data_path: expected one of auto, fast, portable, got "turbo"',
  ]);
  eq(parseServerConfig(base + "data_path: fast\n", "server.yaml").dataPath, "fast");
  eq(parseServerConfig(base, "server.yaml").dataPath, "auto");
});

Deno.test("server: pool6 and IPv6 routes and DNS beside the IPv4 ones", () => {
  const base = `listen: "[::]:51820"\nprivate_key: ${S_PRIV}\npool: 10.7.0.0/24\n` +
    `clients: [{ name: a, public_key: ${A_PUB} }]\n`;
  const c = parseServerConfig(
    base + `pool6: fd00:77::/64\nroutes: [0.0.0.0/0, "::/0", "2001:db8::/32"]\n` +
      `dns: [10.7.0.1, "fd00:77::1"]\n`,
    "server.yaml",
    noFiles,
  );
  eq(c.listen, { host: "::", port: 51820 });
  eq(c.routes.length, 1);
  eq(c.routes6.map(formatCidr6), ["::/0", "2001:db8::/32"]);
  eq(c.dns6.map(formatIPv6), ["fd00:77::1"]);
  eq(formatCidr6(c.pool6!), "fd00:77::/64");
  eq(errors(base + `pool6: fd00::/48\n`), [
    'server.yaml:5:8: pool6: expected a prefix of /64 to /96, got "fd00::/48"',
  ]);
  eq(errors(base + `routes: ["2001:db8::1/32"]\n`), [
    'server.yaml:5:10: routes[0]: expected a network address, got "2001:db8::1/32" which has host ' +
    "bits set; did you mean 2001:db8::/32?",
  ]);
});
