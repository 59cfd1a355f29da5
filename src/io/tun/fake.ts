/**
 * An in-memory TUN device for testing modules that sit on top of {@link TunDevice}, without
 * root or a kernel device.
 *
 * @module
 */
import type { TunDevice } from "./device.ts";
import type { BatchTun, TunDropSink } from "./batch.ts";

/**
 * A {@link TunDevice} backed by queues: {@link inject} plays the kernel sending a packet to the
 * VPN; {@link written} collects what the VPN wrote to the kernel. Every queued or collected
 * packet is a copy that owns its bytes, so callers may reuse their buffers at once.
 */
export class FakeTun implements TunDevice {
  /** File descriptor: none. */
  readonly fd = -1;
  /** Packets the VPN wrote, oldest first (copies). */
  readonly written: Uint8Array[] = [];
  /**
   * When set, decides per write whether it is dropped (return -1, like EAGAIN/ENOBUFS) instead
   * of collected; for testing drop accounting.
   */
  dropWrite?: (pkt: Uint8Array) => boolean;
  readonly #inbound: Uint8Array[] = [];
  #woken = false;
  #closed = false;
  #waiters: Array<() => void> = [];

  /** Creates a fake device that reports `name` as its kernel name. */
  constructor(readonly name = "faketun0") {}

  /** Queues a copy of `pkt` as if the kernel had routed it into the device. */
  inject(pkt: Uint8Array): void {
    if (this.#closed) throw new Error(`TUN device "${this.name}" is closed`);
    this.#inbound.push(pkt.slice());
    this.#notify();
  }

  /** Number of injected packets not yet read. */
  get pending(): number {
    return this.#inbound.length;
  }

  /** True once {@link close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Removes and returns the written packets (oldest first). */
  takeWritten(): Uint8Array[] {
    return this.written.splice(0);
  }

  /** Reads the oldest injected packet, truncated to `buf` like the kernel does; 0 when none. */
  read(buf: Uint8Array): number {
    if (this.#closed) throw new Error(`TUN device "${this.name}" is closed`);
    const pkt = this.#inbound.shift();
    if (!pkt) return 0;
    const n = Math.min(pkt.length, buf.length);
    buf.set(pkt.subarray(0, n));
    return n;
  }

  /** Collects a copy of the first `len` bytes of `buf`; -1 when {@link dropWrite} says drop. */
  write(buf: Uint8Array, len: number): number {
    if (this.#closed) throw new Error(`TUN device "${this.name}" is closed`);
    if (!(len >= 0 && len <= buf.byteLength)) {
      throw new RangeError(`write length ${len} outside buffer of ${buf.byteLength} bytes`);
    }
    const pkt = buf.slice(0, len);
    if (this.dropWrite?.(pkt)) return -1;
    this.written.push(pkt);
    return len;
  }

  /** Resolves true once a packet is queued, false on timeout, wake() or close(). */
  waitReadable(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(false);
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve(false);
    }
    if (this.#inbound.length > 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        if (timer !== undefined) clearTimeout(timer);
        this.#waiters = this.#waiters.filter((w) => w !== done);
        if (this.#woken) {
          this.#woken = false;
          resolve(false);
        } else {
          resolve(!this.#closed && this.#inbound.length > 0);
        }
      };
      if (Number.isFinite(timeoutMs) && timeoutMs >= 0) timer = setTimeout(done, timeoutMs);
      this.#waiters.push(done);
    });
  }

  /** Makes a pending (or the next) waitReadable resolve false. */
  wake(): void {
    if (this.#closed) return;
    this.#woken = true;
    this.#notify();
  }

  /** Closes the fake; pending waits resolve false. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#inbound.length = 0;
    this.#notify();
  }

  #notify(): void {
    for (const w of [...this.#waiters]) w();
  }
}

/**
 * An in-memory {@link BatchTun} (wireguard-go's `tun/tuntest`): {@link inject} plays the kernel
 * routing a packet into the device, {@link written} collects what the data path wrote. Queued and
 * collected packets are copies that own their bytes. Pollable through {@link readable}.
 */
export class FakeBatchTun implements BatchTun {
  /** File descriptor: none (a fake poller asks {@link readable}). */
  readonly fd = -1;
  readonly headroom = 0;
  readonly buffered = false;
  readonly readBuffers: Uint8Array[];
  readonly writeBuffers: Uint8Array[];
  readonly writePackets: Uint8Array[];
  /** Packets the data path wrote, oldest first (copies). */
  readonly written: Uint8Array[] = [];
  /** When each of {@link written} was written, by {@link clock} (tests on a virtual clock). */
  readonly writtenAt: number[] = [];
  /** The clock {@link writtenAt} reads. */
  clock: () => number = () => 0;
  /** When set, decides per write whether the "kernel" refuses it (counted as tun_full). */
  dropWrite?: (pkt: Uint8Array) => boolean;
  readonly #inbound: Uint8Array[] = [];
  #closed = false;

  /** A fake named `name` with `buffers` write buffers and `readBuffers` read buffers (the
   * scheduler's pool) of `packetBytes` each. */
  constructor(
    readonly name = "faketun0",
    buffers = 64,
    packetBytes = 9216,
    readonly drops: TunDropSink = { tun_full: 0, tun_error: 0, bad_inner_packet: 0 },
    readBuffers = buffers,
  ) {
    this.readBuffers = Array.from({ length: readBuffers }, () => new Uint8Array(packetBytes));
    this.writeBuffers = Array.from({ length: buffers }, () => new Uint8Array(packetBytes));
    this.writePackets = this.writeBuffers;
  }

  /** Queues a copy of `pkt` as if the kernel had routed it into the device. */
  inject(pkt: Uint8Array): void {
    if (this.#closed) throw new Error(`TUN device "${this.name}" is closed`);
    this.#inbound.push(pkt.slice());
  }

  /** Injected packets not yet read. */
  get pending(): number {
    return this.#inbound.length;
  }

  /** True when a read would return something (for a fake poller). */
  readable(): boolean {
    return this.#inbound.length > 0;
  }

  /** Removes and returns the written packets (oldest first). */
  takeWritten(): Uint8Array[] {
    this.writtenAt.length = 0;
    return this.written.splice(0);
  }

  read(bufs: readonly Uint8Array[], sizes: Int32Array, max: number): number {
    if (this.#closed) throw new Error(`TUN device "${this.name}" is closed`);
    let n = 0;
    while (n < max && this.#inbound.length > 0) {
      const pkt = this.#inbound.shift()!;
      const b = bufs[n]!;
      const len = Math.min(pkt.length, b.length);
      b.set(pkt.subarray(0, len));
      sizes[n++] = len;
    }
    return n;
  }

  write(bufs: readonly Uint8Array[], sizes: Int32Array, count: number): number {
    if (this.#closed) throw new Error(`TUN device "${this.name}" is closed`);
    let accepted = 0;
    for (let i = 0; i < count; i++) {
      const pkt = bufs[i]!.slice(this.headroom, this.headroom + sizes[i]!);
      if (this.dropWrite?.(pkt)) {
        this.drops.tun_full++;
        continue;
      }
      this.written.push(pkt);
      this.writtenAt.push(this.clock());
      accepted++;
    }
    return accepted;
  }

  close(): void {
    this.#closed = true;
    this.#inbound.length = 0;
  }
}
