import { assertEquals, assertThrows } from "../../../tests/support/assert.ts";
import { findWintunDll, wintunDllCandidates, wintunMissingMessage } from "./wintun_dll.ts";

Deno.test("wintunDllCandidates(): XVPN_WINTUN_DLL alone, else beside the executable, then cwd", () => {
  assertEquals(wintunDllCandidates("D:\\w\\wintun.dll", "C:\\xvpn\\xvpn.exe", "C:\\work"), [
    "D:\\w\\wintun.dll",
  ]);
  assertEquals(wintunDllCandidates(undefined, "C:\\xvpn\\xvpn.exe", "C:\\work"), [
    "C:\\xvpn\\wintun.dll",
    "C:\\work\\wintun.dll",
  ]);
  // Run from the executable's own directory: one place, not the same one twice.
  assertEquals(wintunDllCandidates("", "C:\\xvpn\\xvpn.exe", "C:\\xvpn"), ["C:\\xvpn\\wintun.dll"]);
  assertEquals(wintunDllCandidates(undefined, "/opt/xvpn/xvpn", "/home/p", "/"), [
    "/opt/xvpn/wintun.dll",
    "/home/p/wintun.dll",
  ]);
});

Deno.test("findWintunDll(): the first that exists; none is an error that says where to get it", () => {
  const places = ["C:\\xvpn\\wintun.dll", "C:\\work\\wintun.dll"];
  assertEquals(findWintunDll(places, (p) => p.startsWith("C:\\work")), "C:\\work\\wintun.dll");
  const err = assertThrows(() => findWintunDll(places, () => false), Error);
  assertEquals(err.message, wintunMissingMessage(places));
  assertEquals(
    err.message,
    "wintun.dll not found at C:\\xvpn\\wintun.dll or C:\\work\\wintun.dll: download the signed " +
      "DLL from https://www.wintun.net/ (the publisher) and put wintun.dll (amd64) next to " +
      "xvpn.exe, or set XVPN_WINTUN_DLL; xvpn never downloads it",
  );
});
