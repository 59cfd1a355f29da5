import { assert, assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { parseCidr } from "../../lib/ip.ts";
import { CommandError, type CommandResult, RecordingRunner } from "../command.ts";
import { Nat } from "./nat.ts";

const pool = parseCidr("10.7.0.0/24")!;
const SCRIPT = "add table ip xvpn_nat_xvpn0; delete table ip xvpn_nat_xvpn0; " +
  "add table ip xvpn_nat_xvpn0 { chain postrouting { type nat hook postrouting priority 100; " +
  'policy accept; ip saddr 10.7.0.0/24 oifname "eth0" masquerade; }; }';

function host(forward: string, fail?: (line: string) => string | undefined): RecordingRunner {
  return new RecordingRunner((argv): CommandResult | undefined => {
    const line = argv.join(" ");
    const err = fail?.(line);
    if (err !== undefined) return { code: 1, stdout: "", stderr: err };
    if (line === "sysctl -n net.ipv4.ip_forward") {
      return { code: 0, stdout: `${forward}\n`, stderr: "" };
    }
    return undefined;
  });
}

Deno.test("Nat.enable() remembers ip_forward and disable() restores it", async () => {
  const runner = host("0");
  const nat = new Nat(runner, "xvpn0");
  await nat.enable(pool, "eth0");
  assert(nat.enabled);
  await nat.disable();
  assert(!nat.enabled);
  await nat.disable(); // idempotent
  assertEquals(runner.transcript(), [
    "sysctl -n net.ipv4.ip_forward",
    `nft ${SCRIPT}`,
    "sysctl -w net.ipv4.ip_forward=1",
    "sysctl -w net.ipv4.ip_forward=0",
    "nft delete table ip xvpn_nat_xvpn0",
  ]);
});

Deno.test("Nat.disable() leaves forwarding on when it was on before", async () => {
  const runner = host("1");
  const nat = new Nat(runner, "xvpn0");
  await nat.enable(pool, "eth0");
  await nat.enable(pool, "eth0"); // re-enable replaces the table, reads nothing again
  await nat.disable();
  assertEquals(runner.transcript(), [
    "sysctl -n net.ipv4.ip_forward",
    `nft ${SCRIPT}`,
    "sysctl -w net.ipv4.ip_forward=1",
    `nft ${SCRIPT}`,
    "sysctl -w net.ipv4.ip_forward=1",
    "nft delete table ip xvpn_nat_xvpn0",
  ]);
});

Deno.test("Nat.enable() undoes the table when forwarding cannot be enabled", async () => {
  const runner = host(
    "0",
    (l) => l.startsWith("sysctl -w net.ipv4.ip_forward=1") ? "read-only /proc" : undefined,
  );
  const nat = new Nat(runner, "xvpn0");
  const err = await assertRejects(() => nat.enable(pool, "eth0"), CommandError) as CommandError;
  assertEquals(err.argv, ["sysctl", "-w", "net.ipv4.ip_forward=1"]);
  assert(!nat.enabled);
  assertEquals(runner.transcript().slice(3), [
    "sysctl -w net.ipv4.ip_forward=0",
    "nft delete table ip xvpn_nat_xvpn0",
  ]);
});

Deno.test("Nat.disable() treats a missing table as gone and reports other failures", async () => {
  const runner = host(
    "0",
    (l) =>
      l.startsWith("nft delete")
        ? "Error: Could not process rule: No such file or directory"
        : l === "sysctl -w net.ipv4.ip_forward=0"
        ? "permission denied"
        : undefined,
  );
  const nat = new Nat(runner);
  await nat.enable(pool);
  const err = await assertRejects(() => nat.disable(), AggregateError) as AggregateError;
  assertEquals(err.errors.length, 1);
  assert(err.message.includes("sysctl -w net.ipv4.ip_forward=0"), err.message);
});
