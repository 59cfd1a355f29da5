/**
 * Opening the platform's TUN device.
 *
 * @module
 */
import type { TunDevice } from "./device.ts";
import { openLinuxTun } from "./linux.ts";

/**
 * Opens (creating if needed) a layer-3 TUN device named `name` — non-blocking, IP packets
 * without a packet-information header. Only Linux is supported today; elsewhere this throws.
 */
export function openTun(
  name: string,
  opts: { vnetHdr?: boolean; offload?: boolean } = {},
): TunDevice {
  if (Deno.build.os !== "linux") {
    throw new Error(
      `cannot create TUN device "${name}": only Linux can open a TUN device today ` +
        `(Windows Wintun and macOS utun are planned)`,
    );
  }
  return openLinuxTun(name, opts);
}
