/**
 * The data path allocates nothing per packet once warm: a client and a server core seal and
 * open 1200-byte packets both ways with libsodium, PacketBufs made once and the cores' reused
 * results. Run in a child process under `--trace-gc`: 1.2M operations that allocated even
 * 16 bytes each would fill the young generation several times over, and every scavenge prints
 * a line; the run must collect no more often than a run without them.
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
  return new TextDecoder().decode(out.stdout).split("\n").filter((l) =>
    /Scavenge|Mark-Compact/.test(l)
  )
    .length;
}

Deno.test("data path seals and opens 1.2M packets without a garbage collection", async () => {
  const base = await collections(0);
  const long = await collections(300_000);
  console.log(`  collections: ${base} for setup alone, ${long} with 1.2M seal/open operations`);
  assert(long <= base + 1, `${long - base} collections more: something allocates per packet`);
});
