/**
 * A raw IPv4 sender for the flood and replay root tests: it writes whole IPv4/UDP packets
 * (`IPPROTO_RAW`, so the header is ours), which lets it claim any source address and port, as a
 * spoofing attacker can. Run it inside a namespace as its own process:
 *
 *   deno run -A tests/support/rawsend.ts '<json: FloodArgs or ReplayArgs>'
 *
 * It prints one JSON line (`{"sent": n, "seconds": s, ...}`) and exits. Test-only: xvpn itself
 * never needs raw sockets. Uses `socket` and `sendmmsg` from the shared libc table.
 *
 * @module
 */
import { libc } from "../../src/io/_libc.ts";
import { decodeKey } from "../../src/core/keys.ts";
import { parseIPv4 } from "../../src/lib/ip.ts";
import { junkInitiation, prng } from "./hostile.ts";

const AF_INET = 2;
const SOCK_RAW = 3;
const IPPROTO_RAW = 255; // implies IP_HDRINCL: we write the IPv4 header
const MMSGHDR_BYTES = 64; // struct mmsghdr on x86_64 and aarch64 (msghdr 56 + msg_len + pad)
const IOVEC_BYTES = 16;
const BATCH = 32;

/** One datagram to send with a chosen source. */
export interface RawDatagram {
  /** Source IPv4 address. */
  src: string;
  /** Source UDP port. */
  sport: number;
  /** UDP payload. */
  payload: Uint8Array;
}

/** Sends IPv4/UDP packets with arbitrary sources to one destination, in sendmmsg batches. */
export class RawSender {
  readonly #fd: number;
  readonly #dst: number;
  readonly #dport: number;
  // Kept referenced while the kernel reads them (their addresses sit inside the headers).
  readonly #name = new Uint8Array(16);
  readonly #hdrs = new Uint8Array(BATCH * MMSGHDR_BYTES);
  readonly #iovs = new Uint8Array(BATCH * IOVEC_BYTES);
  readonly #packets = new Uint8Array(BATCH * 2048);

