/**
 * Network-namespace test topologies, nftables impairments and a seeded UDP impairment relay, for
 * integration tests, `xvpn demo` and benchmarks. Everything here needs root on Linux.
 *
 * @module
 */
export {
  type ExecOptions,
  type LinkInfo,
  type LinkSpec,
  type RouteSpec,
  type SpawnOptions,
  Topology,
  type TopologySpec,
  uniquePrefix,
} from "./topology.ts";
export { addDuplication, addLoss, type Impairment, type ImpairTarget } from "./impair.ts";
export { listNamespaces, sweepStale } from "./owner.ts";
export { type Destroyable, destroyOnSignal } from "./signals.ts";
export {
  type DirectionStats,
  parseRelayArgs,
  type RelayImpairment,
  type RelayOptions,
  type RelayProcess,
  type RelayStats,
  spawnRelay,
  UdpRelay,
} from "./relay.ts";
export { deriveSeed, seededRandom } from "./prng.ts";
export { hasTool, installTools, missingTools, requireTools, TOOL_PACKAGES } from "./tools.ts";
