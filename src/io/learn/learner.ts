/**
 * `xvpn profile learn`: recording the remote addresses a running game talks to, so they can
 * become a game profile. The seam is {@link AddressLearner}; `linux.ts` holds the real one
 * (nftables sets filled by the kernel, per socket cgroup and per local port, so unconnected UDP
 * sockets count too), {@link FakeLearner} its in-memory twin.
 *
 * @module
 */

/** How a learner tells a process's packets from everyone else's. */
export type LearnMethod = "cgroup" | "ports";

/** What to learn. */
export interface LearnOptions {
  /** The process (with its threads, and the children it starts while learning). */
  pid: number;
  /** How long to record, in seconds. */
  seconds: number;
  /** Stops the recording early (Ctrl-C); what was seen so far is returned. */
  signal?: AbortSignal;
  /** The methods to use (default both; tests pick one). */
  methods?: readonly LearnMethod[];
  /** How often to look at the process's sockets, in ms (default 500). */
  pollMs?: number;
}

/** What a learner recorded. */
export interface LearnResult {
  /** The process's name (`/proc/N/comm`), when it could be read. */
  comm?: string;
  /** Remote IPv4 addresses the process sent to, sorted, as text. */
  v4: string[];
  /** Remote IPv6 addresses the process sent to, sorted, as text. */
  v6: string[];
  /** The methods that were in place. */
  methods: LearnMethod[];
  /** Seconds actually recorded (less than asked when stopped or when the process exited). */
  seconds: number;
  /** True when the process exited before the time was up. */
  exited: boolean;
  /** What did not go to plan, one sentence each (a method that could not be used, ...). */
  notes: string[];
}

/** Records the remote addresses of a process. */
export interface AddressLearner {
  /** Records for `opts.seconds` (or until stopped) and undoes everything it set up. */
  learn(opts: LearnOptions): Promise<LearnResult>;
}

/** The in-memory twin: answers with fixed addresses and records what it was asked. */
export class FakeLearner implements AddressLearner {
  /** Every request, in order. */
  readonly calls: LearnOptions[] = [];
  /** Answers with `result` (its `seconds` defaults to what was asked). */
  constructor(private readonly result: Partial<LearnResult> & Pick<LearnResult, "v4" | "v6">) {}
  /** Records `opts` and returns the fixed result. */
  learn(opts: LearnOptions): Promise<LearnResult> {
    this.calls.push(opts);
    return Promise.resolve({
      methods: ["ports"],
      seconds: opts.seconds,
      exited: false,
      notes: [],
      ...this.result,
    });
  }
}
