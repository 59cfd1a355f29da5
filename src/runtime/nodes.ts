/**
 * Choosing the node a client uses (`servers:`): the best at start by loss-penalized RTT, and a
 * move only when the node in use is dead, or, with `node_switch: better`, when another one is
 * clearly better for a sustained time (Tailscale's DERP rule: at least 10 ms faster and below
 * 2/3 of the current latency; here over three rounds 30 s apart). A move changes the address
 * the game server sees, which can drop a match: every decision is logged with its figures.
 *
 * @module
 */
import type { NodeSpec, NodeSwitch } from "../config/nodes.ts";
import type { RttReport } from "../core/rtt_stats.ts";
import { chooseNode, type NodeResult, nodeScore, pingNodes } from "../diag/nodes.ts";
import type { Logger } from "@logtape/logtape";

/** Pings per node when choosing at start, and their spacing: ~0.5 s for the choice. */
const START_PINGS = 5;
const START_INTERVAL_MS = 100;
/** A node silent (no handshake completing after a dead path) this long is dead. */
export const NODE_DEAD_MS = 5_000;
/** `better`: how often the other nodes are measured, and in how many rounds in a row one must
 * win before the client moves. */
export const RECHECK_MS = 30_000;
export const RECHECK_ROUNDS = 3;

/** One line per node for the log. */
export function describeResults(results: NodeResult[]): string {
  return results.map((r) =>
    r.reachable
      ? `${r.name} p50 ${r.rtt.p50Ms} ms, jitter ${r.rtt.jitterMs} ms, loss ${r.rtt.lossPct}% ` +
        `(score ${r.score.toFixed(1)})`
      : `${r.name} unreachable (${r.error})`
  ).join("; ");
}

function targets(nodes: NodeSpec[]) {
  return nodes.map((n) => ({
    name: n.name,
    region: n.region,
    host: n.server.host,
    port: n.server.port,
    publicKey: n.publicKey,
  }));
}

/** Measures `nodes` (all at once) with the client's key. */
export function measure(
  nodes: NodeSpec[],
  privateKey: Uint8Array,
  count = START_PINGS,
  intervalMs = START_INTERVAL_MS,
): Promise<NodeResult[]> {
  return pingNodes(targets(nodes), { privateKey, count, intervalMs, handshakeTimeoutMs: 2000 });
}

/** The node to start on: `--node`, the only one, or the best measured (the first if none
 * answers: the tunnel's own retries then keep trying it). */
export async function startNode(
  nodes: NodeSpec[],
  privateKey: Uint8Array,
  log: Logger,
  wanted?: string,
): Promise<NodeSpec> {
  if (wanted !== undefined) {
    const n = nodes.find((x) => x.name === wanted);
    if (!n) {
      throw new Error(
        `--node ${wanted}: no such node; the config has ${nodes.map((x) => x.name).join(", ")}`,
      );
    }
    log.info("Node {name}: chosen with --node", { name: n.name });
    return n;
  }
  if (nodes.length === 1) return nodes[0]!;
  const results = await measure(nodes, privateKey);
  const best = chooseNode(results);
  log.info("Nodes measured: {figures}; using {best}", {
    figures: describeResults(results),
    best: best ? best.name : `${nodes[0]!.name} (none answered)`,
  });
  return nodes.find((n) => n.name === best?.name) ?? nodes[0]!;
}

/** The current node's figures as a {@link NodeResult}, from the tunnel's own probes. */
export function currentResult(node: NodeSpec, rtt: RttReport, up: boolean): NodeResult {
  return {
    name: node.name,
    endpoint: `${node.server.host}:${node.server.port}`,
    reachable: up && rtt.answered > 0,
    handshakeMs: -1,
    rtt,
    score: up ? nodeScore(rtt) : Infinity,
  };
}

/** What {@link NodeWatch} needs from the runtime. */
export interface NodeWatchDeps {
  nodes: NodeSpec[];
  privateKey: Uint8Array;
  mode: NodeSwitch;
  log: Logger;
  /** The node in use. */
  current(): NodeSpec;
  /** The tunnel's own RTT figures and whether it is up now. */
  figures(): Promise<{ rtt: RttReport; up: boolean } | undefined>;
  /** Move to `to` (the runtime restarts the tunnel on it). */
  move(to: NodeSpec, why: string): void;
  /** Measures nodes (default {@link measure}; tests give their own). */
  measure?: (nodes: NodeSpec[], count: number, intervalMs: number) => Promise<NodeResult[]>;
  /** Timings (defaults {@link NODE_DEAD_MS}, {@link RECHECK_MS}, {@link RECHECK_ROUNDS}, a
   * check each second). */
  deadMs?: number;
  recheckMs?: number;
  rounds?: number;
  tickMs?: number;
}

/**
 * Watches the node in use: told of dead paths and completed handshakes, it moves off a node
 * that stays dead for {@link NODE_DEAD_MS} (to the best other node that answers), and with
 * `node_switch: better` measures the others every {@link RECHECK_MS}. A node counts as dead
 * from the start until its first handshake completes, so one that never answers is left too.
 */
