import { deepStrictEqual as eq, ok } from "node:assert/strict";
import {
  cgroup2Mount,
  learnRuleset,
  localPorts,
  planCgroup,
  setElements,
  socketInode,
} from "./plan.ts";
import { scopeOf } from "./scope.ts";

const UNIFIED = "25 18 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n";
const HYBRID = [
  "30 25 0:26 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
  "31 25 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
  "",
].join("\n");

Deno.test("learn plan: the cgroup v2 mount, whole or not at all", () => {
  eq(cgroup2Mount(UNIFIED), "/sys/fs/cgroup");
  eq(cgroup2Mount(HYBRID), "/sys/fs/cgroup/unified");
  eq(cgroup2Mount("40 1 0:30 /sub /mnt/cg\\040x rw - cgroup2 cgroup2 rw\n"), undefined);
  eq(cgroup2Mount("40 1 0:30 / /mnt/cg\\040x rw - cgroup2 cgroup2 rw\n"), "/mnt/cg x");
});

Deno.test("learn plan: a child of the process's own cgroup, at the right level", () => {
  eq(planCgroup("0::/user.slice/app.scope\n", UNIFIED, 42), {
    original: "/user.slice/app.scope",
    originalDir: "/sys/fs/cgroup/user.slice/app.scope",
    dir: "/sys/fs/cgroup/user.slice/app.scope/xvpn-learn-42",
    nftPath: "user.slice/app.scope/xvpn-learn-42",
    level: 3,
  });
  // Hybrid hierarchy, process in the root cgroup: nft still finds it under /sys/fs/cgroup.
  eq(planCgroup("4:memory:/x\n0::/\n", HYBRID, 7), {
    original: "/",
    originalDir: "/sys/fs/cgroup/unified",
    dir: "/sys/fs/cgroup/unified/xvpn-learn-7",
    nftPath: "unified/xvpn-learn-7",
    level: 1,
  });
  eq(planCgroup("4:memory:/x\n", HYBRID, 7), "the process is in no cgroup v2 hierarchy");
  eq(planCgroup("0::/\n", "", 7), "no cgroup v2 hierarchy is mounted whole");
  ok(String(planCgroup("0::/\n", "1 1 0:1 / /cg rw - cgroup2 c rw\n", 7)).includes("outside"));
  ok(String(planCgroup('0::/a"b\n', UNIFIED, 7)).includes("cannot be quoted"));
});

Deno.test("learn plan: the ruleset only records, by ports and optionally by cgroup", () => {
  const plain = learnRuleset();
  ok(plain.startsWith("table inet xvpn_learn {"));
  ok(plain.includes("policy accept;") && !/\b(drop|reject)\b/.test(plain));
  ok(plain.includes("meta nfproto ipv4 udp sport @udp_ports update @seen4 { ip daddr }"));
  ok(!plain.includes("cgroupv2"));
  const cg = learnRuleset({ nftPath: "unified/xvpn-learn-7", level: 1 });
  ok(cg.includes('meta nfproto ipv6 socket cgroupv2 level 1 "unified/xvpn-learn-7" update @seen6'));
});

Deno.test("learn plan: socket inodes, local ports of those sockets, nft set elements", () => {
  eq(socketInode("socket:[12345]"), "12345");
  eq(socketInode("/dev/null"), undefined);
  const udp = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops",
    " 1: 00000000:D431 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 111 2 0000000000000000 0",
    " 2: 0100007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 222 2 0000000000000000 0",
    " 3: 00000000:0000 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 333 2 0000000000000000 0",
    " 4: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000 0 0 444 2 0 0",
  ].join("\n");
  eq(localPorts(udp, new Set(["111", "333", "444", "999"])), [0xd431, 3000]);
  eq(localPorts(udp, new Set()), []);
  eq(
    setElements(
      '{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"family": "inet", ' +
        '"name": "seen4", "elem": ["192.0.2.1", {"elem": {"val": "192.0.2.2", "expires": 5}}]}}]}',
    ),
    ["192.0.2.1", "192.0.2.2"],
  );
  eq(setElements('{"nftables": [{"set": {"name": "seen6"}}]}'), []);
});

Deno.test("learn scope: private and never-routable addresses are told apart", () => {
  const cases: [string, string][] = [
    ["192.0.2.1", "public"],
    ["8.8.8.8", "public"],
    ["10.1.2.3", "private"],
    ["172.31.0.1", "private"],
    ["172.32.0.1", "public"],
    ["192.168.1.1", "private"],
    ["100.100.0.1", "private"],
    ["127.0.0.1", "local"],
    ["169.254.1.1", "local"],
    ["224.0.0.251", "local"],
    ["255.255.255.255", "local"],
    ["0.0.0.0", "local"],
    ["2001:db8::1", "public"],
    ["fd00::1", "private"],
    ["fe80::1", "local"],
    ["ff02::fb", "local"],
    ["::1", "local"],
    ["::ffff:10.0.0.1", "private"],
    ["nonsense", "local"],
  ];
  eq(cases.map(([a]) => [a, scopeOf(a)]), cases);
});
