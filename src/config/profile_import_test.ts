// Every fixture here is written for these tests, with documentation ranges (RFC 5737, RFC
// 3849): no list from Netch or SSTap is copied.
import { deepStrictEqual as eq, ok } from "node:assert/strict";
import { formatCidr } from "../lib/ip.ts";
import { formatCidr6 } from "../lib/ip6.ts";
import { ConfigError } from "./errors.ts";
import { parseProfile } from "./profile.ts";
import {
  detectFormat,
  formatProfile,
  type ImportedProfile,
  importedProfileName,
  importProfile,
} from "./profile_import.ts";

/** The formatted issue lines of a file that must be refused. */
function errors(text: string, file: string, name?: string): string[] {
  try {
    importProfile(text, file, name);
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split("\n");
    throw e;
  }
  throw new Error("file was imported");
}

const ranges = (p: ImportedProfile) => [...p.cidrs.map(formatCidr), ...p.cidrs6.map(formatCidr6)];

Deno.test("import: a Netch text mode of type 1 becomes a profile", () => {
  const p = importProfile(
    "\uFEFF# Test Game [EU], 1, 0\r\n" +
      "192.0.2.0/24\r\n" +
      "// a comment\r\n" +
      "\r\n" +
      "198.51.100.7/24\r\n" +
      "203.0.113.9\r\n" +
      "2001:db8:10::/48\r\n" +
      "192.0.2.0/24\r\n",
    "mode/Test Game [EU].txt",
  );
  eq(p.name, "test-game-eu");
  eq(p.description, "Test Game [EU]");
  eq(p.source, 'imported from "mode/Test Game [EU].txt" (Netch text mode)');
  eq(p.format, "netch-text");
  eq(ranges(p), ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.9/32", "2001:db8:10::/48"]);
  eq(p.notes, [
    "1 range(s) had host bits set and were narrowed to their network",
    "1 repeated range(s) were dropped",
  ]);
});

Deno.test("import: the written YAML reads back as the same profile", () => {
  const p = importProfile("# T, 1\n192.0.2.0/24\n2001:db8::/32\n", "t.txt");
  const text = formatProfile(p, [`Imported by xvpn profile import`, ...p.notes]);
  const back = parseProfile(text, "out/t.yaml");
  eq(back, {
    name: "t",
    description: "T",
    source: 'imported from "t.txt" (Netch text mode)',
    cidrs: p.cidrs,
    cidrs6: p.cidrs6,
    domains: [],
    ports: [],
    file: "out/t.yaml",
  });
});

Deno.test("import: every unreadable line of a Netch text mode is named by file and line", () => {
  eq(
    errors("# Bad, 1\n192.0.2.0/24\n  game.example.com\n#include <other.h>\n0.0.0.0/0\n", "b.txt"),
    [
      'b.txt:3:3: expected an IPv4 or IPv6 CIDR such as 192.0.2.0/24 or 2001:db8::/32, got "game.example.com"',
      "b.txt:4:1: #include is not followed: import the included mode on its own",
      'b.txt:5:1: "0.0.0.0/0" routes everything: that is a full tunnel (the client\'s ' +
      "full_tunnel setting), not a game profile",
    ],
  );
});

Deno.test("import: Netch bypass, process and proxy modes are refused saying why", () => {
  const bypass = errors("# Bypass LAN, 2, 1\n192.168.0.0/16\n", "bypass.txt");
  eq(bypass.length, 1);
  ok(bypass[0]!.startsWith('bypass.txt:1:1: this is a Netch mode of type 2 ("bypass rule IPs")'));
  ok(bypass[0]!.includes('has no "everything except" form'), bypass[0]);
  const proc = errors("# Some Game\ngame.exe\n", "proc.txt");
  ok(proc[0]!.includes("type 0 (process mode)") && proc[0]!.includes("profile learn"), proc[0]);
  ok(errors("# Socks, 4\n", "s.txt")[0]!.includes("type 4, which is a proxy or sharing mode"));
  ok(errors("192.0.2.0/24\n", "nohead.txt")[0]!.includes("expected a Netch mode header"));
  eq(errors("# Empty, 1\n\n", "e.txt"), [
    "e.txt:1:1: this Netch text mode holds no address ranges",
  ]);
});

Deno.test("import: a Netch JSON TunMode imports handle; unrelated bypass entries are dropped", () => {
  const p = importProfile(
    `{
\t"type": "TunMode",
\t"remark": { "zh-CN": "游戏", "en": "Game" },
\t"bypass": ["10.0.0.0/8", "fd00::/8"],
\t"handle": ["192.0.2.0/24", "2001:db8::/32"]
}`,
    "Game.json",
  );
  eq(p.format, "netch-json");
  eq(p.description, "Game");
  eq(ranges(p), ["192.0.2.0/24", "2001:db8::/32"]);
  eq(p.notes, ["2 bypass range(s) outside every handled range were dropped (no effect)"]);
  // A numeric type of either numbering, and a plain-text remark.
  const old = importProfile('{"type": 3, "remark": "Old", "handle": ["198.51.100.0/24"]}', "o");
  eq([old.description, old.format, ranges(old)], ["Old", "netch-json", ["198.51.100.0/24"]]);
});

Deno.test("import: Netch JSON errors carry line and column; exceptions and process modes refused", () => {
  eq(
    errors(
      `{
  "type": "TunMode",
  "handle": ["192.0.2.0/24", "not-a-cidr", 7],
  "bypass": ["192.0.2.128/25"]
}`,
      "x.json",
    ),
    [
      'x.json:3:30: handle[1]: expected an IPv4 or IPv6 CIDR such as 192.0.2.0/24 or 2001:db8::/32, got "not-a-cidr"',
      'x.json:3:44: handle[2]: expected an IPv4 or IPv6 CIDR such as 192.0.2.0/24 or 2001:db8::/32, got "7"',
      "x.json:4:14: bypass[0]: bypass 192.0.2.128/25 overlaps handled 192.0.2.0/24: a profile " +
      "has no exceptions inside its ranges, so this mode cannot be imported as it means",
    ],
  );
  eq(
    errors(
      `{"type": "TunMode", "handle": ["192.0.2.0/24"], "bypass": ["192.0.2.128/25"]}`,
      "y.json",
    ),
    [
      "y.json:1:60: bypass[0]: bypass 192.0.2.128/25 overlaps handled 192.0.2.0/24: a profile has " +
      "no exceptions inside its ranges, so this mode cannot be imported as it means",
    ],
  );
  const proc = errors(`{"type": "ProcessMode", "handle": ["game.exe"]}`, "p.json");
  ok(proc[0]!.startsWith("p.json:1:10: type: this is a Netch ProcessMode"), proc[0]);
  ok(errors(`{"type": 1}`, "s.json")[0]!.includes("this is a Netch ShareMode"));
  ok(
    errors(`{"handle": []}`, "n.json")[0]!.includes('expected a Netch mode type such as "TunMode"'),
  );
  ok(errors(`{"type": "TunMode", `, "broken.json")[0]!.startsWith("broken.json:1:"));
});

Deno.test("import: an SSTap rule file becomes a profile; bad lines are named", () => {
  const p = importProfile(
    "#Test-Game-asia,测试游戏-亚洲,0,0,1,0,1,0,By-test\n192.0.2.0/24\n198.51.100.0/25\n\n",
    "rules/Test-Game-asia.rules",
  );
  eq([p.name, p.description, p.format], [
    "test-game-asia",
    "Test-Game-asia / 测试游戏-亚洲",
    "sstap",
  ]);
  eq(ranges(p), ["192.0.2.0/24", "198.51.100.0/25"]);
  eq(errors("#T,T,0,0,1,0,1,0,By-x\n192.0.2.0/24\n192.0.2.0-192.0.2.9\n", "t.rules"), [
    't.rules:3:1: expected an IPv4 or IPv6 CIDR such as 192.0.2.0/24 or 2001:db8::/32, got "192.0.2.0-192.0.2.9"',
  ]);
  ok(errors("#Skip,Skip,1,1,1,0,1,0,By-x\n10.0.0.0/8\n", "s.rules")[0]!.includes("a bypass list"));
  ok(errors("192.0.2.0/24\n", "h.rules")[0]!.includes("expected an SSTap rule header"));
});

Deno.test("import: format detection, names, and --name", () => {
  eq(detectFormat("{}", "mode"), "netch-json");
  eq(detectFormat("#A,B,0,0,1,0,1,0,By-x\n", "noext"), "sstap");
  eq(detectFormat("# A, 1\n", "noext"), "netch-text");
  eq(detectFormat("# A, 1\n", "x.rules"), "sstap");
  eq(importedProfileName("/a/b/Among Us (Asia).rules"), "among-us-asia");
  eq(importedProfileName("游戏.txt"), undefined);
  eq(
    errors("# 游戏, 1\n192.0.2.0/24\n", "游戏.txt"),
    ["游戏.txt:1:1: cannot make a profile name from the file's name; give one with --name"],
  );
  eq(importProfile("# 游戏, 1\n192.0.2.0/24\n", "游戏.txt", "my-game").name, "my-game");
  ok(errors("# A, 1\n192.0.2.0/24\n", "a.txt", "../x")[0]!.includes("is not a profile name"));
});