export class NodeWatch {
  #deadSince: number | undefined = performance.now();
  #streak: { name: string; rounds: number } | undefined;
  #busy = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastRecheck = performance.now();

  readonly #measure: (
    nodes: NodeSpec[],
    count: number,
    intervalMs: number,
  ) => Promise<NodeResult[]>;
  readonly #deadMs: number;
  readonly #recheckMs: number;
  readonly #rounds: number;

  constructor(readonly d: NodeWatchDeps) {
    this.#measure = d.measure ?? ((n, c, i) => measure(n, d.privateKey, c, i));
    this.#deadMs = d.deadMs ?? NODE_DEAD_MS;
    this.#recheckMs = d.recheckMs ?? RECHECK_MS;
    this.#rounds = d.rounds ?? RECHECK_ROUNDS;
    if (d.nodes.length > 1) this.#timer = setInterval(() => void this.#check(), d.tickMs ?? 1000);
  }

  /** The tunnel declared its path dead (it handshakes again meanwhile). */
  pathDead(): void {
    this.#deadSince ??= performance.now();
  }

  /** A handshake completed: the node lives. */
  connected(): void {
    this.#deadSince = undefined;
  }

  /** A new node is in use: start afresh (dead until its first handshake completes). */
  reset(): void {
    this.#deadSince = performance.now();
    this.#streak = undefined;
    this.#lastRecheck = performance.now();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
  }

  /**
   * The best other node that answers now, measured at once (the node in use refused us, or is
   * dead): undefined when none answers, or when the node in use changed meanwhile.
   */
  async elsewhere(why: string): Promise<{ to: NodeSpec; why: string } | undefined> {
    const cur = this.d.current();
    const others = this.d.nodes.filter((n) => n.name !== cur.name);
    if (!others.length) return undefined;
    const results = await this.#measure(others, 3, 100);
    if (this.d.current() !== cur) return undefined; // moved meanwhile: this is stale
    const best = chooseNode(results);
    const figures = describeResults(results);
    if (!best) {
      this.d.log.warning("{why}, but no other node answers either ({figures}); staying on {cur}", {
        why,
        figures,
        cur: cur.name,
      });
      return undefined;
    }
    return {
      to: others.find((n) => n.name === best.name)!,
      why: `${why}; others measured: ${figures}`,
    };
  }

  async #check(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      const now = performance.now();
      if (this.#deadSince !== undefined && now - this.#deadSince >= this.#deadMs) {
        await this.#leaveDead(now);
      } else if (this.d.mode === "better" && now - this.#lastRecheck >= this.#recheckMs) {
        this.#lastRecheck = now;
        await this.#recheck();
      }
    } catch (err) {
      this.d.log.warning("Node check failed: {err}", { err: (err as Error).message });
    } finally {
      this.#busy = false;
    }
  }

  async #leaveDead(now: number): Promise<void> {
    const cur = this.d.current();
    const silent = Math.round((now - this.#deadSince!) / 1000);
    const pick = await this.elsewhere(`${cur.name} silent for ${silent} s`);
    if (this.d.current() !== cur) return;
    if (!pick) {
      this.#deadSince = performance.now(); // look again after another dead spell
      return;
    }
    this.#deadSince = undefined;
    this.d.move(pick.to, pick.why);
  }

  async #recheck(): Promise<void> {
    const cur = this.d.current();
    const own = await this.d.figures();
    if (!own || !own.up) return; // a dead node is the other rule's
    const others = this.d.nodes.filter((n) => n.name !== cur.name);
    const results = [
      currentResult(cur, own.rtt, own.up),
      ...await this.#measure(others, START_PINGS, START_INTERVAL_MS),
    ];
    if (this.d.current() !== cur) return; // moved meanwhile: these figures are stale
    const pick = chooseNode(results, cur.name);
    if (!pick || pick.name === cur.name) {
      if (this.#streak) {
        this.d.log.info("Node {name} is no longer clearly better; staying on {cur} ({figures})", {
          name: this.#streak.name,
          cur: cur.name,
          figures: describeResults(results),
        });
      }
      this.#streak = undefined;
      return;
    }
    const rounds = this.#streak?.name === pick.name ? this.#streak.rounds + 1 : 1;
    this.#streak = { name: pick.name, rounds };
    this.d.log.info(
      "Node {name} is clearly better than {cur} ({rounds}/{need} rounds): {figures}",
      {
        name: pick.name,
        cur: cur.name,
        rounds,
        need: this.#rounds,
        figures: describeResults(results),
      },
    );
    if (rounds >= this.#rounds) {
      this.#streak = undefined;
      this.d.move(
        this.d.nodes.find((n) => n.name === pick.name)!,
        `better for ${rounds} rounds in a row: ${describeResults(results)}`,
      );
    }
  }
}
