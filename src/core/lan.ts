/**
 * LANs behind clients (issue 11, part 4): a console or any other device on a client's LAN uses
 * the client as its gateway, and the client carries the LAN's traffic without NAT. The server
 * then has to know which client each LAN sits behind, both ways:
 * - up: an inner source that is not the client's tunnel address passes when it lies in that
 *   client's own LAN; one in another client's LAN is refused and counted apart
 *   (`foreign_lan_src`), anything else is `bad_inner_src` as before;
 * - down: a TUN packet whose destination is no tunnel address goes to the client whose LAN holds
 *   it (longest prefix first).
 *
 * The table is built once from the config (the LANs are authorised there, on the server only)
 * and maps prefixes to the client's static identity, its public key as text; the session is
 * then the one that key holds at that moment. The data path asks it only after the exact lookup
 * by tunnel address has missed, so a server without LANs pays one empty loop.
 *
 * IPv4: one `Map` per prefix length present, longest first, so a lookup is one masked `get` per
 * distinct length (one or two in practice, at most 33), whatever the number of clients. IPv6: a
 * short list scanned longest first (IPv6 LANs are few).
 *
 * @module
 */
import { type Cidr, ipv4Src, maskOf, networkOf } from "../lib/ip.ts";
import { type Cidr6, cidr6Contains, network6 } from "../lib/ip6.ts";
import type { DropReason } from "./wire.ts";

/** One prefix length of the IPv4 table: its mask and the networks of that length. */
interface Level {
  prefix: number;
  mask: number;
  owners: Map<number, string>;
}

/** The LANs of every client, by prefix: who a LAN address belongs to. */
export class LanTable {
  /** IPv4 levels, longest prefix first. */
  #levels: Level[] = [];
  /** IPv6 LANs, longest prefix first. */
  #lans6: { lan: Cidr6; owner: string }[] = [];

  /**
   * Files the LANs of `owner` (a client's public key as text). A prefix already filed keeps its
   * first owner: the config refuses overlaps between clients, so that only happens to a caller
   * that skipped it.
   */
  add(owner: string, lans: readonly Cidr[] = [], lans6: readonly Cidr6[] = []): void {
    for (const c of lans) {
      let level = this.#levels.find((l) => l.prefix === c.prefix);
      if (!level) {
        level = { prefix: c.prefix, mask: maskOf(c.prefix), owners: new Map() };
        this.#levels.push(level);
        this.#levels.sort((a, b) => b.prefix - a.prefix);
      }
      const net = networkOf(c);
      if (!level.owners.has(net)) level.owners.set(net, owner);
    }
    for (const c of lans6) {
      this.#lans6.push({ lan: { addr: network6(c), prefix: c.prefix }, owner });
    }
    this.#lans6.sort((a, b) => b.lan.prefix - a.lan.prefix);
  }

  /** True when no LAN is filed. */
  get empty(): boolean {
    return this.#levels.length === 0 && this.#lans6.length === 0;
  }

  /** The owner of the longest LAN holding IPv4 address `ip`, or undefined. */
  owner4(ip: number): string | undefined {
    const levels = this.#levels;
    for (let i = 0; i < levels.length; i++) {
      const l = levels[i]!;
      const o = l.owners.get((ip & l.mask) >>> 0);
      if (o !== undefined) return o;
    }
    return undefined;
  }

  /** The owner of the longest LAN holding the IPv6 address at `pkt[off..off+16)`, or undefined. */
  owner6(pkt: Uint8Array, off: number): string | undefined {
    const ls = this.#lans6;
    for (let i = 0; i < ls.length; i++) {
      if (cidr6Contains(ls[i]!.lan, pkt, off)) return ls[i]!.owner;
    }
    return undefined;
  }

  /**
   * Why the inner packet `pkt` (valid IPv4 or IPv6) from the session of `owner` is refused, its
   * source not being the client's tunnel address: undefined when the source lies in the
   * client's own LAN, `foreign_lan_src` when it lies in another client's (a client passing
   * itself off as a device behind someone else), `bad_inner_src` otherwise.
   */
  refuseSource(pkt: Uint8Array, owner: string): DropReason | undefined {
    if (this.empty) return "bad_inner_src";
    const o = pkt[0]! >> 4 === 6 ? this.owner6(pkt, 8) : this.owner4(ipv4Src(pkt));
    if (o === undefined) return "bad_inner_src";
    return o === owner ? undefined : "foreign_lan_src";
  }
}
