/**
 * Where xvpn keeps what must outlive a crashed process: `/run/xvpn` (tmpfs: a reboot clears it,
 * as it should, since a reboot also clears every route and sysctl we changed). Files are named
 * per TUN name and, outside the initial network namespace, per namespace: /run is shared by all
 * namespaces, and each has its own routes, sysctls and often the same interface names.
 *
 * On Windows: `%ProgramData%\xvpn` (machine-wide, writable by administrators, which xvpn must
 * be there). It survives a reboot, unlike /run; the journal's undo commands then fail harmlessly
 * for routes a reboot already cleared (`store=active`), and still put back what did survive.
 *
 * @module
 */
import { linuxSystem } from "../dns/system.ts";

/** The state directory on `os`; `env` is read only on Windows (`ProgramData`). */
export function stateDirFor(
  os: typeof Deno.build.os,
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): string {
  if (os !== "windows") return "/run/xvpn";
  return `${env("ProgramData") ?? "C:\\ProgramData"}\\xvpn`;
}

/** The state directory. */
export const STATE_DIR = stateDirFor(Deno.build.os);

/** `<dir>/<ifname>[.<netns>].<suffix>` (`<dir>\<ifname>.<suffix>` on Windows). */
export async function statePath(
  dir: string,
  ifname: string,
  suffix: string,
  netnsTag: () => Promise<string | undefined> = () => linuxSystem.netnsTag(),
  os: typeof Deno.build.os = Deno.build.os,
): Promise<string> {
  const tag = await netnsTag();
  const sep = os === "windows" ? "\\" : "/";
  return `${dir}${sep}${ifname}${tag ? `.${tag}` : ""}.${suffix}`;
}

/** The directory of a state file: up to its last separator (`/`, or `\` on Windows). */
export function parentDir(path: string): string {
  return path.slice(0, Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"))) || "/";
}
