/**
 * The data path allocates nothing per packet once warm: a client and a server core seal and
 * open 1200-byte packets both ways with libsodium, PacketBufs made once and the cores' reused
 * results. Run in a child process under `--trace-gc`: 1.2M operations that allocated even
 * 16 bytes each would fill the young generation several times over, and every scavenge prints
 * a line. Only the collections between the probe's "warm" and "done" markers count (setup and
 * JIT warm-up collect at times that vary with the machine's load): at most one.
 */
import { assert } from "./support/assert.ts";

async function collections(rounds: number): Promise<number> {
  const probe = new URL("./support/alloc_probe.ts", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--trace-gc", probe, String(rounds)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
  const lines = new TextDecoder().decode(out.stdout).split("\n");
  const from = lines.indexOf("-- warm --"), to = lines.indexOf("-- done --");
  if (from < 0 || to < from) throw new Error("the probe printed no markers");
  return lines.slice(from, to).filter((l) => /Scavenge|Mark-Compact/.test(l)).length;
}

Deno.test("data path seals and opens 1.2M packets without a garbage collection", async () => {
  const long = await collections(300_000);
  console.log(`  collections during 1.2M seal/open operations (after warm-up): ${long}`);
  assert(long <= 1, `${long} collections: something allocates per packet`);
});
