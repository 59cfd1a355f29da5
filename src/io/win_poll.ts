/**
 * The data plane's wait on Windows: the {@link Poller} contract over one synchronous
 * WaitForMultipleObjects on event HANDLEs (the Wintun read event, the socket's WSAEventSelect
 * event, the wake event) instead of poll(2) on fds, so that `DataPlaneLoop` and its flow
 * scheduler run unchanged over Wintun and Winsock.
 *
 * Windows tells less than poll(2), and this adapter makes up the difference:
 * - WaitForMultipleObjects names only the lowest signalled handle. A busy TUN at index 0
 *   would hide the socket and the wake, so after every wait the other handles are looked at
 *   with WaitForSingleObject(h, 0), a synchronous call of some tens of nanoseconds.
 * - An event does not say what happened: the socket's event is set for FD_READ and FD_WRITE
 *   alike, so a signalled entry reports every event it was asked for. That readiness may be
 *   spurious (a receive finds nothing, a send would block again and re-arms FD_WRITE); the
 *   loop's calls are all non-blocking and cope with it.
 * - Looking consumes auto-reset events (the wake, Wintun's read event): an entry reported
 *   ready must be acted on, which the loop does (it drains the wake, reads the TUN).
 * - A socket's FD_WRITE may have been taken out of its record by a receive (so its event is no
 *   longer set): an entry that asks for POLLOUT and whose Pollable says `writable()` is
 *   reported writable at once.
 *
 * @module
 */
import {
  INFINITE,
  KERNEL32_WAIT_SYMBOLS,
  WAIT_FAILED,
  WAIT_OBJECT_0,
  WAIT_TIMEOUT,
} from "./tun/wintun_abi.ts";
import { type Pollable, type Poller, POLLIN, POLLOUT } from "./poll.ts";

/** A wait that fails this many times in a row is a bug, not a hiccup. */
const MAX_WAIT_FAILURES = 100;

/** Waits on event HANDLEs; see the module docs. */
export class WinPoller implements Poller {
  readonly #lib: Deno.DynamicLibrary<typeof KERNEL32_WAIT_SYMBOLS>;
  readonly #k: Deno.DynamicLibrary<typeof KERNEL32_WAIT_SYMBOLS>["symbols"];
  readonly #entries: number;
  /** Per entry: its HANDLE (0n: unset), the events asked, the events found. */
  readonly #handle: BigUint64Array;
  readonly #events: Int32Array;
  readonly #revents: Int32Array;
  /** The set entries' HANDLEs, packed for the wait, and which entry each is. */
  readonly #packed: BigUint64Array;
  readonly #packedPtr: Deno.PointerValue;
  readonly #entryOf: Int32Array;
  /** The packed HANDLEs as pointer objects, made once per set(), not per wait. */
  readonly #ptrs: Deno.PointerValue[] = [];
  /** The entries themselves: one asked for POLLOUT may say it is writable already. */
  readonly #pollables: (Pollable | undefined)[] = [];
  #count = 0;
  #failures = 0;

  /** A poller of `entries` entries (at most 64, MAXIMUM_WAIT_OBJECTS); `kernel32` is the
   * library to call (`kernel32.dll`, or the Linux fake). */
  constructor(entries: number, kernel32: string) {
    if (entries < 1 || entries > 64) throw new RangeError("WaitForMultipleObjects takes 1..64");
    this.#lib = Deno.dlopen(kernel32, KERNEL32_WAIT_SYMBOLS);
    this.#k = this.#lib.symbols;
    this.#entries = entries;
    this.#handle = new BigUint64Array(entries);
    this.#events = new Int32Array(entries);
    this.#revents = new Int32Array(entries);
    this.#packed = new BigUint64Array(entries);
    this.#packedPtr = Deno.UnsafePointer.of(this.#packed);
    this.#entryOf = new Int32Array(entries);
  }

  set(i: number, p: Pollable, events: number): void {
    if (p.handle === undefined || p.handle === 0n) {
      throw new TypeError(`poller entry ${i} has no Windows HANDLE to wait on`);
    }
    this.#pollables[i] = p;
    this.#handle[i] = p.handle;
    this.#events[i] = events;
    this.#pack();
  }

  setEvents(i: number, events: number): void {
    this.#events[i] = events;
  }

  wait(timeoutMs: number): number {
    this.#revents.fill(0);
    if (this.#count === 0) return 0;
    // An entry that asks for POLLOUT and knows it has room (a socket that took FD_WRITE out of
    // its record) is ready now: look at the handles without waiting.
    let sticky = 0;
    for (let i = 0; i < this.#entries; i++) {
      if ((this.#events[i]! & POLLOUT) !== 0 && this.#pollables[i]?.writable?.() === true) {
        this.#revents[i] = POLLOUT;
        sticky++;
      }
    }
    const ms = sticky > 0 || timeoutMs === 0
      ? 0
      : timeoutMs < 0
      ? INFINITE
      : Math.min(INFINITE - 1, Math.ceil(timeoutMs));
    const r = this.#k.WaitForMultipleObjects(this.#count, this.#packedPtr, 0, ms);
    if (r === WAIT_TIMEOUT) {
      this.#failures = 0;
      return sticky;
    }
    if (r === WAIT_FAILED || r - WAIT_OBJECT_0 >= this.#count) {
      // An abandoned mutex or a closed handle: nothing is ready; the loop's timers go on.
      if (++this.#failures > MAX_WAIT_FAILURES) {
        throw new Error(`WaitForMultipleObjects keeps failing (returned ${r})`);
      }
      return sticky;
    }
    this.#failures = 0;
    const first = r - WAIT_OBJECT_0;
    this.#mark(first);
    // Only the lowest signalled handle was named: look at the others too.
    for (let j = first + 1; j < this.#count; j++) {
      if (this.#k.WaitForSingleObject(this.#ptrs[j]!, 0) === WAIT_OBJECT_0) this.#mark(j);
    }
    let ready = 0;
    for (let i = 0; i < this.#entries; i++) if (this.#revents[i] !== 0) ready++;
    return ready;
  }

  revents(i: number): number {
    return this.#revents[i]!;
  }

  /** Frees the library handle. */
  close(): void {
    this.#lib.close();
  }

  /** Packed index `j` was signalled: its entry reports what it asked for. */
  #mark(j: number): void {
    const i = this.#entryOf[j]!;
    this.#revents[i] = this.#revents[i]! | (this.#events[i]! & (POLLIN | POLLOUT));
  }

  #pack(): void {
    let n = 0;
    for (let i = 0; i < this.#entries; i++) {
      if (this.#handle[i] === 0n) continue;
      this.#packed[n] = this.#handle[i]!;
      this.#ptrs[n] = Deno.UnsafePointer.create(this.#handle[i]!);
      this.#entryOf[n++] = i;
    }
    this.#count = n;
  }
}
