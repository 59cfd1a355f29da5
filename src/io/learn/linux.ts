/**
 * The Linux {@link AddressLearner}: the kernel records where a process sends, in nftables sets,
 * so nothing is captured or copied and unconnected UDP sockets (`sendto` to many servers, as
 * most games do) count like connected ones.
 *
 * Two ways to tell the process's packets apart, used together:
 *
 * - **ports**: every `pollMs` the learner reads the process's socket inodes (`/proc/N/fd`) and
 *   their local ports (`/proc/N/net/{udp,udp6,tcp,tcp6}`) into the sets `udp_ports` and
 *   `tcp_ports`; the output hook records the destination of every packet from those ports.
 *   Catches sockets that existed before learning began. Another process sharing a port (rare)
 *   would be counted too.
 * - **cgroup**: the process is moved into a new cgroup v2 beneath its own
 *   (`xvpn-learn-<pid>`), and `socket cgroupv2` matches every socket made there afterwards, by
 *   it or by children it starts. Sockets keep the cgroup they were made in, which is why the
 *   port method is needed as well. The process goes back to its cgroup at the end.
 *
 * nft runs in the process's network namespace (through `nsenter --net` when it is not ours).
 * The table (`inet xvpn_learn`) and the cgroup are removed whatever happens; a table left by a
 * killed run makes the next one stop and say how to remove it.
 *
 * @module
 */
import { type CommandRunner, ProcessRunner } from "../command.ts";
import type { AddressLearner, LearnMethod, LearnOptions, LearnResult } from "./learner.ts";
import {
  type CgroupPlan,
  LEARN_TABLE,
  learnRuleset,
  localPorts,
  planCgroup,
  setElements,
  socketInode,
} from "./plan.ts";

const DEFAULT_POLL_MS = 500;

/** Sleeps `ms`, or less when `signal` fires. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
}

async function alive(pid: number): Promise<boolean> {
  const stat = await readText(`/proc/${pid}/stat`);
  // A zombie (state Z) has exited already: it only waits for its parent.
  return stat !== undefined && !/^\d+ \(.*\) Z/s.test(stat);
}

/** The pids in a cgroup (`cgroup.procs`). */
async function cgroupProcs(dir: string): Promise<number[]> {
  const text = await readText(`${dir}/cgroup.procs`);
  return (text ?? "").split("\n").filter((l) => /^\d+$/.test(l)).map(Number);
}

/** Learns with nftables; see the module docs. */
export class LinuxLearner implements AddressLearner {
  /** Runs `nft` and `nsenter` through `runner`. */
  constructor(private readonly runner: CommandRunner = new ProcessRunner()) {}

  /** Records the destinations of `opts.pid`; see {@link AddressLearner.learn}. */
  async learn(opts: LearnOptions): Promise<LearnResult> {
    const { pid } = opts;
    if (!Number.isInteger(pid) || pid <= 0 || !(await alive(pid))) {
      throw new Error(`no running process with pid ${pid}`);
    }
    const comm = (await readText(`/proc/${pid}/comm`))?.trim();
    const methods = new Set<LearnMethod>(opts.methods ?? ["cgroup", "ports"]);
    const notes: string[] = [];
    const nft = await this.#nftIn(pid);
    const present = await this.runner.run([...nft, "list", "table", "inet", LEARN_TABLE], {
      allowFailure: true,
    });
    if (present.code === 0) {
      throw new Error(
        `the nftables table inet ${LEARN_TABLE} already exists in the process's network ` +
          `namespace: another xvpn profile learn is running, or one was killed; if none runs, ` +
          `remove it with: ${[...nft, "delete", "table", "inet", LEARN_TABLE].join(" ")}`,
      );
    }
    let cgroup: CgroupPlan | undefined;
    if (methods.has("cgroup")) {
      const plan = planCgroup(
        (await readText(`/proc/${pid}/cgroup`)) ?? "",
        (await readText("/proc/self/mountinfo")) ?? "",
        pid,
      );
      if (typeof plan === "string") notes.push(`cgroup method not used: ${plan}`);
      else {
        try {
          await Deno.mkdir(plan.dir);
          cgroup = plan;
        } catch (e) {
          notes.push(`cgroup method not used: cannot create ${plan.dir}: ${(e as Error).message}`);
        }
      }
    }
    const started = Date.now();
    let tableAdded = false, moved = false, exited = false;
    try {
      try {
        await this.runner.run([...nft, "-f", "-"], { stdin: learnRuleset(cgroup) });
      } catch (e) {
        if (!cgroup) throw e;
        // An nft or kernel without `socket cgroupv2` (nft 0.9.6+, Linux 5.13+): ports alone.
        notes.push(`cgroup method not used: ${(e as Error).message}`);
        await this.#dropCgroup(cgroup, notes);
        cgroup = undefined;
        await this.runner.run([...nft, "-f", "-"], { stdin: learnRuleset() });
      }
      tableAdded = true;
      if (cgroup) {
        try {
          await Deno.writeTextFile(`${cgroup.dir}/cgroup.procs`, `${pid}\n`, { create: false });
          moved = true;
        } catch (e) {
          notes.push(`cgroup method not used: cannot move the process: ${(e as Error).message}`);
        }
      }
      const inUse: LearnMethod[] = [];
      if (moved) inUse.push("cgroup");
      if (methods.has("ports")) inUse.push("ports");
      if (inUse.length === 0) throw new Error("no way to tell the process's packets apart");
      const known = { udp: new Set<number>(), tcp: new Set<number>() };
      const deadline = started + opts.seconds * 1000;
      for (;;) {
        if (methods.has("ports")) await this.#trackPorts(pid, cgroup, moved, nft, known);
        if (!(await alive(pid))) {
          exited = true;
          break;
        }
        const left = deadline - Date.now();
        if (left <= 0 || opts.signal?.aborted) break;
        await sleep(Math.min(left, opts.pollMs ?? DEFAULT_POLL_MS), opts.signal);
      }
      const read = async (set: string) =>
        setElements(
          (await this.runner.run([...nft, "-j", "list", "set", "inet", LEARN_TABLE, set])).stdout,
        ).sort();
      return {
        ...(comm ? { comm } : {}),
        v4: await read("seen4"),
        v6: await read("seen6"),
        methods: inUse,
        seconds: Math.round((Date.now() - started) / 100) / 10,
        exited,
        notes,
      };
    } finally {
      if (tableAdded) {
        await this.runner.run([...nft, "delete", "table", "inet", LEARN_TABLE], {
          allowFailure: true,
        });
      }
      if (cgroup) await this.#dropCgroup(cgroup, notes);
    }
  }

