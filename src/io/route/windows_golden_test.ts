/**
 * Golden netsh/PowerShell transcripts of the Windows client, one file per scenario under
 * tests/golden/windows/: every argv xvpn would run, in order, as one JSON array per line (so a
 * value with a space stays visibly one argument). No Windows machine runs them here; the files
 * are what a reviewer reads and what a change to the plans must update on purpose:
 *
 *     XVPN_UPDATE_GOLDEN=1 node_modules/.bin/deno test -A src/io/route/windows_golden_test.ts
 *
 * Otherwise each file is compared, and a difference names the scenario and its first differing
 * line. Every argv is also checked to be plain strings with no shell metacharacter in a value.
 */
import { assert, assertEquals } from "../../../tests/support/assert.ts";
import { parseCidr, parseIPv4 } from "../../lib/ip.ts";
import { parseCidr6, parseIPv6 } from "../../lib/ip6.ts";
import { type CommandResult, RecordingRunner } from "../command.ts";
import { WindowsDnsApplier } from "../dns/windows.ts";
import { checkElevated } from "../state/elevation.ts";
import { Journal, recoverJournal } from "../state/journal.ts";
import { RouteApplier } from "./applier.ts";
import type { LinkState } from "./state.ts";
import { planWindowsDown, planWindowsUp } from "./windows.ts";

const GOLDEN = new URL("../../../tests/golden/windows/", import.meta.url);
const UPDATE = Deno.env.get("XVPN_UPDATE_GOLDEN") === "1";

const cidr = (t: string) => parseCidr(t)!;
const ip = (t: string) => parseIPv4(t)!;

/** One golden file: a title, why it exists, and its named sections of argv lists. */
interface Scenario {
  file: string;
  title: string;
  about: string[];
  sections: [name: string, argvs: string[][]][];
}

/** Find-NetRoute's answer for the server: gateway 192.168.1.1 on interface index 12. */
const FOUND_V4 = JSON.stringify([
  { InterfaceAlias: "Ethernet 2", NextHop: null, InterfaceIndex: 12, IPAddress: "192.168.1.20" },
  { InterfaceAlias: "Ethernet 2", NextHop: "192.168.1.1", InterfaceIndex: 12, IPAddress: null },
]);
/** The same for an IPv6 server: the router's link-local address on Wi-Fi (index 14). */
const FOUND_V6 = JSON.stringify([
  { InterfaceAlias: "Wi-Fi", NextHop: null, InterfaceIndex: 14, IPAddress: "2001:db8:1::20" },
  { InterfaceAlias: "Wi-Fi", NextHop: "fe80::1", InterfaceIndex: 14, IPAddress: null },
]);

/** A Windows host: Find-NetRoute answers, `fail` (an argv line) fails, everything else works. */
function host(fail?: string): RecordingRunner {
  return new RecordingRunner((argv): CommandResult | undefined => {
    const script = argv[0] === "powershell" ? argv[4] ?? "" : "";
    if (script.includes("Find-NetRoute -RemoteIPAddress '2001:db8:5::1'")) {
      return { code: 0, stdout: FOUND_V6, stderr: "" };
    }
    if (script.includes("Find-NetRoute")) return { code: 0, stdout: FOUND_V4, stderr: "" };
    if (script.includes("Remove-DnsClientNrptRule")) {
      return { code: 0, stdout: "0\r\n", stderr: "" };
    }
    if (fail !== undefined && argv.join(" ") === fail) {
      return { code: 1, stdout: "The object already exists.", stderr: "" };
    }
    return undefined;
  });
}

const base: LinkState = {
  ifname: "xvpn0",
  address: cidr("10.7.0.2/24"),
  mtu: 1420,
  routes: [cidr("0.0.0.0/0")],
};

/** Runs `up`, takes its calls as one section, then `down` as the next. */
async function upDown(
  runner: RecordingRunner,
  up: () => Promise<unknown>,
  down: () => Promise<unknown>,
): Promise<[string, string[][]][]> {
  await up();
  const upCalls = runner.calls.splice(0);
  await down();
  return [["up", upCalls], ["down", runner.calls.splice(0)]];
}

