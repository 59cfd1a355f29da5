/**
 * The binary interface of wintun.dll (https://www.wintun.net/) and of the few kernel32 calls
 * that drive a Wintun session, as `Deno.dlopen` symbol tables, plus the constants and error
 * codes that go with them. Taken from `api/wintun.h` of WireGuard/wintun (commit ec0a6b98)
 * and from how wireguard-go's `tun/tun_windows.go` drives a session; `wintun_abi_test.ts`
 * holds the table against a copy of the header's prototypes.
 *
 * Calling convention: wintun.h declares every function `WINAPI` (`__stdcall`), which only
 * means something on 32-bit x86; x86-64 Windows has a single convention, and Deno's FFI calls
 * with the platform's default one. The same table therefore also fits the Linux fake
 * (`tests/support/fakewintun/`), built for the System V x86-64 ABI.
 *
 * Types: every C pointer and handle is `"pointer"`, `DWORD` is `"u32"`, `BOOL` is `"i32"`.
 * Memory whose address we hand over (UTF-16 names, the handle array of a wait) must stay
 * referenced from JS for as long as the callee may read it.
 *
 * @module
 */

/** wintun.dll's exports that xvpn uses (WintunDeleteDriver and WintunSetLogger are left out). */
export const WINTUN_SYMBOLS = {
  /** WINTUN_ADAPTER_HANDLE WintunCreateAdapter(LPCWSTR Name, LPCWSTR TunnelType,
   * const GUID *RequestedGUID) — NULL on failure (GetLastError). */
  WintunCreateAdapter: { parameters: ["pointer", "pointer", "pointer"], result: "pointer" },
  /** WINTUN_ADAPTER_HANDLE WintunOpenAdapter(LPCWSTR Name) — NULL on failure. */
  WintunOpenAdapter: { parameters: ["pointer"], result: "pointer" },
  /** VOID WintunCloseAdapter(WINTUN_ADAPTER_HANDLE Adapter) — removes a created adapter. */
  WintunCloseAdapter: { parameters: ["pointer"], result: "void" },
  /** VOID WintunGetAdapterLUID(WINTUN_ADAPTER_HANDLE Adapter, NET_LUID *Luid) */
  WintunGetAdapterLUID: { parameters: ["pointer", "pointer"], result: "void" },
  /** DWORD WintunGetRunningDriverVersion(VOID) — 0 on failure (ERROR_FILE_NOT_FOUND). */
  WintunGetRunningDriverVersion: { parameters: [], result: "u32" },
  /** WINTUN_SESSION_HANDLE WintunStartSession(WINTUN_ADAPTER_HANDLE Adapter, DWORD Capacity) */
  WintunStartSession: { parameters: ["pointer", "u32"], result: "pointer" },
  /** VOID WintunEndSession(WINTUN_SESSION_HANDLE Session) */
  WintunEndSession: { parameters: ["pointer"], result: "void" },
  /** HANDLE WintunGetReadWaitEvent(WINTUN_SESSION_HANDLE Session) — owned by the session:
   * never CloseHandle it. */
  WintunGetReadWaitEvent: { parameters: ["pointer"], result: "pointer" },
  /** BYTE *WintunReceivePacket(WINTUN_SESSION_HANDLE Session, DWORD *PacketSize) — NULL with
   * ERROR_NO_MORE_ITEMS (ring empty), ERROR_HANDLE_EOF or ERROR_INVALID_DATA. */
  WintunReceivePacket: { parameters: ["pointer", "pointer"], result: "pointer" },
  /** VOID WintunReleaseReceivePacket(WINTUN_SESSION_HANDLE Session, const BYTE *Packet) */
  WintunReleaseReceivePacket: { parameters: ["pointer", "pointer"], result: "void" },
  /** BYTE *WintunAllocateSendPacket(WINTUN_SESSION_HANDLE Session, DWORD PacketSize) — NULL
   * with ERROR_BUFFER_OVERFLOW (ring full) or ERROR_HANDLE_EOF. */
  WintunAllocateSendPacket: { parameters: ["pointer", "u32"], result: "pointer" },
  /** VOID WintunSendPacket(WINTUN_SESSION_HANDLE Session, const BYTE *Packet) */
  WintunSendPacket: { parameters: ["pointer", "pointer"], result: "void" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The kernel32.dll calls around a session (the Linux fake exports the same names). */
export const KERNEL32_SYMBOLS = {
  /** DWORD WaitForMultipleObjects(DWORD nCount, const HANDLE *lpHandles, BOOL bWaitAll,
   * DWORD dwMilliseconds) — the one wait, so it runs on a helper thread (`nonblocking`);
   * its GetLastError is that thread's and out of reach, the result alone is used. */
  WaitForMultipleObjects: {
    parameters: ["u32", "pointer", "i32", "u32"],
    result: "u32",
    nonblocking: true,
  },
  /** HANDLE CreateEventW(LPSECURITY_ATTRIBUTES lpEventAttributes, BOOL bManualReset,
   * BOOL bInitialState, LPCWSTR lpName) — NULL on failure. */
  CreateEventW: { parameters: ["pointer", "i32", "i32", "pointer"], result: "pointer" },
  /** BOOL SetEvent(HANDLE hEvent) */
  SetEvent: { parameters: ["pointer"], result: "i32" },
  /** BOOL CloseHandle(HANDLE hObject) */
  CloseHandle: { parameters: ["pointer"], result: "i32" },
  /** DWORD GetLastError(VOID) — the calling thread's last error: call it right after the
   * failing synchronous call, with no other FFI call in between. */
  GetLastError: { parameters: [], result: "u32" },
  /** VOID RtlMoveMemory(VOID *Destination, const VOID *Source, SIZE_T Length) — copies a
   * packet into the send ring without making an ArrayBuffer per packet. The source is our own
   * Uint8Array, passed as `"buffer"`; the length is a BigInt (see `_bigint.ts`). */
  RtlMoveMemory: { parameters: ["pointer", "buffer", "usize"], result: "void" },
  /** The same call the other way round: a received packet out of the ring into our buffer,
   * exactly its length, without a subarray per packet. */
  RtlMoveMemoryOut: {
    name: "RtlMoveMemory",
    parameters: ["buffer", "pointer", "usize"],
    result: "void",
  },
} as const satisfies Deno.ForeignLibraryInterface;

/**
 * The waits as a data-path Worker makes them: synchronous, its own thread blocks in them (a
 * Worker does nothing else while it waits, and a helper-thread hop would cost ~35 us a turn).
 */
export const KERNEL32_WAIT_SYMBOLS = {
  WaitForMultipleObjects: {
    parameters: ["u32", "pointer", "i32", "u32"],
    result: "u32",
  },
  /** DWORD WaitForSingleObject(HANDLE hHandle, DWORD dwMilliseconds) — with 0, a look at one
   * handle (consuming an auto-reset event that is set). */
  WaitForSingleObject: { parameters: ["pointer", "u32"], result: "u32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The callable wintun.dll symbols. */
export type Wintun = Deno.DynamicLibrary<typeof WINTUN_SYMBOLS>["symbols"];
/** The callable kernel32 symbols. */
export type Kernel32 = Deno.DynamicLibrary<typeof KERNEL32_SYMBOLS>["symbols"];

/**
 * Ring capacity of a session: 8 MiB, what wireguard-go has passed to WintunStartSession since
 * ring management moved into wintun.dll (commit a3b231b; 4 MiB before that). A power of two
 * between {@link WINTUN_MIN_RING_CAPACITY} and {@link WINTUN_MAX_RING_CAPACITY}, as required.
 */
export const WINTUN_RING_CAPACITY = 0x800000;
/** Smallest ring capacity WintunStartSession takes (128 KiB). */
export const WINTUN_MIN_RING_CAPACITY = 0x20000;
/** Largest ring capacity WintunStartSession takes (64 MiB). */
export const WINTUN_MAX_RING_CAPACITY = 0x4000000;
/** Largest packet WintunAllocateSendPacket may be asked for. */
export const WINTUN_MAX_IP_PACKET_SIZE = 0xffff;
/** MAX_ADAPTER_NAME (ipifcons.h): names are at most 127 UTF-16 units plus the NUL. */
export const WINTUN_MAX_ADAPTER_NAME = 128;
/** sizeof(NET_LUID): one ULONG64. */
export const NET_LUID_BYTES = 8;
/** sizeof(GUID): Data1 (u32), Data2 (u16), Data3 (u16), Data4[8]. */
export const GUID_BYTES = 16;

/** WaitForMultipleObjects: the first handle is signalled (add the index for the others). */
export const WAIT_OBJECT_0 = 0;
/** WaitForMultipleObjects: the timeout ran out. */
export const WAIT_TIMEOUT = 0x102;
/** WaitForMultipleObjects: the call failed. */
export const WAIT_FAILED = 0xffffffff;
/** Wait without limit. */
export const INFINITE = 0xffffffff;

/** The Win32 error codes (winerror.h) that the session calls report, by name. */
export const WinError = {
  ERROR_SUCCESS: 0,
  ERROR_FILE_NOT_FOUND: 2,
  ERROR_ACCESS_DENIED: 5,
  ERROR_INVALID_HANDLE: 6,
  ERROR_NOT_ENOUGH_MEMORY: 8,
  ERROR_INVALID_DATA: 13,
  ERROR_GEN_FAILURE: 31,
  /** The adapter is terminating (the session is over). */
  ERROR_HANDLE_EOF: 38,
  ERROR_INVALID_PARAMETER: 87,
  /** The send ring is full: the packet is dropped. */
  ERROR_BUFFER_OVERFLOW: 111,
  ERROR_BUSY: 170,
  ERROR_ALREADY_EXISTS: 183,
  /** The receive ring is empty. */
  ERROR_NO_MORE_ITEMS: 259,
} as const;

const winErrorNames = new Map<number, string>(Object.entries(WinError).map(([k, v]) => [v, k]));

/** The symbolic name of a Win32 error (`ERROR_HANDLE_EOF`), or `error <n>` when not listed. */
export function winErrorName(code: number): string {
  return winErrorNames.get(code) ?? `error ${code}`;
}

/** A failed Wintun or kernel32 call, carrying its GetLastError code. */
export class WinApiError extends Error {
  /** The numeric Win32 error code. */
  readonly code: number;
  /** Its symbolic name, e.g. `ERROR_HANDLE_EOF`. */
  readonly codeName: string;
  constructor(message: string, code: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "WinApiError";
    this.code = code;
    this.codeName = winErrorName(code);
  }
}

/** `s` as a NUL-terminated UTF-16LE string (an LPCWSTR); keep it referenced while C uses it. */
export function wideString(s: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array((s.length + 1) * 2);
  const view = new DataView(out.buffer);
  for (let i = 0; i < s.length; i++) view.setUint16(i * 2, s.charCodeAt(i), true);
  return out; // the last two bytes stay 0: the terminator
}
