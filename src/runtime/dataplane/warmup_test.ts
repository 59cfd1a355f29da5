import { assert } from "../../../tests/support/assert.ts";
import { loadAead } from "../../crypto/aead.ts";
import { warmUp } from "./warmup.ts";

Deno.test("warmUp() drives real traffic through a throwaway pair of loops", async () => {
  const t0 = performance.now();
  const through = warmUp(await loadAead("auto"), 500);
  const ms = performance.now() - t0;
  console.log(`  ${through} packets through in ${ms.toFixed(0)} ms`);
  // Two packets a round one way or the other, and a bulk one every eighth: nearly all of them.
  assert(through > 1000, `only ${through} packets came through`);
});
