/**
 * `xvpn status` and `xvpn control` against a real `serve` and `connect` in namespaces: the JSON
 * document and its figures after real traffic, the text and live views, the sockets' modes and
 * the group boundary (a member of `xvpn` reads status, anyone else is refused, nobody but root
 * steers), and a reconnect through the control socket that keeps the tunnel working.
 */
import { assert, assertEquals, assertStringIncludes } from "./support/assert.ts";
import { rootTest } from "./support/root.ts";
import { LAB, type Lab, ping, withLab } from "./support/net.ts";
import { selfCommand } from "../src/demo/lab.ts";

type Doc = Record<string, unknown>;

async function status(lab: Lab, host: string, extra: string[] = []): Promise<Doc> {
  const r = await lab.topo.exec(host, [...selfCommand(), "status", "--json", ...extra]);
  return JSON.parse(r.stdout) as Doc;
}

const clientsOf = (d: Doc) => (d.clients ?? []) as Doc[];
const answered = (d: Doc) => Number(((d.paths ?? []) as Doc[])[0]?.answered ?? 0);

/** Polls `read` until `ok` (20 s at most); returns the last value. */
async function until(read: () => Promise<Doc>, ok: (d: Doc) => boolean): Promise<Doc> {
  const deadline = performance.now() + 20_000;
  let last: Doc = {};
  while (performance.now() < deadline) {
    last = await read().catch(() => ({}));
    if (ok(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`never reached: ${JSON.stringify(last)}`);
}

/**
 * Group `xvpn` exists for the test (made and removed by it when the host has none); /run/xvpn's
 * owner group and mode are put back afterwards (a running xvpn hands the directory to the group).
 */
async function withStatusGroup(fn: (gid: number) => Promise<void>): Promise<void> {
  const dir = await Deno.stat("/run/xvpn").catch(() => undefined);
  const has = await new Deno.Command("getent", { args: ["group", "xvpn"] }).output();
  let made = false;
  if (!has.success) {
    const r = await new Deno.Command("groupadd", { args: ["--system", "xvpn"] }).output();
    assert(r.success, `groupadd: ${new TextDecoder().decode(r.stderr)}`);
    made = true;
  }
  try {
    const line = new TextDecoder().decode(
      (await new Deno.Command("getent", { args: ["group", "xvpn"] }).output()).stdout,
    );
    await fn(Number(line.split(":")[2]));
  } finally {
    if (dir) {
      await Deno.chown("/run/xvpn", null, dir.gid!);
      await Deno.chmod("/run/xvpn", dir.mode! & 0o7777);
    }
    if (made) await new Deno.Command("groupdel", { args: ["xvpn"] }).output();
  }
}

/** Runs xvpn as user nobody, with only group `gid`, in `host`'s namespace. */
async function asNobody(lab: Lab, host: string, gid: number, args: string[]) {
  const home = await Deno.makeTempDir({ prefix: "xvpn-nobody-" });
  try {
    await Deno.chmod(home, 0o777);
    return await lab.topo.exec(host, [
      "setpriv",
      "--reuid=65534",
      `--regid=${gid}`,
      "--clear-groups",
      "env",
      `DENO_DIR=${home}`,
      `HOME=${home}`,
      ...selfCommand(),
      ...args,
    ], { allowFailure: true });
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

rootTest(
  "status: connect and serve report their tunnel, its traffic and RTT; views; sockets",
  async () => {
    await withStatusGroup(async (gid) => {
      await withLab({}, async (lab) => {
        await lab.up();
        const pinged = await ping(lab, "client", LAB.game, { count: 10, interval: 0.1 });
        assertEquals(pinged.received, 10);
        // A few probes answered each way (polled: a busy machine may take its time).
        const c = await until(() => status(lab, "client"), (d) => answered(d) >= 2);
        await until(() => status(lab, "server"), (d) => Number(clientsOf(d)[0]?.rtt_ms) >= 0);
        assertEquals([c.format, c.role, c.tun, c.state], [1, "client", "xvpn0", "connected"]);
        assertEquals(c.address, `${LAB.clientTunnel}/24`);
        assertEquals(c.mtu, 1420);
        assertStringIncludes(String((c.node as Doc).endpoint), lab.serverUnderlay);
        const path = (c.paths as Doc[])[0]!;
        assert(Number(path.answered) >= 2, `probes answered: ${JSON.stringify(path)}`);
        assert(Number(path.p50_ms) >= 0, `p50 ${path.p50_ms}`);
        assertEquals(path.loss_pct, 0);
        assert((path.recent as number[]).length >= 2, "the sparkline's samples");
        assert(Number((c.tx as Doc).packets) >= 10 && Number((c.rx as Doc).bytes) > 0);
        assert(Number((c.scheduler as Doc).interactive) >= 10, "the scheduler sent the pings");
        const s = await status(lab, "server");
        assertEquals(s.role, "server");
        const clients = s.clients as Doc[];
        assertEquals(clients.length, 1);
        assertEquals([clients[0]!.name, clients[0]!.address], ["demo-client", LAB.clientTunnel]);
        assert(Number(clients[0]!.rtt_ms) >= 0, `the server's own probes: ${clients[0]!.rtt_ms}`);
        assert(Number((clients[0]!.rx as Doc).packets) >= 10);

        const text = await lab.topo.exec("client", [...selfCommand(), "status"]);
        assertStringIncludes(text.stdout, "xvpn client on xvpn0: connected");
        assertStringIncludes(text.stdout, "path 0* up: rtt");
        const stext = await lab.topo.exec("server", [...selfCommand(), "status"]);
        assertStringIncludes(stext.stdout, `demo-client ${LAB.clientTunnel} from`);

        // The live view redraws in place until Ctrl-C.
        const w = lab.topo.spawn("client", [...selfCommand(), "status", "--watch"], {
          stdout: "piped",
        });
        const reader = w.stdout.pipeThrough(new TextDecoderStream()).getReader();
        let seen = "";
        const deadline = performance.now() + 20_000;
        while (seen.split("\x1b[H\x1b[2J").length - 1 < 2 && performance.now() < deadline) {
          const { value, done } = await reader.read();
          if (done) break;
          seen += value;
        }
        w.kill("SIGINT");
        await reader.cancel();
        assertEquals((await w.status).code, 0, "Ctrl-C ends the live view cleanly");
        const frames = seen.split("\x1b[H\x1b[2J").length - 1;
        assert(frames >= 2, `redrawn at least twice, saw ${frames}`);
        assertStringIncludes(seen, "path 0* up");

        // The boundary: group xvpn reads status; others cannot; only root controls.
        // This lab's sockets: named by TUN and by each namespace (others may be a killed run's).
        const tags: string[] = [];
        for (const host of ["client", "server"]) {
          const link = (await lab.topo.exec(host, ["readlink", "/proc/self/ns/net"])).stdout.trim();
          tags.push(`xvpn0.${link.replace(/^net:\[(\d+)\]$/, "net$1")}.`);
        }
        const socks = [...Deno.readDirSync("/run/xvpn")].map((e) => e.name)
          .filter((n) => tags.some((t) => n.startsWith(t)) && n.endsWith(".sock"));
        assertEquals(socks.length, 4, `both ends' two sockets: ${socks}`);
        for (const name of socks) {
          const st = Deno.statSync(`/run/xvpn/${name}`);
          const mode = st.mode! & 0o777;
          if (name.endsWith(".status.sock")) {
            assertEquals([mode, st.gid], [0o660, gid], `${name}: group xvpn may read`);
          } else assertEquals(mode, 0o600, `${name}: root only`);
        }
        const member = await asNobody(lab, "client", gid, ["status", "--json"]);
        assertEquals(member.code, 0, `a member of xvpn reads status: ${member.stderr}`);
        assertEquals((JSON.parse(member.stdout) as Doc).state, "connected");
        const stranger = await asNobody(lab, "client", 65534, ["status"]);
        assertEquals(stranger.code, 1, "anyone else is refused");
        assertStringIncludes(stranger.stderr, "group xvpn");
        const steer = await asNobody(lab, "client", gid, ["control", "reconnect"]);
        assertEquals(steer.code, 1, "a member of xvpn cannot steer");
        assertStringIncludes(steer.stderr, "permission denied (the control socket is root's)");
        const outsider = await asNobody(lab, "client", 65534, ["control", "reconnect"]);
        assertEquals(outsider.code, 1, "nor can anyone else");

        // A killed run's socket file beside the live one: status still finds the live one.
        const stale = `/run/xvpn/xvpn9.${tags[0]!.slice("xvpn0.".length)}status.sock`;
        // (A listener killed with SIGKILL leaves its file; a clean close would remove it.)
        const holder = lab.topo.spawn("client", [
          Deno.execPath(),
          ...[
            "eval",
            `for await (const _ of Deno.listen({ transport: "unix", path: "${stale}" }));`,
          ],
        ]);
        for (let i = 0; i < 200 && !(await Deno.stat(stale).catch(() => undefined)); i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
        holder.kill("SIGKILL");
        await holder.status;
        assert(await Deno.stat(stale).catch(() => undefined), "a dead socket file is there");
        try {
          assertEquals((await status(lab, "client")).tun, "xvpn0", "the stale socket is skipped");
        } finally {
          await Deno.remove(stale);
        }

        // Root steers: a reconnect is a fresh socket and handshake; the tunnel carries on.
        const before = Number((await status(lab, "client")).handshakes);
        const ctl = await lab.topo.exec("client", [...selfCommand(), "control", "reconnect"]);
        assertStringIncludes(ctl.stdout, "reconnecting");
        await until(() => status(lab, "client"), (d) => Number(d.handshakes) > before);
        assertEquals((await ping(lab, "client", LAB.game, { count: 3 })).received, 3);
        const bad = await lab.topo.exec("client", [...selfCommand(), "control", "node", "nope"], {
          allowFailure: true,
        });
        assertEquals(bad.code, 1);
        assertStringIncludes(bad.stderr, "no node nope");

        // A clean exit removes the sockets.
        await lab.stopAll();
        const left = socks.filter((n) => {
          try {
            Deno.statSync(`/run/xvpn/${n}`);
            return true;
          } catch {
            return false;
          }
        });
        assertEquals(left, [], "no socket left after exit");
      });
    });
  },
);
