import { assertEquals } from "../../../tests/support/assert.ts";
import {
  KERNEL32_SYMBOLS,
  KERNEL32_WAIT_SYMBOLS,
  wideString,
  WINTUN_SYMBOLS,
} from "./wintun_abi.ts";

/**
 * The prototypes xvpn calls, copied verbatim from `api/wintun.h` of WireGuard/wintun at commit
 * ec0a6b98456fe1ba52567bb2add4bbf5f64315a1 (2026-03-18), SAL annotations and all.
 */
const WINTUN_H = `
WINTUN_ADAPTER_HANDLE(WINAPI WINTUN_CREATE_ADAPTER_FUNC)
(_In_z_ LPCWSTR Name, _In_z_ LPCWSTR TunnelType, _In_opt_ const GUID *RequestedGUID);
WINTUN_ADAPTER_HANDLE(WINAPI WINTUN_OPEN_ADAPTER_FUNC)(_In_z_ LPCWSTR Name);
typedef VOID(WINAPI WINTUN_CLOSE_ADAPTER_FUNC)(_In_opt_ WINTUN_ADAPTER_HANDLE Adapter);
typedef VOID(WINAPI WINTUN_GET_ADAPTER_LUID_FUNC)(_In_ WINTUN_ADAPTER_HANDLE Adapter, _Out_ NET_LUID *Luid);
DWORD(WINAPI WINTUN_GET_RUNNING_DRIVER_VERSION_FUNC)(VOID);
WINTUN_SESSION_HANDLE(WINAPI WINTUN_START_SESSION_FUNC)(_In_ WINTUN_ADAPTER_HANDLE Adapter, _In_ DWORD Capacity);
typedef VOID(WINAPI WINTUN_END_SESSION_FUNC)(_In_ WINTUN_SESSION_HANDLE Session);
typedef HANDLE(WINAPI WINTUN_GET_READ_WAIT_EVENT_FUNC)(_In_ WINTUN_SESSION_HANDLE Session);
BYTE *(WINAPI WINTUN_RECEIVE_PACKET_FUNC)(_In_ WINTUN_SESSION_HANDLE Session, _Out_ DWORD *PacketSize);
typedef VOID(
    WINAPI WINTUN_RELEASE_RECEIVE_PACKET_FUNC)(_In_ WINTUN_SESSION_HANDLE Session, _In_ const BYTE *Packet);
BYTE *(WINAPI WINTUN_ALLOCATE_SEND_PACKET_FUNC)(_In_ WINTUN_SESSION_HANDLE Session, _In_ DWORD PacketSize);
typedef VOID(WINAPI WINTUN_SEND_PACKET_FUNC)(_In_ WINTUN_SESSION_HANDLE Session, _In_ const BYTE *Packet);
`;

/** The kernel32 prototypes, as the Win32 API reference (synchapi.h, handleapi.h,
 * errhandlingapi.h, winnt.h) declares them. */
const KERNEL32_H = `
DWORD WaitForMultipleObjects(DWORD nCount, const HANDLE *lpHandles, BOOL bWaitAll, DWORD dwMilliseconds);
HANDLE CreateEventW(LPSECURITY_ATTRIBUTES lpEventAttributes, BOOL bManualReset, BOOL bInitialState, LPCWSTR lpName);
BOOL SetEvent(HANDLE hEvent);
BOOL CloseHandle(HANDLE hObject);
DWORD GetLastError(VOID);
VOID RtlMoveMemory(VOID *Destination, const VOID *Source, SIZE_T Length);
`;

type Proto = { name: string; parameters: string[]; result: string };

/** Deno FFI type of a C type: pointers and handles are "pointer". */
function ffiType(c: string): string {
  const t = c.replace(/\bconst\b/g, "").trim();
  if (t.includes("*")) return "pointer";
  if (/^(LPCWSTR|LPSECURITY_ATTRIBUTES|HANDLE|WINTUN_\w+_HANDLE)$/.test(t)) return "pointer";
  const plain: Record<string, string> = {
    DWORD: "u32",
    BOOL: "i32",
    VOID: "void",
    SIZE_T: "usize",
  };
  if (plain[t] === undefined) throw new Error(`no FFI type for C type "${c}"`);
  return plain[t]!;
}

/** The type of one parameter declaration: everything but SAL annotations and its name. */
function paramType(decl: string): string {
  const noSal = decl.replace(/\b_\w+_\b/g, "").trim();
  const m = /^(.*?)\s*\b\w+$/.exec(noSal.replace(/\*\s*(\w+)$/, "* $1"));
  return ffiType(m ? m[1]! : noSal);
}

