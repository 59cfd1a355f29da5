/** Windows DNS: the planned commands, rollback, restore, the journal and crash recovery. */
import {
  assert,
  assertEquals,
  assertRejects,
  assertThrows,
} from "../../../tests/support/assert.ts";
import { parseIPv4 } from "../../lib/ip.ts";
import { parseIPv6 } from "../../lib/ip6.ts";
import { type CommandResult, RecordingRunner } from "../command.ts";
import { Journal } from "../state/journal.ts";
import { DnsApplier, DnsNotApplied } from "./applier.ts";
import { systemDns } from "./platform.ts";
import { planNrptRemove, planWindowsDns, WindowsDnsApplier } from "./windows.ts";

const ip = (t: string): number => parseIPv4(t)!;
const lines = (argvs: string[][]): string[] => argvs.map((a) => a.join(" "));

Deno.test("planWindowsDns() sets the adapter's servers per family and one NRPT rule", () => {
  const steps = planWindowsDns("xvpn0", [ip("10.7.0.1"), ip("10.7.0.53")], [
    parseIPv6("fd00:7::1")!,
  ]);
  assertEquals(lines(steps.map((s) => s.up)).slice(0, 3), [
    "netsh interface ipv4 set dnsservers name=xvpn0 source=static address=10.7.0.1 " +
    "register=none validate=no",
    "netsh interface ipv4 add dnsservers name=xvpn0 address=10.7.0.53 index=2 validate=no",
    "netsh interface ipv6 set dnsservers name=xvpn0 source=static address=fd00:7::1 " +
    "register=none validate=no",
  ]);
  const nrpt = steps[3]!.up;
  assertEquals(nrpt.slice(0, 4), ["powershell", "-NoProfile", "-NonInteractive", "-Command"]);
  assert(
    nrpt[4]!.includes(
      "Add-DnsClientNrptRule -Namespace '.' -NameServers '10.7.0.1','10.7.0.53','fd00:7::1' " +
        "-Comment 'xvpn xvpn0'",
    ),
    nrpt[4],
  );
  // Undo: the rule by its comment, then every server the adapter got, per family.
  assertEquals(steps[3]!.down, planNrptRemove("xvpn0"));
  assertEquals(steps.filter((s) => s.down).length, 3);
  assertEquals(steps[1]!.down, undefined); // "delete dnsservers address=all" covers it
  assertThrows(() => planWindowsDns("xvpn0", []), Error, "no DNS servers");
  assertThrows(() => planWindowsDns("x'0", [ip("10.7.0.1")]), Error, "bad Windows");
});

Deno.test("planWindowsDns('metric') uses the interface metric instead of an NRPT rule", () => {
  const steps = planWindowsDns("xvpn0", [ip("10.7.0.1")], [], "metric");
  assertEquals(lines(steps.map((s) => s.up)), [
    "netsh interface ipv4 set dnsservers name=xvpn0 source=static address=10.7.0.1 " +
    "register=none validate=no",
    "netsh interface ipv4 set interface xvpn0 metric=1 store=active",
  ]);
});

Deno.test("WindowsDnsApplier journals the undo first, rolls back a failure, restores", async () => {
  const dir = await Deno.makeTempDir({ prefix: "xvpn-dns-win-" });
  try {
    const journal = new Journal(`${dir}/xvpn0.state.json`);
    const failNrpt = (argv: readonly string[]): CommandResult | undefined =>
      argv[0] === "powershell" && argv[4]!.includes("Add-DnsClientNrptRule")
        ? { code: 1, stdout: "", stderr: "Add-DnsClientNrptRule : Access is denied." }
        : undefined;
    const runner = new RecordingRunner(failNrpt);
    const dns = new WindowsDnsApplier({
      runner,
      journal: { journal, key: "dns", what: "DNS of xvpn0" },
    });
    await assertRejects(() => dns.apply([ip("10.7.0.1")], "xvpn0"), Error, "Access is denied");
    assertEquals(dns.active, false);
    assertEquals(
      runner.transcript().at(-1),
      "netsh interface ipv4 delete dnsservers name=xvpn0 address=all validate=no",
    );
    assertEquals(journal.pending, false);

    const ok = new RecordingRunner();
    const dns2 = new WindowsDnsApplier({
      runner: ok,
      journal: { journal, key: "dns", what: "DNS" },
    });
    const said = await dns2.apply([ip("10.7.0.1")], "xvpn0");
    assert(said.includes('NRPT rule "xvpn xvpn0"'), said);
    const file = JSON.parse(await Deno.readTextFile(journal.path));
    assertEquals(file.entries.dns.undo, [
      planNrptRemove("xvpn0"),
      [
        "netsh",
        "interface",
        "ipv4",
        "delete",
        "dnsservers",
        "name=xvpn0",
        "address=all",
        "validate=no",
      ],
    ]);
    ok.calls.length = 0;
    assertEquals(await dns2.restore(), "DNS settings of xvpn0 removed");
    assertEquals(ok.calls.length, 2);
    assertEquals(await dns2.restore(), undefined);
    assertEquals(journal.pending, false);
    await assertRejects(() => dns2.apply([], "xvpn0"), DnsNotApplied);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("WindowsDnsApplier.recoverStale() removes a killed run's NRPT rule", async () => {
  const runner = new RecordingRunner(() => ({ code: 0, stdout: "2\r\n", stderr: "" }));
  const said = await new WindowsDnsApplier({ runner }).recoverStale("xvpn0");
  assertEquals(said, "removed 2 NRPT rule(s) an earlier xvpn on xvpn0 left");
  assertEquals(runner.calls, [planNrptRemove("xvpn0")]);
  const none = new RecordingRunner(() => ({ code: 0, stdout: "0\r\n", stderr: "" }));
  assertEquals(await new WindowsDnsApplier({ runner: none }).recoverStale("xvpn0"), undefined);
});

Deno.test("systemDns() picks the Windows applier on Windows only", () => {
  const runner = new RecordingRunner();
  assert(systemDns({ runner, os: "windows" }) instanceof WindowsDnsApplier);
  assert(systemDns({ runner, os: "linux" }) instanceof DnsApplier);
});
