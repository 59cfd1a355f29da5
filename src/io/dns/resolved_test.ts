/** Golden transcripts for the systemd-resolved path (plans and the commands actually run). */
import { assert, assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { parseIPv4 } from "../../lib/ip.ts";
import { CommandError, type CommandResult, RecordingRunner } from "../command.ts";
import {
  planResolvedApply,
  planResolvedRestore,
  ResolvedBackend,
  resolvedRunning,
} from "./resolved.ts";

const ip = (t: string): number => parseIPv4(t)!;
const fail = (stderr: string): CommandResult => ({ code: 1, stdout: "", stderr });

Deno.test("planResolvedApply: servers on the link, then ~. so every name goes there", () => {
  assertEquals(planResolvedApply([ip("10.77.0.1"), ip("1.1.1.1")], "xvpn0"), [
    ["resolvectl", "dns", "xvpn0", "10.77.0.1", "1.1.1.1"],
    ["resolvectl", "domain", "xvpn0", "~."],
  ]);
  assertEquals(planResolvedRestore("xvpn0"), [["resolvectl", "revert", "xvpn0"]]);
});

Deno.test("ResolvedBackend: apply, re-apply, restore once", async () => {
  const runner = new RecordingRunner();
  const b = new ResolvedBackend(runner);
  await b.apply([ip("10.77.0.1")], "xvpn0");
  assert(b.active);
  assertEquals(b.ifname, "xvpn0");
  await b.apply([ip("10.77.0.53")], "xvpn0");
  await b.restore();
  await b.restore();
  assertEquals(runner.transcript(), [
    "resolvectl dns xvpn0 10.77.0.1",
    "resolvectl domain xvpn0 ~.",
    "resolvectl dns xvpn0 10.77.0.53",
    "resolvectl domain xvpn0 ~.",
    "resolvectl revert xvpn0",
  ]);
  assert(!b.active);
});

Deno.test("ResolvedBackend: a failed step reverts the link and rethrows the CommandError", async () => {
  const runner = new RecordingRunner((argv) =>
    argv[1] === "domain" ? fail("Failed to set domain configuration: Access denied") : undefined
  );
  const b = new ResolvedBackend(runner);
  const err = await assertRejects(
    () => b.apply([ip("10.77.0.1")], "xvpn0"),
    CommandError,
  ) as CommandError;
  assertEquals(err.argv, ["resolvectl", "domain", "xvpn0", "~."]);
  assertEquals(err.output, "Failed to set domain configuration: Access denied");
  assertEquals(runner.transcript(), [
    "resolvectl dns xvpn0 10.77.0.1",
    "resolvectl domain xvpn0 ~.",
    "resolvectl revert xvpn0",
  ]);
  assert(!b.active);
});

Deno.test("resolvedRunning: true only when resolvectl status answers", async () => {
  assertEquals(await resolvedRunning(new RecordingRunner()), true);
  const down = new RecordingRunner(() => fail("Failed to get global data: Unit not found"));
  assertEquals(await resolvedRunning(down), false);
  const missing = {
    run: (argv: readonly string[]) =>
      Promise.reject(new CommandError(argv, -1, "No such file or directory")),
  };
  assertEquals(await resolvedRunning(missing), false);
});
