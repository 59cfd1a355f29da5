/**
 * Writing a decrypted packet to the TUN, shared by both data paths. A module of its own so the
 * data-plane Worker does not load the logging stack with it.
 *
 * @module
 */
import type { DropCounters } from "../core/wire.ts";
import type { TunDevice } from "../io/tun/device.ts";

/** Writes one packet to the TUN; a full queue or a refused packet is a counted drop. */
export function writeTun(tun: TunDevice, buf: Uint8Array, len: number, drops: DropCounters): void {
  try {
    if (tun.write(buf, len) < 0) drops.tun_full++;
  } catch {
    drops.tun_error++;
  }
}
