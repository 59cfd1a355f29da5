/**
 * UDP GSO grouping as a pure function (wireguard-go's `coalesceMessages`, tested like its
 * `Test_coalesceMessages`): which consecutive datagrams of a send batch travel as one
 * `UDP_SEGMENT` message. A run merges datagrams to the same destination whose lengths are all
 * equal except a shorter, non-empty last one (the kernel cuts a GSO message into equal segments,
 * the last may be short), up to {@link GSO_MAX_SEGMENTS} datagrams and {@link UDP_MAX_PAYLOAD}
 * bytes in all.
 *
 * @module
 */

/**
 * Most datagrams merged into one GSO send. The kernel refuses more than UDP_MAX_SEGMENTS
 * (include/linux/udp.h) with EINVAL: 64 when UDP_SEGMENT arrived in Linux 4.18, 128 in recent
 * kernels. 64 works on every kernel with GSO, and at 1400 bytes the byte limit already stops a
 * run at 46.
 */
export const GSO_MAX_SEGMENTS = 64;

/**
 * Largest UDP payload of one IPv4 send, GSO or not: the IP total length is a u16, minus the
 * 20-byte IPv4 and 8-byte UDP headers (the kernel answers EMSGSIZE beyond).
 */
export const UDP_MAX_PAYLOAD = 65535 - 20 - 8;

/** The datagrams of a send batch, by slot: length, destination and (optionally) TOS byte. */
export interface SendBatch {
  readonly len: ArrayLike<number>;
  readonly ip: ArrayLike<number>;
  readonly port: ArrayLike<number>;
  /** The TOS byte per slot: a run only merges datagrams with the same one. */
  readonly tos?: ArrayLike<number> | undefined;
  /** Per slot: 1 for an IPv6 destination (its address in `ip6`, 16 bytes per slot). */
  readonly v6?: ArrayLike<number>;
  readonly ip6?: ArrayLike<number>;
  /** Per slot: the local address index to send from (a run shares one). */
  readonly local?: ArrayLike<number>;
}

/** True when slots `a` and `b` go to the same place from the same local address. */
function sameDestination(b: SendBatch, x: number, y: number): boolean {
  if (b.ip[x] !== b.ip[y] || b.port[x] !== b.port[y]) return false;
  if ((b.tos?.[x] ?? 0) !== (b.tos?.[y] ?? 0)) return false;
  if ((b.local?.[x] ?? 0) !== (b.local?.[y] ?? 0)) return false;
  const v6 = b.v6?.[x] ?? 0;
  if ((b.v6?.[y] ?? 0) !== v6) return false;
  if (v6 && b.ip6) {
    for (let i = 0; i < 16; i++) if (b.ip6[16 * x + i] !== b.ip6[16 * y + i]) return false;
  }
  return true;
}

/**
 * Groups slots `[from, end)` into messages: message k covers `count[k]` slots from `first[k]`.
 * With `gso` off, or for slots before `plainUntil`, every datagram is a message of its own; no
 * run is longer than `maxSegments` (a socket behind a slow link keeps its bursts small).
 * Returns the number of messages.
 */
export function planGso(
  b: SendBatch,
  from: number,
  end: number,
  gso: boolean,
  plainUntil: number,
  first: Int32Array,
  count: Int32Array,
  maxSegments = GSO_MAX_SEGMENTS,
): number {
  let k = 0;
  for (let j = from; j < end; k++) {
    const size = b.len[j]!;
    let n = 1;
    if (gso && j >= plainUntil && size > 0) {
      const most = Math.min(maxSegments, Math.floor(UDP_MAX_PAYLOAD / size), end - j);
      while (n < most && sameDestination(b, j, j + n)) {
        const len = b.len[j + n]!;
        // An empty datagram cannot be a segment (it would vanish into the previous one).
        if (len > size || len === 0) break;
        n++;
        if (len < size) break; // only the last segment may be shorter
      }
    }
    first[k] = j;
    count[k] = n;
    j += n;
  }
  return k;
}