function parseParams(list: string): string[] {
  const p = list.trim();
  return p === "VOID" || p === "" ? [] : p.split(",").map(paramType);
}

/** wintun.h's `RET(WINAPI WINTUN_X_Y_FUNC)(params)` typedefs, by export name (WintunXY). */
function parseWintunH(text: string): Proto[] {
  const flat = text.replace(/\s+/g, " ");
  const re = /(?:typedef )?([A-Z_]+(?: \*)?) ?\( ?WINAPI (WINTUN_\w+)_FUNC\) ?\(([^)]*)\);/g;
  return [...flat.matchAll(re)].map((m) => ({
    name: m[2]!.toLowerCase().replace(/_/g, ""),
    result: ffiType(m[1]!),
    parameters: parseParams(m[3]!),
  }));
}

function parsePlainH(text: string): Proto[] {
  return [...text.matchAll(/^(\w+(?: \*)?) (\w+)\(([^)]*)\);$/gm)].map((m) => ({
    name: m[2]!,
    result: ffiType(m[1]!),
    parameters: parseParams(m[3]!),
  }));
}

function tableOf(symbols: Record<string, Deno.ForeignFunction>, lower: boolean): Proto[] {
  return Object.entries(symbols).map(([name, s]) => ({
    name: lower ? name.toLowerCase() : name,
    result: String(s.result),
    parameters: s.parameters.map(String),
  }));
}

const byName = (a: Proto, b: Proto) => a.name.localeCompare(b.name);

Deno.test("WINTUN_SYMBOLS matches the prototypes of wintun.h, name for name and type for type", () => {
  const header = parseWintunH(WINTUN_H);
  assertEquals(header.length, 12, "every prototype was parsed");
  assertEquals(tableOf(WINTUN_SYMBOLS, true).sort(byName), header.sort(byName));
  for (const s of Object.values(WINTUN_SYMBOLS)) {
    assertEquals("nonblocking" in s, false, "no wintun call waits: none runs on a helper thread");
  }
});

Deno.test("KERNEL32_SYMBOLS matches the Win32 prototypes; only the wait is nonblocking", () => {
  const header = parsePlainH(KERNEL32_H);
  assertEquals(header.length, 6);
  // One deliberate difference: RtlMoveMemory's Source is our own Uint8Array, so "buffer"; and
  // RtlMoveMemoryOut is the same function with our Uint8Array as its Destination.
  const move = header.find((p) => p.name === "RtlMoveMemory")!;
  header.push({ ...move, name: "RtlMoveMemoryOut", parameters: ["buffer", "pointer", "usize"] });
  move.parameters[1] = "buffer";
  assertEquals(KERNEL32_SYMBOLS.RtlMoveMemoryOut.name, "RtlMoveMemory");
  assertEquals(tableOf(KERNEL32_SYMBOLS, false).sort(byName), header.sort(byName));
  const waiting = Object.entries(KERNEL32_SYMBOLS)
    .filter(([, s]) => "nonblocking" in s && s.nonblocking).map(([n]) => n);
  assertEquals(waiting, ["WaitForMultipleObjects"]);
});

Deno.test("KERNEL32_WAIT_SYMBOLS matches the Win32 prototypes and blocks the calling thread", () => {
  const header = parsePlainH(
    KERNEL32_H + "DWORD WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds);\n",
  ).filter((p) => p.name.startsWith("WaitFor"));
  assertEquals(header.length, 2);
  assertEquals(tableOf(KERNEL32_WAIT_SYMBOLS, false).sort(byName), header.sort(byName));
  for (const s of Object.values(KERNEL32_WAIT_SYMBOLS)) assertEquals("nonblocking" in s, false);
});

Deno.test("wideString() encodes UTF-16LE with a NUL terminator, surrogate pairs included", () => {
  assertEquals([...wideString("xvpn0")], [
    0x78,
    0,
    0x76,
    0,
    0x70,
    0,
    0x6e,
    0,
    0x30,
    0,
    0,
    0,
  ]);
  assertEquals([...wideString("")], [0, 0]);
  assertEquals([...wideString("é")], [0xe9, 0, 0, 0]);
  // U+1F3AE (video game) is the pair D83C DFAE.
  assertEquals([...wideString("\u{1f3ae}")], [0x3c, 0xd8, 0xae, 0xdf, 0, 0]);
});
