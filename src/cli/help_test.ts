import { assert, assertEquals, assertStringIncludes } from "../../tests/support/assert.ts";
import { HELP, wantsHelp } from "./help.ts";

/** Every command and the flags (and subcommands) its help must name. */
const SURFACE: Record<string, string[]> = {
  serve: ["--config", "-c"],
  connect: ["--config", "-c", "--profile", "--node"],
  status: ["--tun", "--json", "--watch", "--interval", "/run/xvpn/<tun>.status.sock", "xvpn"],
  ping: ["--config", "--count", "--interval", "--json", "servers:"],
  profile: [
    "list",
    "show NAME",
    "import FILE",
    "learn",
    "--name",
    "--out",
    "--force",
    "--pid",
    "--seconds",
  ],
  control: ["--tun", "reconnect", "node NAME", "0600"],
  diag: [
    "mtu",
    "--config",
    "--server",
    "--server-public-key",
    "--private-key-file",
    "--tun",
    "--json",
    "--tries",
    "--timeout",
    "--no-tunnel-check",
  ],
  genkey: ["umask 077"],
  pubkey: ["stdin"],
  demo: ["--mb"],
  "tcp-check": ["sink", "source", "--port", "--listen", "--to", "--bytes", "--seed"],
};

Deno.test("help: every command has a text, and nothing else does", () => {
  assertEquals(Object.keys(HELP).sort(), Object.keys(SURFACE).sort());
});

Deno.test("help: each text has a usage line, its flags, --help and an example", () => {
  for (const [command, flags] of Object.entries(SURFACE)) {
    const text = HELP[command]!;
    assert(text.startsWith(`xvpn ${command}`), `${command}: starts with its name`);
    assertStringIncludes(text, `Usage:\n  xvpn ${command}`, command);
    for (const flag of flags) assertStringIncludes(text, flag, `${command} names ${flag}`);
    assertStringIncludes(text, "-h, --help", command);
    assert(/\nExamples?:\n {2}\S/.test(text), `${command}: has an example`);
    assert(text.endsWith("\n") && !text.endsWith("\n\n"), `${command}: ends with one newline`);
    const wide = text.split("\n").filter((l) => l.length > 80);
    assertEquals(wide, [], `${command}: lines fit 80 columns`);
  }
});

Deno.test("help: names every flag the existing parsers accept (no drift)", async () => {
  // The parseArgs options of the commands that parse their own flags.
  const parsers: [string, string][] = [
    ["diag", "diag.ts"],
    ["tcp-check", "tcpcheck.ts"],
    ["demo", "demo.ts"],
  ];
  for (const [command, file] of parsers) {
    const source = await Deno.readTextFile(new URL(file, import.meta.url));
    const options = [...source.matchAll(/"?([a-z][a-z-]*)"?:\s*\{\s*type:\s*"(?:string|boolean)"/g)]
      .map((m) => m[1]!);
    assert(options.length > 0, `${file}: found its options`);
    for (const o of options) assertStringIncludes(HELP[command]!, `--${o}`, `${command} --${o}`);
  }
});

Deno.test("help: the examples of the root-only commands use sudo, the others do not need it", () => {
  for (const command of ["serve", "connect", "control", "demo"]) {
    assertStringIncludes(HELP[command]!, `sudo xvpn ${command}`, command);
  }
  assert(!HELP.status!.includes("sudo xvpn status"), "status needs no root for group xvpn");
});

Deno.test("wantsHelp: --help or -h anywhere before --", () => {
  const cases: [string[], boolean][] = [
    [["--help"], true],
    [["-h"], true],
    [["--config", "client.yaml", "--help"], true],
    [["reconnect", "-h"], true],
    [["--tun", "xvpn0", "-h", "--"], true],
    [[], false],
    [["--config", "client.yaml"], false],
    [["--", "--help"], false],
    [["source", "--", "-h"], false],
    [["--helpme"], false],
    [["-hv"], false],
    [["--help=yes"], false],
    [["help"], false],
  ];
  for (const [args, want] of cases) assertEquals(wantsHelp(args), want, JSON.stringify(args));
});
