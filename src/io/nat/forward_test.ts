import { assertEquals, assertRejects } from "../../../tests/support/assert.ts";
import { type CommandResult, RecordingRunner } from "../command.ts";
import { Journal, recoverJournal } from "../state/journal.ts";
import { Forwarding } from "./forward.ts";

const V4 = "net.ipv4.ip_forward";
const V6 = "net.ipv6.conf.all.forwarding";

/** A host whose forwarding sysctls read as given; `failSet` makes writing one fail. */
function host(values: Record<string, string>, failSet?: string): RecordingRunner {
  return new RecordingRunner((argv): CommandResult | undefined => {
    if (argv[1] === "-n") return { code: 0, stdout: `${values[argv[2]!]}\n`, stderr: "" };
    if (failSet && argv[2]?.startsWith(failSet)) return { code: 1, stdout: "", stderr: "denied" };
    return undefined;
  });
}

async function journalAt(): Promise<
  { journal: Journal; path: string; text: () => Promise<string> }
> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/xvpn0.state.json`;
  return {
    journal: new Journal(path),
    path,
    text: () => Deno.readTextFile(path).catch(() => ""),
  };
}

Deno.test("Forwarding: on while needed, the old value journaled first, put back at restore", async () => {
  const runner = host({ [V4]: "0", [V6]: "1" });
  const j = await journalAt();
  const f = new Forwarding(runner, j.journal, "forward", "forwarding of xvpn0");
  assertEquals(await f.enable(V4), "0");
  assertEquals(await f.enable(V6), "1", "already on: left alone");
  assertEquals(await f.enable(V4), "0", "a second enable changes nothing");
  const rec = JSON.parse(await j.text());
  assertEquals(rec.entries.forward.undo, [["sysctl", "-w", `${V4}=0`]]);
  await f.restore();
  await f.restore(); // idempotent
  assertEquals(runner.transcript(), [
    `sysctl -n ${V4}`,
    `sysctl -w ${V4}=1`,
    `sysctl -n ${V6}`,
    `sysctl -w ${V4}=0`,
  ]);
  assertEquals(await j.text(), "", "nothing left in the journal");
});

Deno.test("Forwarding: a killed run's value comes back from the journal", async () => {
  const j = await journalAt();
  await new Forwarding(host({ [V4]: "0" }), j.journal).enable(V4);
  // No restore(): the process died. The next start runs the journal.
  const next = new RecordingRunner();
  const r = await recoverJournal(j.path, next);
  assertEquals(r?.found, ["forwarding"]);
  assertEquals(next.transcript(), [`sysctl -w ${V4}=0`]);
});

Deno.test("Forwarding: a write that fails leaves nothing journaled and throws", async () => {
  const j = await journalAt();
  const f = new Forwarding(host({ [V4]: "0" }, V4), j.journal);
  await assertRejects(() => f.enable(V4), Error, "denied");
  assertEquals(await j.text(), "");
  await assertRejects(
    () => new Forwarding(host({ [V4]: "2" })).enable(V4),
    Error,
    "unexpected",
  );
});