async function scenarios(): Promise<Scenario[]> {
  const out: Scenario[] = [];

  const split: LinkState = {
    ...base,
    routes: [cidr("10.7.0.0/24"), cidr("10.99.0.0/16"), cidr("192.168.50.0/24")],
    endpoint: { ip: ip("203.0.113.5") },
  };
  out.push({
    file: "split.txt",
    title: "split tunnel",
    about: [
      "Two routes into the tunnel; the connected 10.7.0.0/24 is left to the address. The server",
      "is outside every route, so no lookup and no host route.",
    ],
    sections: [["up", planWindowsUp(split)], ["down", planWindowsDown(split)]],
  });

  {
    const runner = host();
    const routes = new RouteApplier(runner, "windows");
    const s: LinkState = {
      ...base,
      endpoint: { ip: ip("203.0.113.5") },
      bypass: [ip("203.0.113.5"), ip("198.51.100.9"), ip("192.0.2.44")],
    };
    out.push({
      file: "full.txt",
      title: "full tunnel, bypass route to the server and the other nodes",
      about: [
        "0.0.0.0/0 as its two /1 halves (the default route stays). Find-NetRoute gives the way",
        "to the server (gateway 192.168.1.1, interface index 12); the server and the client's",
        "other nodes get /32 host routes that way, before the halves take everything else.",
      ],
      sections: await upDown(runner, () => routes.up(s), () => routes.down()),
    });
  }

  {
    const runner = host();
    const routes = new RouteApplier(runner, "windows");
    const s: LinkState = {
      ...base,
      serverOverIPv6: true,
      address6: parseCidr6("fd00:7::2/64")!,
      routes6: [parseCidr6("::/0")!],
      endpoint6: { ip6: parseIPv6("2001:db8:5::1")! },
    };
    out.push({
      file: "ipv6-carried.txt",
      title: "IPv6 carried, server reached over IPv6",
      about: [
        "The server pushed an IPv6 address; ::/0 becomes ::/1 and 8000::/1 on the tunnel. The",
        "server is an IPv6 address, so IPv4 routes need no host route, and IPv6 gets a /128 via",
        "the router (fe80::1 on interface index 14) that Find-NetRoute names.",
      ],
      sections: await upDown(runner, () => routes.up(s), () => routes.down()),
    });
  }

  {
    const runner = host();
    const routes = new RouteApplier(runner, "windows");
    const s: LinkState = { ...base, endpoint: { ip: ip("203.0.113.5") }, blockIPv6: true };
    out.push({
      file: "ipv6-blocked.txt",
      title: "full IPv4 tunnel, IPv6 blocked",
      about: [
        "The server has no IPv6: the two ::/1 halves go into the tunnel adapter, which has no",
        "IPv6 address, so no IPv6 leaves outside the tunnel (Windows routes have no",
        "'unreachable' type; see windows.ts).",
      ],
      sections: await upDown(runner, () => routes.up(s), () => routes.down()),
    });
  }

  for (const mode of ["nrpt", "metric"] as const) {
    const runner = host();
    const dns = new WindowsDnsApplier({ runner, mode });
    const servers = [ip("10.7.0.1"), ip("10.7.0.53")];
    const servers6 = [parseIPv6("fd00:7::1")!];
    out.push({
      file: `dns-${mode}.txt`,
      title: mode === "nrpt" ? "DNS with an NRPT rule" : "DNS by interface metric (no NRPT)",
      about: mode === "nrpt"
        ? [
          "The pushed servers on the adapter (IPv4 and IPv6), and an NRPT rule sending every",
          'name there, found again by its comment "xvpn xvpn0" (restore, crash recovery).',
        ]
        : [
          "The fallback without the DnsClient cmdlets: the adapter's servers and metric 1, so",
          "Windows asks the tunnel first (other adapters are still asked: weaker).",
        ],
      sections: await upDown(
        runner,
        () => dns.apply(servers, "xvpn0", servers6),
        () => dns.restore(),
      ),
    });
  }

  out.push(await teardown());
  return out;
}

