/**
 * xvpn entry point: everything happens in {@link main}; this file only maps its result to the
 * process exit code.
 *
 * @module
 */
import { main } from "./src/cli/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
