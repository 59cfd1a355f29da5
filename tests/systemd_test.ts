/**
 * The systemd units in `systemd/`: each parses (a small reader of systemd's unit syntax), names
 * the right ExecStart, restart policy, capabilities and hardening, and, where `systemd-analyze` is
 * installed, passes `systemd-analyze verify` with no complaint about it. ExecStart is rewritten
 * to a dummy executable in a temporary directory for that, since verify checks that the binary
 * exists and /usr/local/bin/xvpn is not installed here.
 *
 * Without systemd-analyze the verify test is ignored, except with `CI=true`: there it fails, so a
 * CI image that lost the package does not pass silently.
 */
import { assert, assertEquals } from "./support/assert.ts";

const DIR = new URL("../systemd/", import.meta.url);

/** A parsed unit: section -> key -> every value assigned, in order. */
type Unit = Record<string, Record<string, string[]>>;

/**
 * Reads systemd's unit syntax: `[Section]` headers, `Key=value` lines, `#` and `;` comments,
 * a trailing `\` joining the next line (with one space, as systemd does, less the indent). A
 * key assigned again adds a value; an empty assignment (`Key=`) clears the list, as it does for
 * systemd's list settings. Anything else is an error naming the line.
 */
function parseUnit(text: string, name = "unit"): Unit {
  const unit: Unit = {};
  let section: Record<string, string[]> | undefined;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const at = i + 1;
    let line = lines[i]!.trim();
    while (line.endsWith("\\") && !/^[#;]/.test(line) && i + 1 < lines.length) {
      line = line.slice(0, -1).trimEnd() + " " + lines[++i]!.trim();
    }
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[([A-Za-z][A-Za-z0-9-]*)\]$/.exec(line);
    if (header) {
      section = unit[header[1]!] ??= {};
      continue;
    }
    const kv = /^([A-Za-z][A-Za-z0-9]*)\s*=\s*(.*)$/.exec(line);
    if (!kv) throw new Error(`${name}:${at}: not a section, comment or Key=value: ${line}`);
    if (!section) throw new Error(`${name}:${at}: ${kv[1]}= before any [Section]`);
    const value = kv[2]!.trim();
    if (value === "") section[kv[1]!] = [];
    else (section[kv[1]!] ??= []).push(value);
  }
  return unit;
}

/** The one value of `key` (fails when it is missing or given twice). */
function one(unit: Unit, section: string, key: string): string {
  const values = unit[section]?.[key] ?? [];
  assertEquals(values.length, 1, `[${section}] ${key}= is set exactly once, got ${values}`);
  return values[0]!;
}

/** Every whitespace-separated word of every value of `key`. */
function words(unit: Unit, section: string, key: string): string[] {
  return (unit[section]?.[key] ?? []).flatMap((v) => v.split(/\s+/)).filter((w) => w !== "");
}

const sorted = (a: string[]) => [...a].sort();

/** systemd's time spans as used here: `3`, `3s`, `500ms`, `1min`. */
function seconds(span: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m)?$/.exec(span);
  assert(m, `a time span: ${span}`);
  const n = Number(m[1]);
  return m[2] === "ms" ? n / 1000 : m[2] === "min" || m[2] === "m" ? n * 60 : n;
}

interface Expected {
  file: string;
  exec: string;
  caps: string[];
  writable: string[];
}

const UNITS: Expected[] = [
  {
    file: "xvpn-serve.service",
    exec: "/usr/local/bin/xvpn serve --config /etc/xvpn/server.yaml",
    caps: ["CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"],
    writable: ["/run/xvpn"],
  },
  {
    file: "xvpn-connect@.service",
    exec: "/usr/local/bin/xvpn connect --config /etc/xvpn/%i.yaml",
    caps: ["CAP_NET_ADMIN", "CAP_NET_RAW"],
    writable: ["/run/xvpn", "/etc/resolv.conf"],
  },
];

async function load(file: string): Promise<{ text: string; unit: Unit }> {
  const text = await Deno.readTextFile(new URL(file, DIR));
  return { text, unit: parseUnit(text, file) };
}

