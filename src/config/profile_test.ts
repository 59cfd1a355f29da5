import { deepStrictEqual as eq, ok } from "node:assert/strict";
import { parseIPv4 } from "../lib/ip.ts";
import { parseIPv6 } from "../lib/ip6.ts";
import { ConfigError } from "./errors.ts";
import {
  DEFAULT_PROFILE_DIRS,
  findProfile,
  type GameProfile,
  listProfiles,
  normalizeDomain,
  parsePortRange,
  parseProfile,
  profileSearchPath,
  shippedProfileDir,
  UnknownProfileError,
} from "./profile.ts";
import { formatProfile } from "./profile_format.ts";

/** The formatted issue lines of a profile that must be refused. */
function errors(text: string, file = "p/game.yaml"): string[] {
  try {
    parseProfile(text, file);
  } catch (e) {
    if (e instanceof ConfigError) return e.message.split("\n");
    throw e;
  }
  throw new Error("profile was accepted");
}

Deno.test("profile: a full profile parses to the expected values", () => {
  const p = parseProfile(
    `name: game
description: A game
source: https://example.com/ranges
cidrs: [192.0.2.0/24, 2001:db8::/32, 198.51.100.0/25]
domains: [Example.COM, "*.example.net", game.example.org.]
ports: [3074, 27015-27030, udp:3478-3480, "TCP:443"]
`,
    "dir/game.yaml",
  );
  eq(
    p,
    {
      name: "game",
      description: "A game",
      source: "https://example.com/ranges",
      cidrs: [
        { addr: parseIPv4("192.0.2.0")!, prefix: 24 },
        { addr: parseIPv4("198.51.100.0")!, prefix: 25 },
      ],
      cidrs6: [{ addr: parseIPv6("2001:db8::")!, prefix: 32 }],
      domains: ["example.com", "example.net", "game.example.org"],
      ports: [
        { from: 3074, to: 3074 },
        { from: 27015, to: 27030 },
        { proto: "udp", from: 3478, to: 3480 },
        { proto: "tcp", from: 443, to: 443 },
      ],
      file: "dir/game.yaml",
    } satisfies GameProfile,
  );
});

Deno.test("profile: cidrs or domains may be empty, but not both", () => {
  eq(parseProfile("name: a\ndomains: [example.com]\n", "a.yml").cidrs, []);
  eq(parseProfile("name: a\ncidrs: [192.0.2.0/24]\ndomains: []\n", "a.yml").domains, []);
  eq(errors("name: game\ncidrs: []\n"), [
    "p/game.yaml:1:1: a profile needs at least one entry in cidrs or domains",
  ]);
});

Deno.test("profile: mistakes name file:line:col, the key and what was expected", () => {
  eq(
    errors(`name: other
cidrs: [192.0.2.1/24, 10.0.0.0/8, 10.0.0.0/8, nonsense]
domains: [com, 192.0.2.1, "exa mple.com"]
ports: [0, 20-10, "udp:70000", sctp:5]
colour: blue
`),
    [
      'p/game.yaml:1:7: name: expected "game" (the file\'s name without its extension), got ' +
      '"other"',
      'p/game.yaml:2:9: cidrs[0]: expected a network address, got "192.0.2.1/24" which has ' +
      "host bits set; did you mean 192.0.2.0/24?",
      "p/game.yaml:2:35: cidrs[2]: 10.0.0.0/8 is already listed at line 2",
      'p/game.yaml:2:47: cidrs[3]: expected an IPv4 CIDR such as 10.7.0.0/24, got "nonsense"',
      'p/game.yaml:3:11: domains[0]: expected a domain name such as example.com or *.example.com, got "com"',
      'p/game.yaml:3:16: domains[1]: expected a domain name such as example.com or *.example.com, got "192.0.2.1": addresses go in cidrs',
      'p/game.yaml:3:27: domains[2]: expected a domain name such as example.com or *.example.com, got "exa mple.com"',
      "p/game.yaml:4:9: ports[0]: expected a port such as 3074, a range such as " +
      '"27015-27030", or either with a protocol such as "udp:3478-3480", got 0',
      'p/game.yaml:4:12: ports[1]: expected a port such as 3074, a range such as "27015-27030", or either with a protocol such as "udp:3478-3480", got "20-10"',
      'p/game.yaml:4:19: ports[2]: expected a port such as 3074, a range such as "27015-27030", or either with a protocol such as "udp:3478-3480", got "udp:70000"',
      'p/game.yaml:4:32: ports[3]: expected a port such as 3074, a range such as "27015-27030", or either with a protocol such as "udp:3478-3480", got "sctp:5"',
      "p/game.yaml:5:1: colour: unknown key; expected one of name, description, source, cidrs, domains, ports",
    ],
  );
});

Deno.test("profile: a missing name, a bad name, and YAML syntax errors", () => {
  eq(errors("cidrs: [192.0.2.0/24]\n"), [
    "p/game.yaml:1:1: name: missing required key; expected a profile name of 1-64 letters, " +
    "digits, '.', '_' or '-' (not first)",
  ]);
  eq(errors("name: ../x\ncidrs: [192.0.2.0/24]\n", "x.txt"), [
    "x.txt:1:7: name: expected a profile name of 1-64 letters, digits, '.', '_' or '-' " +
    '(not first), got "../x"',
  ]);
  ok(errors("name: [\n")[0]!.startsWith("p/game.yaml:"));
});