  /** Opens the raw socket (needs CAP_NET_RAW). */
  constructor(dst: string, dport: number) {
    const fd = libc().socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    if (fd < 0) throw new Error("socket(AF_INET, SOCK_RAW, IPPROTO_RAW) failed (root?)");
    this.#fd = fd;
    this.#dst = parseIPv4(dst)!;
    this.#dport = dport;
    const n = new DataView(this.#name.buffer);
    n.setUint16(0, AF_INET, true);
    n.setUint32(4, this.#dst);
    const h = new DataView(this.#hdrs.buffer);
    const v = new DataView(this.#iovs.buffer);
    const namePtr = addressOf(this.#name);
    const iovPtr = addressOf(this.#iovs);
    const pktPtr = addressOf(this.#packets);
    for (let i = 0; i < BATCH; i++) {
      const m = i * MMSGHDR_BYTES;
      h.setBigUint64(m, namePtr, true); // msg_name
      h.setUint32(m + 8, 16, true); // msg_namelen
      h.setBigUint64(m + 16, iovPtr + BigInt(i * IOVEC_BYTES), true); // msg_iov
      h.setBigUint64(m + 24, 1n, true); // msg_iovlen
      v.setBigUint64(i * IOVEC_BYTES, pktPtr + BigInt(i * 2048), true); // iov_base
    }
  }

  /** Sends up to 32 datagrams in one system call; returns how many the kernel took. */
  sendBatch(batch: RawDatagram[]): number {
    const v = new DataView(this.#iovs.buffer);
    const n = Math.min(batch.length, BATCH);
    for (let i = 0; i < n; i++) {
      const d = batch[i]!;
      const len = 28 + d.payload.length;
      const p = this.#packets.subarray(i * 2048, i * 2048 + len);
      const dv = new DataView(p.buffer, p.byteOffset, len);
      p.fill(0, 0, 28);
      p[0] = 0x45;
      dv.setUint16(2, len); // the kernel fills in total length, id and checksum anyway
      dv.setUint16(6, 0x4000); // DF
      p[8] = 64;
      p[9] = 17; // UDP
      dv.setUint32(12, parseIPv4(d.src)!);
      dv.setUint32(16, this.#dst);
      dv.setUint16(20, d.sport);
      dv.setUint16(22, this.#dport);
      dv.setUint16(24, 8 + d.payload.length); // checksum 0: none, which IPv4 allows
      p.set(d.payload, 28);
      v.setBigUint64(i * IOVEC_BYTES + 8, BigInt(len), true); // iov_len
    }
    const sent = libc().sendmmsg(this.#fd, this.#hdrs, n, 0);
    return Math.max(sent, 0);
  }

  /** Closes the socket. */
  close(): void {
    libc().close(this.#fd);
  }
}

function addressOf(buf: Uint8Array): bigint {
  const p = Deno.UnsafePointer.of(buf as Uint8Array<ArrayBuffer>);
  if (p === null) throw new Error("no address for a buffer");
  return BigInt(Deno.UnsafePointer.value(p));
}

/** Flood: junk initiations that pass mac1, from spoofed sources in `spoofPrefix`.0.0/16. */
export interface FloodArgs {
  mode: "flood";
  /** Server address and port. */
  dst: string;
  port: number;
  /** The server's public key (base64): the attacker knows it, so mac1 is valid. */
  serverPublic: string;
  /** Datagrams in all. */
  count: number;
  /** Spread over this many seconds. */
  seconds: number;
  /** First two octets of the spoofed sources, e.g. "10.203". */
  spoofPrefix: string;
  /** Share of datagrams from one "hot" spoofed source (exercises the per-source limit). */
  hotShare: number;
  /** PRNG seed. */
  seed: number;
}

/** Replay: the given payloads, each `repeat` times, from their recorded sources. */
export interface ReplayArgs {
  mode: "replay";
  dst: string;
  port: number;
  /** Datagrams with hex payloads. */
  datagrams: { src: string; sport: number; hex: string }[];
  repeat: number;
}

async function flood(a: FloodArgs): Promise<Record<string, unknown>> {
  const s = new RawSender(a.dst, a.port);
  const key = decodeKey(a.serverPublic);
  if (!key) throw new Error("bad serverPublic");
  const r = prng(a.seed);
  const sources = new Set<number>();
  const start = performance.now();
  const perMs = a.count / (a.seconds * 1000);
  let sent = 0;
  let refused = 0;
  while (sent + refused < a.count) {
    // Pace: never ahead of count * elapsed / duration.
    const due = Math.min(a.count, Math.ceil((performance.now() - start) * perMs) + BATCH);
    if (sent + refused >= due) {
      await new Promise((res) => setTimeout(res, 2));
      continue;
    }
    const batch: RawDatagram[] = [];
    const n = Math.min(BATCH, a.count - sent - refused);
    for (let i = 0; i < n; i++) {
      const hot = (r() % 1000) / 1000 < a.hotShare;
      const host = hot ? 0xfffe : 1 + (r() % 0xfffd);
      sources.add(host);
      batch.push({
        src: `${a.spoofPrefix}.${host >> 8}.${host & 255}`,
        sport: 1024 + (r() % 60000),
        payload: junkInitiation(key, r),
      });
    }
    const k = s.sendBatch(batch);
    sent += k;
    refused += n - k;
  }
  s.close();
  return { sent, refused, sources: sources.size, seconds: (performance.now() - start) / 1000 };
}

function replay(a: ReplayArgs): Record<string, unknown> {
  const s = new RawSender(a.dst, a.port);
  const all: RawDatagram[] = [];
  for (let i = 0; i < a.repeat; i++) {
    for (const d of a.datagrams) {
      const payload = new Uint8Array(d.hex.length / 2);
      for (let j = 0; j < payload.length; j++) {
        payload[j] = Number.parseInt(d.hex.slice(2 * j, 2 * j + 2), 16);
      }
      all.push({ src: d.src, sport: d.sport, payload });
    }
  }
  let sent = 0;
  for (let i = 0; i < all.length; i += BATCH) sent += s.sendBatch(all.slice(i, i + BATCH));
  s.close();
  return { sent };
}

if (import.meta.main) {
  const args = JSON.parse(Deno.args[0] ?? "{}") as FloodArgs | ReplayArgs;
  const out = args.mode === "flood" ? await flood(args) : replay(args);
  console.log(JSON.stringify(out));
}

/** argv that runs this helper with `args` (for `topo.exec`/`spawn` in a namespace). */
export function rawSendCommand(args: FloodArgs | ReplayArgs): string[] {
  const path = decodeURIComponent(new URL(import.meta.url).pathname);
  return [Deno.execPath(), "run", "--allow-all", "--quiet", path, JSON.stringify(args)];
}