Deno.test("systemd: the unit reader takes sections, lists, continuations and resets", () => {
  const u = parseUnit(
    "# c\n[Unit]\nAfter=a.target\nAfter=b.target\n; c\n[Service]\n" +
      "ExecStart=/bin/x \\\n  --flag\nDeviceAllow=/dev/x\nDeviceAllow=\nDeviceAllow=/dev/y rw\n",
  );
  assertEquals(u, {
    Unit: { After: ["a.target", "b.target"] },
    Service: { ExecStart: ["/bin/x --flag"], DeviceAllow: ["/dev/y rw"] },
  });
  for (const bad of ["Key=before section\n", "[Unit]\nnot an assignment\n", "[Un it]\n"]) {
    let threw = false;
    try {
      parseUnit(bad);
    } catch {
      threw = true;
    }
    assert(threw, `refused: ${JSON.stringify(bad)}`);
  }
});

for (const want of UNITS) {
  Deno.test(`systemd: ${want.file} runs xvpn as root with only the capabilities it needs`, async () => {
    const { unit } = await load(want.file);
    assertEquals(Object.keys(unit).sort(), ["Install", "Service", "Unit"]);
    assertEquals(one(unit, "Service", "ExecStart"), want.exec);
    // root (ip, nft, sysctl, resolv.conf), cut down to these; nothing ambient beyond them
    assertEquals(unit.Service!.User ?? [], [], "no User=: root");
    assertEquals(sorted(words(unit, "Service", "CapabilityBoundingSet")), sorted(want.caps));
    assertEquals(sorted(words(unit, "Service", "AmbientCapabilities")), sorted(want.caps));
    assertEquals(one(unit, "Service", "NoNewPrivileges"), "yes");
  });

  Deno.test(`systemd: ${want.file} restarts on failure, not on a bad config, and stops cleanly`, async () => {
    const { unit } = await load(want.file);
    assertEquals(one(unit, "Service", "Restart"), "on-failure");
    const rs = seconds(one(unit, "Service", "RestartSec"));
    assert(rs >= 1 && rs <= 30, `RestartSec ${rs}s`);
    assert(words(unit, "Service", "RestartPreventExitStatus").includes("2"), "exit 2: bad config");
    assertEquals(one(unit, "Service", "KillSignal"), "SIGTERM");
    assertEquals(one(unit, "Service", "TimeoutStopSec"), "10");
    assert(words(unit, "Unit", "After").includes("network-online.target"));
    assert(words(unit, "Unit", "Wants").includes("network-online.target"));
    assert(words(unit, "Install", "WantedBy").includes("multi-user.target"));
  });

  Deno.test(`systemd: ${want.file} keeps /run/xvpn for group xvpn and across restarts`, async () => {
    const { unit } = await load(want.file);
    assertEquals(one(unit, "Service", "RuntimeDirectory"), "xvpn");
    assertEquals(one(unit, "Service", "RuntimeDirectoryPreserve"), "yes");
    assertEquals(one(unit, "Service", "Group"), "xvpn");
    const mode = parseInt(one(unit, "Service", "RuntimeDirectoryMode"), 8);
    assertEquals(mode & 0o050, 0o050, "group xvpn may enter and list /run/xvpn");
    assertEquals(mode & 0o022, 0, "only root writes there");
    assertEquals(mode & 0o007, 0, "others get nothing");
  });

  Deno.test(`systemd: ${want.file} is hardened without breaking the TUN, sysctls or V8`, async () => {
    const { unit } = await load(want.file);
    const s = (k: string) => one(unit, "Service", k);
    assertEquals(s("ProtectSystem"), "strict");
    const rw = words(unit, "Service", "ReadWritePaths").map((p) => p.replace(/^-/, ""));
    assertEquals(sorted(rw), sorted(want.writable));
    assertEquals(s("ProtectHome"), "yes");
    assertEquals(s("PrivateTmp"), "yes");
    assertEquals(s("DevicePolicy"), "closed");
    assertEquals(unit.Service!.DeviceAllow, ["/dev/net/tun rw"]);
    // each of these would break xvpn: sysctl writes, /dev/net/tun, V8's JIT, the host network
    for (const k of ["ProtectKernelTunables", "PrivateDevices", "MemoryDenyWriteExecute"]) {
      assert(
        !["yes", "true", "1", "on"].includes(unit.Service![k]?.at(-1) ?? ""),
        `${k} is not on`,
      );
    }
    for (const k of ["PrivateNetwork", "PrivateUsers", "ProtectProc"]) {
      assertEquals(unit.Service![k], undefined, `${k} is not set`);
    }
    const families = words(unit, "Service", "RestrictAddressFamilies");
    for (const f of ["AF_UNIX", "AF_NETLINK", "AF_INET", "AF_INET6"]) {
      assert(families.includes(f), `${f}: status socket, ip/nft netlink, UDP`);
    }
  });
}

