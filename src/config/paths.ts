/**
 * The client's `paths` and `multipath` settings (dual channel): which local interfaces or source
 * addresses the tunnel uses at once, and how they share the traffic.
 *
 * ```yaml
 * paths:
 *   - interface: wlan0        # SO_BINDTODEVICE (fast data path only)
 *   - source: 192.168.8.100   # bind to this local address
 * multipath: redundant        # or failover (the default)
 * ```
 *
 * @module
 */
import { formatIPv4 } from "../lib/ip.ts";
import { MAX_PATHS, MULTIPATH_MODES, type MultipathMode } from "../core/paths.ts";
import { type At, ifName, ipv4, list, oneOf, opt, parser, readMap } from "./schema.ts";

/** One path of a multipath client: a local interface to bind to, or a local address. */
export type PathSpec = { interface: string } | { source: string };

/** How a path is named in logs and messages: `wlan0`, or `192.168.8.100`. */
export function pathName(p: PathSpec): string {
  return "interface" in p ? p.interface : p.source;
}

const PATH_EXPECTED = "a mapping with interface (a device name) or source (a local IPv4 address)";

/** One `paths` entry: exactly one of `interface` and `source`. */
const pathEntry = parser<PathSpec>(PATH_EXPECTED, (at: At) => {
  const before = at.ctx.issues.length;
  const m = readMap(at, { interface: opt(ifName), source: opt(ipv4) }, PATH_EXPECTED);
  if (!m || at.ctx.issues.length !== before) return undefined;
  const { interface: dev, source } = m.values;
  if ((dev === undefined) === (source === undefined)) {
    at.ctx.report(
      at.offset,
      at.path,
      dev === undefined
        ? `expected ${PATH_EXPECTED}, got neither`
        : "expected interface or source, not both: a path is one or the other",
    );
    return undefined;
  }
  return dev !== undefined ? { interface: dev } : { source: formatIPv4(source!) };
});

/** The `paths` list (1..8 entries, no repeats). */
export const pathsField = opt(
  parser<PathSpec[]>(`a list of 1-${MAX_PATHS} paths, each ${PATH_EXPECTED}`, (at) => {
    const before = at.ctx.issues.length;
    const paths = list(
      `a list of paths, each ${PATH_EXPECTED}`,
      pathEntry,
      (p) => "interface" in p ? `interface ${p.interface}` : `source ${p.source}`,
    )(at);
    if (at.ctx.issues.length !== before) return undefined; // each bad entry is reported
    if (paths && (paths.length < 1 || paths.length > MAX_PATHS)) {
      at.ctx.report(
        at.offset,
        at.path,
        `expected 1-${MAX_PATHS} paths, got ${paths.length}`,
      );
      return undefined;
    }
    return paths;
  }),
);

/** The `multipath` setting. */
export const multipathField = opt(oneOf(MULTIPATH_MODES));

export type { MultipathMode };
