/**
 * The fake wintun's kernel32 stand-ins, without root: events and WaitForMultipleObjects behave
 * as Windows documents them (the semantics the Windows TUN code relies on). Needs gcc.
 */
import { assert, assertEquals, assertThrows } from "./support/assert.ts";
import { buildFakeWintun } from "./support/fakewintun/build.ts";
import { openWintun } from "../src/io/tun/wintun.ts";
import {
  KERNEL32_SYMBOLS,
  WAIT_FAILED,
  WAIT_OBJECT_0,
  WAIT_TIMEOUT,
  WinApiError,
  WinError,
} from "../src/io/tun/wintun_abi.ts";

Deno.test({
  name: "fake kernel32: auto/manual-reset events, lowest index wins, timeouts, bad handles",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const lib = Deno.dlopen(await buildFakeWintun(), KERNEL32_SYMBOLS);
    const k = lib.symbols;
    const auto = k.CreateEventW(null, 0, 0, null)!;
    const manual = k.CreateEventW(null, 1, 0, null)!;
    const handles = new BigUint64Array([
      BigInt(Deno.UnsafePointer.value(auto)),
      BigInt(Deno.UnsafePointer.value(manual)),
    ]);
    const hp = Deno.UnsafePointer.of(handles);
    const wait = (n: number, ms: number) => k.WaitForMultipleObjects(n, hp, 0, ms);
    try {
      assert(auto !== null && manual !== null);
      const t0 = performance.now();
      assertEquals(await wait(2, 60), WAIT_TIMEOUT);
      assert(performance.now() - t0 >= 50, "the timeout was waited out");

      // An auto-reset event is consumed by the wait it ends; a manual-reset one stays set.
      k.SetEvent(auto);
      assertEquals(await wait(1, 0), WAIT_OBJECT_0);
      assertEquals(await wait(1, 0), WAIT_TIMEOUT);
      k.SetEvent(manual);
      const onlyManual = new BigUint64Array([handles[1]!]);
      const mp = Deno.UnsafePointer.of(onlyManual);
      assertEquals(await k.WaitForMultipleObjects(1, mp, 0, 0), WAIT_OBJECT_0);
      assertEquals(await k.WaitForMultipleObjects(1, mp, 0, 0), WAIT_OBJECT_0, "still set");

      // Both set: the lowest index wins, and only that one changes state.
      k.SetEvent(auto);
      assertEquals(await wait(2, 0), WAIT_OBJECT_0);
      assertEquals(await wait(2, 0), WAIT_OBJECT_0 + 1, "the manual one is still set");

      // A wait in flight ends when another thread (here: the main one) sets an event.
      const pending = wait(1, 10_000);
      setTimeout(() => k.SetEvent(auto), 30);
      assertEquals(await pending, WAIT_OBJECT_0);

      // A bad handle fails the call, and GetLastError says why (thread-local: same thread).
      assertEquals(k.CloseHandle(null), 0);
      assertEquals(k.GetLastError(), WinError.ERROR_INVALID_HANDLE);
      // A handle that is readable memory but no event (the fake checks a magic number).
      const junk = new Uint8Array(32);
      const bogus = new BigUint64Array([
        BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(junk))),
      ]);
      // The nonblocking wait's last error is its helper thread's; a blocking twin keeps it here.
      const sync = Deno.dlopen(await buildFakeWintun(), {
        WaitForMultipleObjects: { parameters: ["u32", "pointer", "i32", "u32"], result: "u32" },
        GetLastError: { parameters: [], result: "u32" },
      });
      try {
        const r = sync.symbols.WaitForMultipleObjects(1, Deno.UnsafePointer.of(bogus), 0, 0);
        assertEquals(r, WAIT_FAILED);
        assertEquals(sync.symbols.GetLastError(), WinError.ERROR_INVALID_HANDLE);
        assertEquals(junk.every((b) => b === 0), true, "nothing was written through it");
      } finally {
        sync.close();
      }
    } finally {
      k.CloseHandle(auto);
      k.CloseHandle(manual);
      lib.close();
    }
  },
});

Deno.test({
  name: "openWintun() over the fake: a refused name names the call and the Win32 error",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const dll = await buildFakeWintun();
    // The fake refuses names Linux cannot take before it opens /dev/net/tun: no root needed.
    for (const name of ["j\u00e9u", "a-name-longer-than-ifnamsiz"]) {
      const err = assertThrows(() => openWintun(name, { dll, kernel32: dll }), WinApiError);
      assertEquals((err as WinApiError).code, WinError.ERROR_INVALID_PARAMETER);
      assertEquals(
        err.message,
        `cannot create Wintun adapter "${name}": WintunCreateAdapter failed: ` +
          "ERROR_INVALID_PARAMETER (87)",
      );
    }
  },
});
