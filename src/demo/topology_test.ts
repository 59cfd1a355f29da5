import { assert, assertEquals, assertRejects } from "../../tests/support/assert.ts";
import { CommandError } from "../io/command.ts";
import { listNamespaces, RECORD_DIR, sweepStale } from "./owner.ts";
import { requireTools } from "../../tests/lab/tools.ts";
import { pingSummary, rootTest, sh } from "../../tests/lab/testing.ts";
import { Topology, uniquePrefix } from "./topology.ts";

function spec(prefix = uniquePrefix()) {
  return {
    prefix,
    hosts: ["client", "server", "game"],
    links: [
      { a: "client", b: "server", subnet: "10.201.1.0/24" },
      { a: "server", b: "game", subnet: "10.201.2.0/24", mtu: 1400 },
    ],
    forwarding: ["server"],
    routes: [
      { host: "client", to: "10.201.2.0/24", via: "server" },
      { host: "game", to: "default", via: "server" },
    ],
  };
}

Deno.test("uniquePrefix gives distinct interface-safe prefixes", () => {
  const a = uniquePrefix();
  assert(/^xt[0-9a-f]{6}$/.test(a), a);
  assert(a !== uniquePrefix());
});

rootTest("topology: build, ping across a router, destroy leaves nothing", async () => {
  await requireTools(["ip", "ping", "sysctl", "timeout"]);
  const topo = await Topology.create(spec());
  try {
    assertEquals(topo.addr("client"), "10.201.1.1");
    assertEquals(topo.addr("server", "client"), "10.201.1.2");
    assertEquals(topo.addr("server", "game"), "10.201.2.1");
    assertEquals(topo.addr("game"), "10.201.2.2");
    assertEquals(topo.iface("client"), "to-server");
    const ns = await listNamespaces();
    for (const n of topo.namespaces()) assert(ns.includes(n), `${n} missing`);
    const mtu = await topo.exec("game", ["cat", "/sys/class/net/to-server/mtu"]);
    assertEquals(mtu.stdout.trim(), "1400");
    // Two hops: client -> server (forwarding) -> game, and back by game's default route.
    const ping = await topo.exec("client", [
      "ping",
      "-c",
      "3",
      "-i",
      "0.05",
      "-W",
      "1",
      "10.201.2.2",
    ]);
    assertEquals(pingSummary(ping.stdout).received, 3);
    const fail = await topo.exec("client", ["false"], { allowFailure: true });
    assertEquals(fail.code, 1);
    const err = await assertRejects(
      () => topo.exec("client", ["ls", "/nonexistent"]),
      CommandError,
    );
    assert(err.message.includes(`ip netns exec ${topo.ns("client")} ls /nonexistent`), err.message);
    const timedOut = await topo.exec("client", ["sleep", "5"], {
      timeoutMs: 100,
      allowFailure: true,
    });
    assertEquals(timedOut.code, 124);
  } finally {
    await topo.destroy();
  }
  const after = await listNamespaces();
  for (const n of topo.namespaces()) assert(!after.includes(n), `${n} left behind`);
  await topo.destroy(); // idempotent
});

rootTest("topology: destroy kills spawned and stray processes", async () => {
  const topo = await Topology.create(spec());
  const child = topo.spawn("server", ["sleep", "60"]);
  // A daemon not started through spawn() must not keep the namespace alive either.
  await topo.exec("game", ["sh", "-c", "sleep 60 >/dev/null 2>&1 &"]);
  const stray = (await sh(["ip", "netns", "pids", topo.ns("game")])).trim();
  assert(stray, "no stray process found");
  let cleaned = false;
  topo.onDestroy(() => {
    cleaned = true;
  });
  await topo.destroy();
  assertEquals((await child.status).signal, "SIGTERM");
  assert(cleaned);
  assert(!(await listNamespaces()).some((n) => n.startsWith(topo.prefix)));
  // Killed means gone or a zombie waiting for whoever inherited it to reap it.
  const stat = await Deno.readTextFile(`/proc/${stray.split(/\s+/)[0]}/stat`).catch(() => "");
  assert(!stat || /\) Z /.test(stat), `stray process survived: ${stat}`);
});

rootTest("topology: a busy prefix is refused without touching its namespaces", async () => {
  const topo = await Topology.create(spec());
  try {
    await assertRejects(() => Topology.create(spec(topo.prefix)), Error, "in use");
    const ping = await topo.exec("client", ["ping", "-c", "1", "-W", "1", "10.201.1.2"]);
    assertEquals(pingSummary(ping.stdout).received, 1);
  } finally {
    await topo.destroy();
  }
});

rootTest("sweepStale removes a crashed run's namespaces and keeps live ones", async () => {
  const base = `xs${uniquePrefix("").slice(0, 4)}`;
  const live = await Topology.create({ ...spec(`${base}live`), routes: [], forwarding: [] });
  const dead = `${base}dead`;
  try {
    // A crashed run: namespaces plus an owner record naming a process that has exited.
    const gone = new Deno.Command("true").spawn();
    await gone.status;
    await Deno.writeTextFile(
      `${RECORD_DIR}/${dead}.json`,
      JSON.stringify({ prefix: dead, pid: gone.pid, startTime: "1", created: "" }),
    );
    await sh(["ip", "netns", "add", `${dead}-client`]);
    await sh(["ip", "netns", "add", `${dead}-server`]);
    const removed = await sweepStale(base);
    assertEquals(removed.sort(), [`${dead}-client`, `${dead}-server`]);
    const left = await listNamespaces();
    for (const n of live.namespaces()) assert(left.includes(n), `${n} swept while alive`);
    await assertRejects(() => Deno.stat(`${RECORD_DIR}/${dead}.json`), Deno.errors.NotFound);
  } finally {
    await live.destroy();
    for (const h of ["client", "server"]) {
      await new Deno.Command("ip", { args: ["netns", "del", `${dead}-${h}`], stderr: "null" })
        .output();
    }
    await Deno.remove(`${RECORD_DIR}/${dead}.json`).catch(() => {});
  }
});
