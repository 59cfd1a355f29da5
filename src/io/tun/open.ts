/**
 * Opening the platform's TUN device.
 *
 * @module
 */
import type { TunDevice } from "./device.ts";
import { openLinuxTun } from "./linux.ts";
import { openWintun } from "./wintun.ts";
import { findWintunDll, WINTUN_DLL_ENV } from "./wintun_dll.ts";

/** True when TUN devices are Wintun adapters here: on Windows, and on Linux under the test
 * hook (`XVPN_WINTUN_DLL`, the fake). They carry plain packets (no virtio header). */
export function usesWintun(): boolean {
  return Deno.build.os === "windows" ||
    (Deno.build.os === "linux" && !!Deno.env.get(WINTUN_DLL_ENV));
}

/** Test hook: the kernel32 stand-in for the fake wintun (default: the fake library itself). */
export const WINTUN_KERNEL32_ENV = "XVPN_WINTUN_KERNEL32";

/**
 * Opens (creating if needed) a layer-3 TUN device named `name` — non-blocking, IP packets
 * without a packet-information header: a Linux TUN, or on Windows a Wintun adapter (wintun.dll
 * next to the executable, in the current directory, or at `XVPN_WINTUN_DLL`). macOS throws.
 *
 * Test hook: on Linux, `XVPN_WINTUN_DLL` set runs the Windows TUN code over the fake wintun
 * (`tests/support/fakewintun/`), whose library also stands in for kernel32 unless
 * `XVPN_WINTUN_KERNEL32` names another. A Wintun device has no fd and no virtio header, so
 * only the portable data path can use it.
 */
export function openTun(
  name: string,
  opts: { vnetHdr?: boolean; offload?: boolean } = {},
): TunDevice {
  const os = Deno.build.os;
  const fakeDll = os === "linux" ? Deno.env.get(WINTUN_DLL_ENV) : undefined;
  if (os === "windows" || fakeDll) {
    if (opts.vnetHdr) {
      throw new Error(
        `cannot create TUN device "${name}": a Wintun adapter carries plain packets, which ` +
          `only the portable data path takes; set data_path: portable`,
      );
    }
    if (fakeDll) {
      return openWintun(name, {
        dll: fakeDll,
        kernel32: Deno.env.get(WINTUN_KERNEL32_ENV) || fakeDll,
      });
    }
    return openWintun(name, { dll: findWintunDll() });
  }
  if (os !== "linux") {
    throw new Error(
      `cannot create TUN device "${name}": ${os} cannot open a TUN device yet ` +
        `(Linux TUN and Windows Wintun are supported; macOS utun is planned)`,
    );
  }
  return openLinuxTun(name, opts);
}
