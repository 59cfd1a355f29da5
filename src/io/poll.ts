/**
 * The data plane's wait: one poll(2) over a few fds, behind a seam so that two data-plane loops
 * over in-memory twins can run in one test process (a fake poller never blocks and asks each
 * twin whether it is ready).
 *
 * @module
 */
import { type Libc, libc, POLLIN, POLLOUT } from "./_libc.ts";

export { POLLIN, POLLOUT };

/** Something to wait on: a real fd, or an in-memory twin that can say it is ready. */
export interface Pollable {
  /** The fd to poll; -1 for a twin. */
  readonly fd: number;
  /** On Windows, the HANDLE to wait on instead (an event), as a number. */
  readonly handle?: bigint;
  /** A twin's readiness for reading. */
  readable?(): boolean;
  /** A twin's readiness for writing (twins are always writable unless they say otherwise). */
  writable?(): boolean;
}

/** Waits on a fixed list of entries. */
export interface Poller {
  /** Watches `p` for `events` (POLLIN, POLLOUT) as entry `i`. */
  set(i: number, p: Pollable, events: number): void;
  /** Changes the events of entry `i` (e.g. adds POLLOUT while sends are held back). */
  setEvents(i: number, events: number): void;
  /**
   * Waits until an entry is ready or `timeoutMs` passed (0: just look; negative: no limit);
   * returns how many entries are ready.
   */
  wait(timeoutMs: number): number;
  /** What entry `i` reported in the last wait (POLLIN, POLLOUT, POLLERR bits). */
  revents(i: number): number;
}

/** sizeof(struct pollfd): int fd; short events; short revents. */
const POLLFD_BYTES = 8;

/** poll(2) through a synchronous FFI call: the calling thread blocks, as a Worker should. */
export class LinuxPoller implements Poller {
  readonly #c: Libc;
  readonly #fds: Uint8Array;
  readonly #view: DataView;
  readonly #n: bigint;

  /** A poller of `entries` entries. */
  constructor(readonly entries: number) {
    this.#c = libc();
    this.#fds = new Uint8Array(entries * POLLFD_BYTES);
    this.#view = new DataView(this.#fds.buffer);
    this.#n = BigInt(entries);
    for (let i = 0; i < entries; i++) this.#view.setInt32(i * POLLFD_BYTES, -1, true);
  }

  set(i: number, p: Pollable, events: number): void {
    this.#view.setInt32(i * POLLFD_BYTES, p.fd, true);
    this.setEvents(i, events);
  }

  setEvents(i: number, events: number): void {
    this.#view.setInt16(i * POLLFD_BYTES + 4, events, true);
  }

  wait(timeoutMs: number): number {
    const rc = this.#c.poll(this.#fds, this.#n, timeoutMs < 0 ? -1 : Math.ceil(timeoutMs));
    if (rc <= 0) {
      // Timeout or EINTR: nothing is ready (revents are zeroed by the kernel on timeout).
      for (let i = 0; i < this.entries; i++) this.#view.setInt16(i * POLLFD_BYTES + 6, 0, true);
      return 0;
    }
    return rc;
  }

  revents(i: number): number {
    return this.#view.getInt16(i * POLLFD_BYTES + 6, true);
  }
}

/** A poller over in-memory twins: never blocks, asks each entry whether it is ready. */
export class FakePoller implements Poller {
  readonly #entries: { p: Pollable | undefined; events: number; revents: number }[];

  /** A poller of `entries` entries. */
  constructor(entries: number) {
    this.#entries = Array.from({ length: entries }, () => ({
      p: undefined,
      events: 0,
      revents: 0,
    }));
  }

  set(i: number, p: Pollable, events: number): void {
    this.#entries[i]!.p = p;
    this.#entries[i]!.events = events;
  }

  setEvents(i: number, events: number): void {
    this.#entries[i]!.events = events;
  }

  wait(_timeoutMs: number): number {
    let ready = 0;
    for (const e of this.#entries) {
      e.revents = 0;
      if (!e.p) continue;
      if ((e.events & POLLIN) && e.p.readable?.()) e.revents |= POLLIN;
      if ((e.events & POLLOUT) && (e.p.writable?.() ?? true)) e.revents |= POLLOUT;
      if (e.revents) ready++;
    }
    return ready;
  }

  revents(i: number): number {
    return this.#entries[i]!.revents;
  }
}