Deno.test("systemd: both units set up the shared /run/xvpn the same way", async () => {
  const [a, b] = await Promise.all(UNITS.map((u) => load(u.file)));
  for (
    const k of ["RuntimeDirectory", "RuntimeDirectoryMode", "RuntimeDirectoryPreserve", "Group"]
  ) {
    assertEquals(a!.unit.Service![k], b!.unit.Service![k], k);
  }
});

/** The systemd-analyze version line, or undefined when it is not installed. */
async function analyzeVersion(): Promise<string | undefined> {
  try {
    const out = await new Deno.Command("systemd-analyze", {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).split("\n")[0] : undefined;
  } catch {
    return undefined; // not found
  }
}

const VERSION = Deno.build.os === "linux" ? await analyzeVersion() : undefined;
const SKIP = Deno.build.os !== "linux"
  ? "Linux only"
  : VERSION === undefined && Deno.env.get("CI") !== "true"
  ? "systemd-analyze not installed; set CI=true to force"
  : undefined;

/**
 * Runs `systemd-analyze verify` on copies of `files` (name -> text) in `dir`; returns its exit
 * code and every output line that mentions xvpn (the directory is named xvpn-..., so that takes
 * in both `file:line: ...` and `unit.service: ...` complaints, and leaves out any about the
 * machine's own units).
 */
async function verify(
  dir: string,
  files: Record<string, string>,
  instances: Record<string, string> = {},
) {
  const paths: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
    paths.push(`${dir}/${name}`);
  }
  for (const [instance, template] of Object.entries(instances)) {
    await Deno.symlink(template, `${dir}/${instance}`);
    paths.push(`${dir}/${instance}`);
  }
  const out = await new Deno.Command("systemd-analyze", {
    args: ["verify", "--man=no", ...paths],
    env: { SYSTEMD_COLORS: "0", SYSTEMD_PAGER: "" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  const text = dec.decode(out.stdout) + dec.decode(out.stderr);
  return { code: out.code, complaints: text.split("\n").filter((l) => /xvpn/.test(l)), text };
}

Deno.test({
  name: `systemd: systemd-analyze verify accepts both units${SKIP ? ` (ignored: ${SKIP})` : ""}`,
  ignore: SKIP !== undefined,
  async fn() {
    assert(
      VERSION !== undefined,
      "systemd-analyze is not installed (CI=true needs it: apt-get install systemd)",
    );
    const dir = await Deno.makeTempDir({ prefix: "xvpn-systemd-" });
    try {
      const bin = `${dir}/xvpn`;
      await Deno.writeTextFile(bin, "#!/bin/sh\nexit 0\n");
      await Deno.chmod(bin, 0o755);
      const files: Record<string, string> = {};
      for (const u of UNITS) {
        const { text } = await load(u.file);
        assert(text.includes("ExecStart=/usr/local/bin/xvpn "), u.file);
        files[u.file] = text.replaceAll("ExecStart=/usr/local/bin/xvpn ", `ExecStart=${bin} `);
      }

      // The check itself works with this systemd: a misspelt value and an unknown key are seen.
      const control = await Deno.makeTempDir({ dir, prefix: "xvpn-control-" });
      const broken = files["xvpn-serve.service"]!
        .replace("Restart=on-failure", "Restart=on-failur")
        .replace("[Service]\n", "[Service]\nRestartSoon=yes\n");
      const bad = await verify(control, { "xvpn-broken.service": broken });
      assert(bad.complaints.some((l) => l.includes("on-failur")), `sees a bad value:\n${bad.text}`);
      assert(bad.complaints.some((l) => l.includes("RestartSoon")), `sees a bad key:\n${bad.text}`);

      // The real units, the template also as an instance (so %i is expanded).
      const good = await verify(dir, files, {
        "xvpn-connect@client.service": "xvpn-connect@.service",
      });
      assertEquals(good.complaints, [], `${VERSION}:\n${good.text}`);
      assertEquals(good.code, 0, `${VERSION}:\n${good.text}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
