/**
 * Domain following for game profiles (the field notes' DNS incident: the address a game's name
 * resolves to depends on the exit node, so only the answer that came back through the tunnel
 * says what to route). The client core hands every DNS answer it receives from the tunnel to a
 * {@link DomainFollower}; an answer that gives new addresses for a followed domain is held back,
 * the runtime adds a /32 (/128) route for each address, then releases the answer to the TUN, so
 * the game's first packet to that address already takes the tunnel.
 *
 * Routes go again when their TTL has run out and no packet has used the address for
 * {@link FOLLOW_IDLE_MS} (a game keeps talking to a server long after the TTL).
 *
 * @module
 */
import {
  DomainMatcher,
  followedAddresses,
  type FollowKey,
  followKey4,
  followKey6,
  FollowTable,
  isDnsResponse,
  parseDnsAnswer,
} from "./dns_answer.ts";

/** An address whose route may go once its TTL passed and it saw no traffic for this long. */
export const FOLLOW_IDLE_MS = 5 * 60_000;

/** How often the follower looks for routes that can go. */
export const FOLLOW_SWEEP_MS = 10_000;

/** Answers held at once, waiting for their routes (more are passed through unheld, counted). */
const MAX_HELD = 64;

/** An address to route (or unroute): IPv4 as u32, or IPv6 bytes. */
export type FollowAddress = { addr: number } | { addr6: Uint8Array };

/** An answer held until its routes are in. */
interface Held {
  id: number;
  packet: Uint8Array;
}

/** Follows the DNS answers for a profile's domains; see the module doc. */
export class DomainFollower {
  readonly #matcher: DomainMatcher;
  readonly #table: FollowTable;
  readonly #held: Held[] = [];
  #nextId = 0;
  /** IPv6 addresses held: an IPv6 packet's lookup (a hex key) is made only when there are any. */
  #count6 = 0;
  /** Answers that found the hold list full and went through before their routes. */
  unheld = 0;

  constructor(domains: readonly string[], cap?: number) {
    this.#matcher = new DomainMatcher(domains);
    this.#table = new FollowTable(cap);
  }

  /** Addresses routed now. */
  get size(): number {
    return this.#table.size;
  }

  /** Addresses refused because the table was full. */
  get refused(): number {
    return this.#table.refused;
  }

  /**
   * Looks at an inner packet about to go to the TUN. Returns undefined to let it pass now, or
   * the hold: an id and the new addresses to route before {@link release}(id) gives the packet
   * back.
   */
  inspect(
    pkt: Uint8Array,
    len: number,
    now: number,
  ): { id: number; addresses: FollowAddress[] } | undefined {
    if (!isDnsResponse(pkt, len)) return undefined;
    const answer = parseDnsAnswer(pkt, len);
    if (!answer) return undefined;
    const fresh: FollowAddress[] = [];
    for (const f of followedAddresses(answer, this.#matcher)) {
      if (f.addr !== undefined) {
        if (this.#table.learn(followKey4(f.addr), f.ttl, now)) fresh.push({ addr: f.addr });
      } else if (f.addr6) {
        if (this.#table.learn(followKey6(f.addr6), f.ttl, now)) {
          fresh.push({ addr6: f.addr6 });
          this.#count6++;
        }
      }
    }
    if (!fresh.length) return undefined;
    if (this.#held.length >= MAX_HELD) {
      this.unheld++;
      return undefined;
    }
    const id = ++this.#nextId;
    this.#held.push({ id, packet: pkt.slice(0, len) });
    return { id, addresses: fresh };
  }

  /** The held answer `id` (its routes are in, or could not be added): for the TUN now. */
  release(id: number): Uint8Array | undefined {
    const i = this.#held.findIndex((h) => h.id === id);
    if (i < 0) return undefined;
    return this.#held.splice(i, 1)[0]!.packet;
  }

  /** Traffic to IPv4 `dst`: the route is in use (one map lookup; nothing when none is held). */
  touch4(dst: number, now: number): void {
    if (this.#table.size) this.#table.touch(followKey4(dst), now);
  }

  /** Traffic to the IPv6 address at `pkt[off..off+16)`. */
  touch6(pkt: Uint8Array, off: number, now: number): void {
    if (this.#count6) this.#table.touch(followKey6(pkt, off), now);
  }

  /** True when IPv4 `src` is a followed address (a packet from it: the route is in use). */
  seen4(src: number, now: number): boolean {
    return this.#table.size > 0 && this.#table.touch(followKey4(src), now);
  }

  /** The same for the IPv6 address at `pkt[off..off+16)`. */
  seen6(pkt: Uint8Array, off: number, now: number): boolean {
    return this.#count6 > 0 && this.#table.touch(followKey6(pkt, off), now);
  }

  /** Drops `addresses` from the table (their routes could not be added, or were refused): a
   * later answer for them is fresh again, and they are no longer accepted as sources. */
  forget(addresses: readonly FollowAddress[]): void {
    const keys = new Set(
      addresses.map((a) => ("addr6" in a ? followKey6(a.addr6) : followKey4(a.addr))),
    );
    const gone = this.#table.remove(keys);
    for (const k of gone) if (typeof k === "string") this.#count6--;
  }

  /** The addresses whose routes can go now (removed from the table). */
  expired(now: number, idleMs = FOLLOW_IDLE_MS): FollowAddress[] {
    const gone = this.#table.expired(now, idleMs);
    for (const k of gone) if (typeof k === "string") this.#count6--;
    return gone.map(addressOf);
  }
}

function addressOf(k: FollowKey): FollowAddress {
  if (typeof k === "number") return { addr: k };
  const b = new Uint8Array(16);
  for (let i = 0; i < 16; i++) b[i] = parseInt(k.slice(2 * i, 2 * i + 2), 16);
  return { addr6: b };
}
