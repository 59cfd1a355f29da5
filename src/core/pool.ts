/**
 * The server's IP pool: hands each client a tunnel address.
 *
 * - The first usable host address belongs to the server itself.
 * - An address is sticky per client key: a client that comes back (reconnect, server restart
 *   with the same config) gets the same address whenever it is still free, and a configured
 *   static address always.
 * - Receiver ids are not the pool's business: they change with every handshake (sessions.ts).
 *
 * @module
 */
import { type Cidr, formatCidr, formatIPv4, maskOf, networkOf } from "../lib/ip.ts";

/** One allocated address. */
export interface Lease {
  /** Tunnel address (u32). */
  address: number;
  /** Who holds it: the client's key as text (base64). */
  owner: string;
}

/** Thrown when every address is taken. Carries the pool for the message. */
export class PoolExhaustedError extends Error {
  constructor(pool: Cidr, size: number) {
    super(`IP pool ${formatCidr(pool)} is exhausted: all ${size} client addresses are in use`);
    this.name = "PoolExhaustedError";
  }
}

/** Allocates tunnel addresses. */
export class IpPool {
  readonly #first: number;
  readonly #last: number;
  readonly #byAddress = new Map<number, Lease>();
  readonly #byOwner = new Map<string, Lease>();
  /** Last address each owner had, kept after release so that it comes back to them. */
  readonly #remembered = new Map<string, number>();
  readonly #static = new Map<string, number>();
  readonly #staticTaken = new Set<number>();
  #cursor: number;

  /** @param pool the pool CIDR; the server takes its first usable address. */
  constructor(readonly pool: Cidr) {
    if (pool.prefix > 30) {
      throw new Error(`Pool ${formatCidr(pool)} is too small (need /30 or larger)`);
    }
    const net = networkOf(pool);
    const broadcast = (net | ~maskOf(pool.prefix)) >>> 0;
    this.serverAddress = net + 1;
    this.#first = net + 2;
    this.#last = broadcast - 1;
    this.#cursor = this.#first;
  }

  /** The server's own tunnel address. */
  readonly serverAddress: number;

  /** How many client addresses the pool holds. */
  get capacity(): number {
    return this.#last - this.#first + 1;
  }

  /** How many leases are live. */
  get size(): number {
    return this.#byOwner.size;
  }

  /** Reserves a static address for an owner; it is never handed to anyone else. */
  reserve(owner: string, address: number): void {
    if (address < this.#first || address > this.#last) {
      throw new Error(
        `Static address ${formatIPv4(address)} is not a client address of ${formatCidr(this.pool)}`,
      );
    }
    this.#static.set(owner, address);
    this.#staticTaken.add(address);
  }

  /** The live lease of an owner, if any. */
  leaseOf(owner: string): Lease | undefined {
    return this.#byOwner.get(owner);
  }

  /** The live lease holding an address, if any. */
  byAddress(address: number): Lease | undefined {
    return this.#byAddress.get(address);
  }

  /**
   * Returns the owner's lease, allocating one if needed: the static address, else the address
   * it had before if still free, else the next free one. Throws {@link PoolExhaustedError}.
   */
  allocate(owner: string): Lease {
    const live = this.#byOwner.get(owner);
    if (live) return live;
    const address = this.#pickAddress(owner);
    const lease: Lease = { address, owner };
    this.#byAddress.set(address, lease);
    this.#byOwner.set(owner, lease);
    this.#remembered.set(owner, address);
    return lease;
  }

  /** Returns a lease's address to the pool (session expired or closed). */
  release(owner: string): void {
    const lease = this.#byOwner.get(owner);
    if (!lease) return;
    this.#byOwner.delete(owner);
    this.#byAddress.delete(lease.address);
  }

  #free(address: number): boolean {
    return !this.#byAddress.has(address) && !this.#staticTaken.has(address);
  }

  #pickAddress(owner: string): number {
    const fixed = this.#static.get(owner);
    if (fixed !== undefined) return fixed;
    const before = this.#remembered.get(owner);
    if (before !== undefined && this.#free(before)) return before;
    // Prefer addresses nobody remembers, so a returning client usually finds its own free.
    const remembered = new Set(this.#remembered.values());
    let fallback = -1;
    for (let i = 0; i < this.capacity; i++) {
      const a = this.#cursor;
      this.#cursor = a === this.#last ? this.#first : a + 1;
      if (!this.#free(a)) continue;
      if (!remembered.has(a)) return a;
      if (fallback < 0) fallback = a;
    }
    if (fallback >= 0) return fallback;
    throw new PoolExhaustedError(this.pool, this.capacity - this.#staticTaken.size);
  }
}