Deno.test("profile: domains are normalized; ports parse with and without protocol", () => {
  eq(normalizeDomain("*.Game.Example.COM."), "game.example.com");
  eq(normalizeDomain("localhost"), undefined);
  eq(normalizeDomain("1.2.3.4"), undefined);
  eq(normalizeDomain("-bad.example.com"), undefined);
  eq(parsePortRange("udp:1-65535"), { proto: "udp", from: 1, to: 65535 });
  eq(parsePortRange("65536"), undefined);
  eq(parsePortRange("tcp:"), undefined);
});

Deno.test("profile: formatProfile writes what parseProfile reads back", () => {
  const p = parseProfile(
    `name: round
description: 'Quotes " and # and: colons'
cidrs: [203.0.113.0/24, "2001:db8:1::/48"]
domains: [example.com]
ports: [3074, udp:3478-3480, 27015-27030]
`,
    "round.yaml",
  );
  const text = formatProfile(p, ["Imported by a test", "second line"]);
  ok(text.startsWith('# Imported by a test\n# second line\nname: "round"\n'), text);
  eq(parseProfile(text, "round.yaml"), p);
});

async function withDirs(
  fn: (user: string, etc: string) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "xvpn-profiles-" });
  try {
    await Deno.mkdir(`${root}/user`);
    await Deno.mkdir(`${root}/etc`);
    await fn(`${root}/user`, `${root}/etc`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

Deno.test("profile: findProfile searches the user's dirs in order, then the shipped one", async () => {
  await withDirs(async (user, etc) => {
    await Deno.writeTextFile(`${etc}/g1.yaml`, "name: g1\ncidrs: [192.0.2.0/24]\n");
    await Deno.writeTextFile(`${user}/g1.yml`, "name: g1\ncidrs: [198.51.100.0/24]\n");
    await Deno.writeTextFile(`${user}/g2.yml`, "name: g2\ndomains: [example.com]\n");
    eq((await findProfile("g1", [etc, user])).file, `${etc}/g1.yaml`);
    eq((await findProfile("g1", [user, etc])).file, `${user}/g1.yml`);
    eq((await findProfile("g2", [etc, user])).domains, ["example.com"]);
    // The shipped example is found after the user's dirs.
    eq((await findProfile("example", [etc, user])).file, `${shippedProfileDir()}/example.yaml`);
    try {
      await findProfile("nothere", [etc, user]);
      throw new Error("found a missing profile");
    } catch (e) {
      ok(e instanceof UnknownProfileError, String(e));
      ok(e.available.includes("g1") && e.available.includes("example"), e.message);
      ok(e.message.startsWith(`no profile named "nothere" in ${etc}, ${user}, `), e.message);
      ok(e.message.includes("available: example, g1, g2"), e.message);
    }
    try {
      await findProfile("../etc/passwd", [etc]);
      throw new Error("accepted a path as a name");
    } catch (e) {
      ok(e instanceof UnknownProfileError && e.message.includes("is not a profile name"), `${e}`);
    }
  });
});

Deno.test("profile: listProfiles lists each name once, with invalid files and what they hide", async () => {
  await withDirs(async (user, etc) => {
    await Deno.writeTextFile(`${etc}/g1.yaml`, "name: g1\ncidrs: [192.0.2.0/24]\n");
    await Deno.writeTextFile(`${user}/g1.yaml`, "name: g1\ncidrs: [198.51.100.0/24]\n");
    await Deno.writeTextFile(`${user}/bad.yaml`, "name: notbad\ncidrs: [192.0.2.0/24]\n");
    await Deno.writeTextFile(`${user}/notes.txt`, "not a profile");
    const { profiles, unreadable } = await listProfiles([etc, user, `${user}/missing`]);
    eq(unreadable, []);
    eq(profiles.map((p) => p.name), ["bad", "example", "g1"]);
    const [bad, , g1] = profiles;
    ok(bad!.error instanceof ConfigError && bad!.profile === undefined);
    eq(g1!.file, `${etc}/g1.yaml`);
    eq(g1!.hides, [`${user}/g1.yaml`]);
  });
});

Deno.test("profile: the shipped example profile is valid and cites documentation ranges", async () => {
  const p = await findProfile("example", []);
  eq(p.domains, ["example.com"]);
  eq(p.cidrs.length, 3);
  eq(p.cidrs6.length, 1);
  ok(p.source?.includes("RFC 5737"), p.source);
});

Deno.test("profile: default dirs are /etc first, then XDG_CONFIG_HOME or ~/.config", () => {
  const saved = { xdg: Deno.env.get("XDG_CONFIG_HOME"), home: Deno.env.get("HOME") };
  const restore = (k: string, v: string | undefined) =>
    v === undefined ? Deno.env.delete(k) : Deno.env.set(k, v);
  try {
    Deno.env.set("XDG_CONFIG_HOME", "/x/conf/");
    eq(DEFAULT_PROFILE_DIRS(), ["/etc/xvpn/profiles", "/x/conf/xvpn/profiles"]);
    Deno.env.delete("XDG_CONFIG_HOME");
    Deno.env.set("HOME", "/home/u");
    eq(DEFAULT_PROFILE_DIRS(), ["/etc/xvpn/profiles", "/home/u/.config/xvpn/profiles"]);
    Deno.env.delete("HOME");
    eq(DEFAULT_PROFILE_DIRS(), ["/etc/xvpn/profiles"]);
  } finally {
    restore("XDG_CONFIG_HOME", saved.xdg);
    restore("HOME", saved.home);
  }
  eq(profileSearchPath(["/a/", "/b"]), ["/a", "/b", shippedProfileDir()!]);
});