/** A whole run in runtime order, a failed start's rollback, and a killed run's recovery. */
async function teardown(): Promise<Scenario> {
  const s: LinkState = {
    ...base,
    endpoint: { ip: ip("203.0.113.5") },
    bypass: [ip("203.0.113.5"), ip("198.51.100.9")],
  };
  const sections: [string, string[][]][] = [];
  const dir = await Deno.makeTempDir({ prefix: "xvpn-golden-win-" });
  try {
    // A clean run: probe, recover, routes, DNS; cleanup last-in first-out.
    const runner = host();
    const journal = new Journal(`${dir}/xvpn0.state.json`);
    const routes = new RouteApplier(runner, "windows", { journal, key: "routes", what: "routes" });
    const dns = new WindowsDnsApplier({ runner, journal: { journal, key: "dns", what: "DNS" } });
    await checkElevated(runner);
    await dns.recoverStale("xvpn0");
    await routes.up(s);
    await dns.apply([ip("10.7.0.1")], "xvpn0");
    sections.push(["start", runner.calls.splice(0)]);
    await dns.restore();
    await routes.down();
    sections.push(["clean exit", runner.calls.splice(0)]);

    // A start that fails at the first /1 half: what had been done is undone, last first.
    const failing = host(
      "netsh interface ipv4 add route prefix=0.0.0.0/1 interface=xvpn0 store=active",
    );
    await new RouteApplier(failing, "windows").up(s).catch(() => {});
    sections.push(["failed start (rollback)", failing.calls]);

    // A run killed while up: the next start runs what its journal holds.
    const killed = host();
    const j2 = new Journal(`${dir}/xvpn1.state.json`);
    await new RouteApplier(killed, "windows", { journal: j2, key: "routes", what: "routes" })
      .up({ ...s, ifname: "xvpn1" });
    await new WindowsDnsApplier({
      runner: killed,
      journal: { journal: j2, key: "dns", what: "DNS" },
    })
      .apply([ip("10.7.0.1")], "xvpn1");
    const next = new RecordingRunner();
    await recoverJournal(j2.path, next);
    sections.push(["recovery after a kill", next.calls]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return {
    file: "teardown.txt",
    title: "teardown: clean exit, rollback, recovery after a crash",
    about: [
      "A run as runtime/client.ts would make it on Windows (elevation probe, stale NRPT rule,",
      "routes, DNS; cleanup DNS first), then a start whose 0.0.0.0/1 fails and is rolled back,",
      "then what the next start runs from the journal of a run killed while up.",
    ],
    sections,
  };
}

function render(sc: Scenario): string {
  const head = [`# ${sc.title}`, ...sc.about.map((l) => `# ${l}`)];
  const body = sc.sections.flatMap(([name, argvs]) => [
    "",
    `## ${name}`,
    ...argvs.map((a) => JSON.stringify(a)),
  ]);
  return [...head, ...body, ""].join("\n");
}

/** The PowerShell scripts xvpn may run, with every single-quoted value replaced by '?'. */
const SCRIPT_TEMPLATES = new Set([
  "$ErrorActionPreference = '?'; Find-NetRoute -RemoteIPAddress '?' | Select-Object -Property " +
  "InterfaceAlias,NextHop,InterfaceIndex,IPAddress | ConvertTo-Json",
  "$ErrorActionPreference = '?'; $r = @(Get-DnsClientNrptRule | Where-Object Comment -eq '?'); " +
  "$r | Remove-DnsClientNrptRule -Force; Clear-DnsClientCache; $r.Count",
]);
const NRPT_ADD =
  /^(.*); Add-DnsClientNrptRule -Namespace '\?' -NameServers '\?'(,'\?')* -Comment '\?'; Clear-DnsClientCache$/;

/** Every argv: plain strings, a known program, no metacharacter in any value. */
function checkArgv(where: string, argv: unknown): void {
  assert(Array.isArray(argv) && argv.length > 0, `${where}: not an argv`);
  for (const a of argv) {
    assert(typeof a === "string", `${where}: ${JSON.stringify(a)} not a string`);
  }
  const [prog, ...args] = argv as string[];
  if (prog === "netsh" || prog === "net") {
    for (const a of args) {
      assert(/^[A-Za-z0-9 .:/=_-]+$/.test(a), `${where}: metacharacter in ${JSON.stringify(a)}`);
    }
    return;
  }
  assertEquals(prog, "powershell", `${where}: unexpected program`);
  assertEquals(args.slice(0, 3), ["-NoProfile", "-NonInteractive", "-Command"], where);
  assertEquals(args.length, 4, `${where}: one script`);
  const script = args[3]!;
  for (const lit of script.match(/'[^']*'/g) ?? []) {
    assert(/^'[A-Za-z0-9 .:_-]+'$/.test(lit), `${where}: value ${lit} in ${script}`);
  }
  const shape = script.replace(/'[^']*'/g, "'?'");
  const add = NRPT_ADD.exec(shape);
  assert(
    SCRIPT_TEMPLATES.has(shape) || (add !== null && SCRIPT_TEMPLATES.has(add[1]!)),
    `${where}: unknown script ${shape}`,
  );
}

function firstDifference(expected: string, actual: string): string {
  const e = expected.split("\n");
  const a = actual.split("\n");
  for (let i = 0; i < Math.max(e.length, a.length); i++) {
    if (e[i] !== a[i]) {
      return `line ${i + 1}:\n  golden: ${e[i] ?? "(end of file)"}\n  now:    ${
        a[i] ?? "(end of file)"
      }`;
    }
  }
  return "(no difference)";
}

for (const sc of await scenarios()) {
  Deno.test(`Windows golden transcript: ${sc.title} (${sc.file})`, async () => {
    for (const [name, argvs] of sc.sections) {
      assert(argvs.length > 0, `${sc.file}: section ${name} is empty`);
      argvs.forEach((a, i) => checkArgv(`${sc.file} ${name} #${i + 1}`, a));
    }
    const path = new URL(sc.file, GOLDEN);
    const text = render(sc);
    if (UPDATE) {
      await Deno.mkdir(GOLDEN, { recursive: true });
      await Deno.writeTextFile(path, text);
      return;
    }
    const golden = await Deno.readTextFile(path).catch(() => undefined);
    assert(golden !== undefined, `${sc.file} is missing; run with XVPN_UPDATE_GOLDEN=1`);
    if (golden !== text) {
      throw new Error(
        `scenario "${sc.title}" differs from tests/golden/windows/${sc.file}, ` +
          `${
            firstDifference(golden, text)
          }\n(if the change is meant, run with XVPN_UPDATE_GOLDEN=1)`,
      );
    }
  });
}
