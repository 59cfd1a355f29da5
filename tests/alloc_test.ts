/**
 * The data path allocates nothing per packet once warm: a client and a server core seal and
 * open 1200-byte packets both ways with libsodium, PacketBufs made once and the cores' reused
 * results. Run in a child process under `--trace-gc`: any per-packet object would fill the
 * young generation many times over in 400k operations, and each scavenge prints a line.
 */
import { assertEquals } from "../src/testing/assert.ts";

Deno.test("data path seals and opens 400k packets without a garbage collection", async () => {
  const probe = new URL("./support/alloc_probe.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--trace-gc", probe],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
  const measured = text.slice(text.indexOf("---- measured"), text.indexOf("---- end"));
  const gcs = measured.split("\n").filter((l) => /Scavenge|Mark-Compact|Mark-sweep/.test(l));
  console.log(`  400k seal/open operations: ${gcs.length} garbage collections`);
  assertEquals(gcs.length, 0, gcs.join("\n"));
});
