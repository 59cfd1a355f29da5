/**
 * Loading the data-path AEAD without paying for what is not used: libsodium is a small FFI
 * binding, but `node:crypto` pulls in a large slice of Deno's Node compatibility layer (about
 * 8 MB of RSS per isolate, measured). The runtime loads it only when libsodium is missing.
 * (`createAead` in aead.ts imports both statically; tests and tools use that one.)
 *
 * @module
 */
import type { Aead } from "./aead.ts";
import { createSodiumAead } from "./sodium.ts";

/** Like `createAead`, but imports node:crypto only when it is the one chosen. */
export async function loadAead(
  prefer: "libsodium" | "node:crypto" | "auto" = "auto",
): Promise<Aead> {
  if (prefer === "libsodium") return createSodiumAead();
  if (prefer === "auto" && Deno.permissions.querySync({ name: "ffi" }).state === "granted") {
    try {
      return createSodiumAead();
    } catch {
      // fall through to node:crypto
    }
  }
  const { createNodeAead } = await import("./node_aead.ts");
  return createNodeAead();
}