  /** The argv prefix that runs nft in `pid`'s network namespace. */
  async #nftIn(pid: number): Promise<string[]> {
    const [ours, theirs] = await Promise.all([
      Deno.readLink("/proc/self/ns/net").catch(() => undefined),
      Deno.readLink(`/proc/${pid}/ns/net`).catch(() => undefined),
    ]);
    if (theirs === undefined) {
      throw new Error(`cannot read the network namespace of pid ${pid} (not root?)`);
    }
    // nsenter --net changes only the network namespace: nft still sees our /sys/fs/cgroup.
    return ours === theirs ? ["nft"] : ["nsenter", `--net=/proc/${pid}/ns/net`, "nft"];
  }

  /** Adds the local ports of the process's sockets that are not in the sets yet. */
  async #trackPorts(
    pid: number,
    cgroup: CgroupPlan | undefined,
    moved: boolean,
    nft: string[],
    known: { udp: Set<number>; tcp: Set<number> },
  ): Promise<void> {
    const pids = new Set([pid, ...(moved && cgroup ? await cgroupProcs(cgroup.dir) : [])]);
    const inodes = new Set<string>();
    for (const p of pids) {
      try {
        for await (const e of Deno.readDir(`/proc/${p}/fd`)) {
          const link = await Deno.readLink(`/proc/${p}/fd/${e.name}`).catch(() => "");
          const inode = socketInode(link);
          if (inode) inodes.add(inode);
        }
      } catch {
        // The process (or a child) exited meanwhile.
      }
    }
    for (const proto of ["udp", "tcp"] as const) {
      const ports = new Set<number>();
      for (const file of [proto, `${proto}6`]) {
        const text = await readText(`/proc/${pid}/net/${file}`);
        if (text) { for (const p of localPorts(text, inodes)) ports.add(p); }
      }
      const fresh = [...ports].filter((p) => !known[proto].has(p));
      if (fresh.length === 0) continue;
      await this.runner.run([
        ...nft,
        "add",
        "element",
        "inet",
        LEARN_TABLE,
        `${proto}_ports`,
        `{ ${fresh.join(", ")} }`,
      ]);
      for (const p of fresh) known[proto].add(p);
    }
  }

  /** Moves everything in the learn cgroup back where the process was, then removes it. */
  async #dropCgroup(cgroup: CgroupPlan, notes: string[]): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      for (const p of await cgroupProcs(cgroup.dir)) {
        await Deno.writeTextFile(`${cgroup.originalDir}/cgroup.procs`, `${p}\n`, { create: false })
          .catch(() => {}); // it exited meanwhile
      }
      try {
        await Deno.remove(cgroup.dir);
        return;
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return;
        if (attempt === 19) {
          notes.push(`could not remove ${cgroup.dir}: ${(e as Error).message}`);
          return;
        }
      }
      await sleep(50); // an exiting process leaves the cgroup a moment after it is reaped
    }
  }
}
