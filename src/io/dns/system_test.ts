import { assertEquals } from "../../../tests/support/assert.ts";
import { isInitialNetns, netnsTagOf, parseMountInfo } from "./system.ts";

Deno.test("parseMountInfo: mount points, with octal escapes undone", () => {
  const text = [
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
    "640 22 0:5 /netns/x/resolv.conf /etc/resolv.conf rw - ext4 /dev/sda1 rw",
    "641 22 0:6 / /mnt/with\\040space rw - tmpfs tmpfs rw",
    "",
  ].join("\n");
  assertEquals(parseMountInfo(text), ["/", "/etc/resolv.conf", "/mnt/with space"]);
});

Deno.test("netnsTagOf: the namespace inode as a file-name-safe tag", () => {
  assertEquals(netnsTagOf("net:[4026532281]"), "net4026532281");
});

Deno.test("isInitialNetns: pid 1's namespace when readable, else not one named in /run/netns", () => {
  assertEquals(isInitialNetns("net:[4026531840]", "net:[4026531840]", []), true);
  assertEquals(isInitialNetns("net:[4026532462]", "net:[4026531840]", []), false);
  // pid 1 unreadable (EACCES): an `ip netns` namespace is still recognized by its mount.
  assertEquals(isInitialNetns("net:[4026532462]", undefined, [4026532100, 4026532462]), false);
  assertEquals(isInitialNetns("net:[4026531840]", undefined, [4026532100, 4026532462]), true);
});
