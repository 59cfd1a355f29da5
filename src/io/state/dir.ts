/**
 * Where xvpn keeps what must outlive a crashed process: `/run/xvpn` (tmpfs: a reboot clears it,
 * as it should, since a reboot also clears every route and sysctl we changed). Files are named
 * per TUN name and, outside the initial network namespace, per namespace: /run is shared by all
 * namespaces, and each has its own routes, sysctls and often the same interface names.
 *
 * @module
 */
import { linuxSystem } from "../dns/system.ts";

/** The state directory. */
export const STATE_DIR = "/run/xvpn";

/** `<dir>/<ifname>[.<netns>].<suffix>`. */
export async function statePath(
  dir: string,
  ifname: string,
  suffix: string,
  netnsTag: () => Promise<string | undefined> = () => linuxSystem.netnsTag(),
): Promise<string> {
  const tag = await netnsTag();
  return `${dir}/${ifname}${tag ? `.${tag}` : ""}.${suffix}`;
}
