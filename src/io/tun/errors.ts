/**
 * Turning a failed TUN system call into a message that says what to do about it.
 *
 * @module
 */
import { Errno, errnoName } from "../_libc.ts";

/**
 * Advice for an errno from opening `/dev/net/tun` (`op` = "open") or from `TUNSETIFF`
 * (`op` = "ioctl"), or undefined when there is nothing better to say than the errno itself.
 */
export function tunErrorAdvice(op: "open" | "ioctl", errno: number): string | undefined {
  switch (errno) {
    case Errno.EPERM:
      return "run as root or grant CAP_NET_ADMIN";
    case Errno.EACCES:
      return "run as root, or grant CAP_NET_ADMIN and make /dev/net/tun readable and writable";
    case Errno.ENOENT:
    case Errno.ENODEV:
    case Errno.ENXIO:
      return op === "open" ? "load the tun module: modprobe tun" : undefined;
    case Errno.EBUSY:
      return "the name is in use by another open TUN device; pick another name or stop it";
    case Errno.EINVAL:
      return op === "ioctl"
        ? "a device with this name already exists and is not a TUN device"
        : undefined;
    case Errno.EMFILE:
    case Errno.ENFILE:
      return "too many open files";
    default:
      return undefined;
  }
}

/**
 * The full message for a TUN creation failure, e.g.
 * `cannot create TUN device "xvpn0": ioctl TUNSETIFF failed: EPERM (run as root or grant
 * CAP_NET_ADMIN)`. `describe` supplies the errno's text when there is no advice.
 */
export function tunErrorMessage(
  name: string,
  op: "open" | "ioctl",
  errno: number,
  describe: (errno: number) => string,
): string {
  const what = op === "open" ? "open /dev/net/tun" : "ioctl TUNSETIFF";
  const advice = tunErrorAdvice(op, errno) ?? describe(errno);
  return `cannot create TUN device "${name}": ${what} failed: ${errnoName(errno)} (${advice})`;
}
