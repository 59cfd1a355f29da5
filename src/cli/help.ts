/**
 * Per-command help: `xvpn <command> --help` (or `-h`) prints {@link HELP}[command]. Each text is
 * a usage line, what the command does, its flags and one or two examples, at most 80 columns.
 *
 * @module
 */

/** Help text of each command, keyed by its name as typed (`tcp-check`, not `tcpCheck`). */
export const HELP: Record<string, string> = {
  serve: `xvpn serve: run a node (the VPN server)

Usage:
  xvpn serve --config FILE

Needs root (or CAP_NET_ADMIN): creates the TUN device, hands each client a
tunnel address from the pool, pushes MTU, routes and DNS, and with nat: true
masquerades the clients' traffic (nftables) and turns forwarding on. Removes
its NAT tables and puts the sysctls back on SIGTERM or Ctrl-C. Its status
socket /run/xvpn/<tun>.status.sock answers \`xvpn status\`.

Options:
  -c, --config FILE   server config (YAML; see docs/examples/server.yaml)
  -h, --help          show this help

Examples:
  sudo xvpn serve --config /etc/xvpn/server.yaml
  sudo systemctl enable --now xvpn-serve     # the same, under systemd
`,

  connect: `xvpn connect: connect to a node and route traffic through it

Usage:
  xvpn connect --config FILE [--profile NAME]... [--node NAME]

Needs root (or CAP_NET_ADMIN): opens a TUN, handshakes, applies the pushed
address, MTU, routes and DNS with \`ip\`, keeps the tunnel alive, reconnects by
itself, and removes everything on SIGTERM or Ctrl-C.

Options:
  -c, --config FILE   client config (YAML; see docs/examples/client.yaml)
  --profile NAME      route this game profile's CIDRs into the tunnel and follow
                      its domains (the addresses they resolve to); repeatable
  --node NAME         start on this node of the config's servers: list
  -h, --help          show this help

Examples:
  sudo xvpn connect --config client.yaml
  sudo xvpn connect --config client.yaml --profile mygame --node fra
`,

  status: `xvpn status: what a running tunnel is doing

Usage:
  xvpn status [--tun NAME] [--json] [--watch] [--interval SECONDS]

Asks a running \`xvpn connect\` or \`xvpn serve\` through its status socket,
/run/xvpn/<tun>.status.sock (mode 0660, group xvpn): no root needed for
members of group xvpn. Without --tun, the only running tunnel.

Options:
  --tun NAME          the tunnel's TUN device (needed when several run)
  --json              print JSON for scripts
  --watch             keep refreshing until Ctrl-C
  --interval SECONDS  with --watch: seconds between refreshes (default 1)
  -h, --help          show this help

Examples:
  xvpn status
  xvpn status --tun xvpn1 --watch --interval 2
`,

  ping: `xvpn ping: which node is best from here

Usage:
  xvpn ping --config FILE [--count N] [--interval MS] [--json]

Probes every node of the config's servers: list at once and prints, per node,
RTT p50 and p99, jitter and loss. The probes are authenticated (the config's
private key, each node's public_key); they take no tunnel address and never
disturb a tunnel that is running.

Options:
  -c, --config FILE   client config with servers: (YAML)
  --count N           probes sent to each node (default 10)
  --interval MS       milliseconds between probes (default 200)
  --json              print JSON for scripts
  -h, --help          show this help

Examples:
  xvpn ping --config /etc/xvpn/client.yaml
  xvpn ping --config client.yaml --count 50 --interval 20 --json
`,

  profile: `xvpn profile: game profiles (the networks and domains of a game)

Usage:
  xvpn profile list
  xvpn profile show NAME
  xvpn profile import FILE [--name N] [--out DIR] [--force]
  xvpn profile learn --pid N [--seconds S] [--name N] [--out DIR]

A profile is a YAML file naming what a game talks to: cidrs, domains, ports.
Profiles are found by name in /etc/xvpn/profiles, then
$XDG_CONFIG_HOME/xvpn/profiles, then the profiles/ shipped with xvpn, and are
used with \`xvpn connect --profile NAME\`.

list      the profiles there are, by name
show      one profile: its ranges, domains and ports
import    turn a Netch mode (.txt, .json) or SSTap rules file into a profile
learn     watch the running game with process id N for a while and write a
          profile of the addresses it talks to

Options:
  --name N            name of the new profile (import, learn)
  --out DIR           directory to write the profile to (import, learn)
  --force             replace a profile of the same name (import)
  --pid N             process id of the running game (learn)
  --seconds S         how long to watch it (learn)
  -h, --help          show this help

Examples:
  xvpn profile import mode/MyGame.txt --name mygame
  xvpn profile learn --pid 4242 --seconds 120 --name mygame
`,

  control: `xvpn control: steer a running client

Usage:
  xvpn control [--tun NAME] reconnect
  xvpn control [--tun NAME] node NAME

Needs root: talks to the running \`xvpn connect\` through its control socket,
/run/xvpn/<tun>.control.sock (mode 0600). Without --tun, the only running
tunnel.

reconnect           handshake again now, on the same node
node NAME           move the tunnel to this node of the config's servers: list

Options:
  --tun NAME          the tunnel's TUN device (needed when several run)
  -h, --help          show this help

Examples:
  sudo xvpn control reconnect
  sudo xvpn control --tun xvpn0 node ams
`,

  diag: `xvpn diag mtu: is the MTU right?

Usage:
  xvpn diag mtu --config FILE [--json] [--tries N] [--timeout MS]
  xvpn diag mtu --server HOST:PORT --server-public-key KEY
                --private-key-file FILE [--tun NAME]

Measures the path MTU to a running node with DF probes over a diagnostic
session (no address; a running tunnel with the same key is not disturbed),
compares both TUN MTUs, pings through the tunnel when \`xvpn connect\` runs,
and says what to change.
Exit codes: 0 healthy, 1 a problem (the verdict names it), 2 nothing measured.

Options:
  -c, --config FILE          client config (server, keys and tun.name from it)
  --server HOST:PORT         the node, instead of --config
  --server-public-key KEY    its public key (base64), instead of --config
  --private-key-file FILE    this client's private key, instead of --config
  --tun NAME                 local TUN to compare (default: tun.name, or xvpn0)
  --json                     print the report as JSON
  --tries N                  tries per probe size (1-20, default 3)
  --timeout MS               wait per probe (50-10000 ms, default 400)
  --no-tunnel-check          skip the pings through a running tunnel
  -h, --help                 show this help

Examples:
  xvpn diag mtu --config client.yaml
  xvpn diag mtu --config client.yaml --json --tries 5
`,

  genkey: `xvpn genkey: print a new private key

Usage:
  xvpn genkey

Prints a new X25519 private key in base64 (like \`wg genkey\`). Set umask 077
first, so the file it goes to is readable by its owner only.

Options:
  -h, --help          show this help

Example:
  umask 077; xvpn genkey > server.key
`,

  pubkey: `xvpn pubkey: print the public key of a private key

Usage:
  xvpn pubkey < FILE

Reads a base64 private key on stdin and prints its public key (like
\`wg pubkey\`): the value for server_public_key, servers: public_key, or a
client's public_key in server.yaml.

Options:
  -h, --help          show this help

Example:
  xvpn pubkey < server.key
`,

  demo: `xvpn demo: a real tunnel in three throwaway network namespaces

Usage:
  xvpn demo [--mb N]

Needs root and Linux: builds namespaces client, server and game, runs a real
\`xvpn serve\` and \`xvpn connect\` as processes, pings the game host through the
tunnel (also larger than the tunnel MTU), moves N MiB over TCP with a SHA-256
on both ends, stops both with SIGTERM and removes everything (also on Ctrl-C).

Options:
  --mb N              MiB to move over TCP (default 20)
  -h, --help          show this help

Examples:
  sudo xvpn demo
  sudo xvpn demo --mb 100
`,

  "tcp-check": `xvpn tcp-check: a checksummed TCP transfer (used by the demo and the tests)

Usage:
  xvpn tcp-check sink --port P [--listen ADDR]
  xvpn tcp-check source --to HOST:PORT --bytes N [--seed S]

sink      accept one connection, read to its end, print {bytes, sha256, seconds}
source    send N pseudo-random bytes, print {bytes, sha256, seconds}
Both print JSON lines; the same bytes arrived when the two sha256 match.

Options:
  --port P            port to listen on (sink)
  --listen ADDR       address to listen on (sink; default 0.0.0.0)
  --to HOST:PORT      where to connect (source)
  --bytes N           how many bytes to send (source)
  --seed S            seed of the byte stream (source; default 1)
  -h, --help          show this help

Examples:
  xvpn tcp-check sink --port 5201
  xvpn tcp-check source --to 10.7.0.1:5201 --bytes 20971520
`,
};

/** True when `args` ask for help: `--help` or `-h` anywhere before a `--`. */
export function wantsHelp(args: string[]): boolean {
  for (const a of args) {
    if (a === "--") return false;
    if (a === "--help" || a === "-h") return true;
  }
  return false;
}
