/**
 * OpenVPN 2.6 (Debian) in peer-to-peer TLS mode over UDP, tuned for speed: self-signed EC
 * certificates made with openssl at run time and pinned with `--peer-fingerprint` (no CA), AEAD
 * data ciphers, large socket buffers, `--fast-io`, and the data channel offload (DCO) turned off
 * so that, like the other peers, it runs in userspace.
 *
 * @module
 */
import { assertRunning, tail, waitFor } from "../net.ts";
import type { BenchNet, RunningTunnel, TunnelPeer } from "./types.ts";

const PORT = 1194;
const POOL = { server: "10.79.0.1", client: "10.79.0.2" };
const BUFFER = String(4 * 1024 * 1024);

/** Makes a self-signed P-256 certificate; returns its SHA-256 fingerprint (AA:BB:...). */
async function selfSigned(net: BenchNet, role: string): Promise<string> {
  const base = `${net.dir}/ovpn-${role}`;
  await net.topo.exec(role, [
    ...["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"],
    ...["-nodes", "-keyout", `${base}.key`, "-out", `${base}.crt`, "-days", "2"],
    ...["-subj", `/CN=xvpn-bench-${role}`],
  ]);
  const fp = await net.topo.exec(role, [
    ...["openssl", "x509", "-in", `${base}.crt`, "-noout", "-fingerprint", "-sha256"],
  ]);
  const m = /Fingerprint=([0-9A-F:]+)/i.exec(fp.stdout);
  if (!m) throw new Error(`no fingerprint in: ${fp.stdout}`);
  return m[1]!;
}

/** OpenVPN as the classic TLS VPN. */
export const openvpnPeer: TunnelPeer = {
  id: "openvpn",
  label: "OpenVPN",
  tools: ["openvpn", "openssl"],
  async start(net: BenchNet): Promise<RunningTunnel> {
    const { topo, dir } = net;
    const fp = { server: await selfSigned(net, "server"), client: await selfSigned(net, "client") };
    const dev = { server: "ovpn0", client: "ovpn0" }; // TUN names are per namespace
    const common = (role: "server" | "client", peer: "server" | "client") => [
      "openvpn",
      ...["--dev", dev[role], "--dev-type", "tun", "--proto", "udp"],
      ...["--cert", `${dir}/ovpn-${role}.crt`, "--key", `${dir}/ovpn-${role}.key`],
      ...["--peer-fingerprint", fp[peer]],
      ...["--ifconfig", POOL[role], POOL[peer]],
      ...["--data-ciphers", "AES-256-GCM:CHACHA20-POLY1305"],
      ...["--tun-mtu", String(net.mtu), "--txqueuelen", "1000"],
      ...["--sndbuf", BUFFER, "--rcvbuf", BUFFER, "--fast-io", "--disable-dco"],
      ...["--mute-replay-warnings", "--verb", "3", "--log", `${dir}/openvpn-${role}.log`],
    ];
    const server = topo.spawn("server", [
      ...common("server", "client"),
      ...["--tls-server", "--dh", "none", "--local", net.serverUnderlay, "--lport", `${PORT}`],
    ]);
    // The client's first packet would be refused and retried only 2 s later: wait for the
    // server's socket first.
    const serverLog = `${dir}/openvpn-server.log`;
    await waitFor("the OpenVPN server to bind", 10_000, async () => {
      await assertRunning(server, "openvpn (server)", serverLog);
      return (await Deno.readTextFile(serverLog).catch(() => "")).includes("link local (bound)");
    });
    const client = topo.spawn("client", [
      ...common("client", "server"),
      ...["--tls-client", "--remote", net.serverUnderlay, `${PORT}`, "--nobind"],
    ]);
    const procs = [
      { role: "server", child: server, log: serverLog },
      { role: "client", child: client, log: `${dir}/openvpn-client.log` },
    ];
    for (const p of procs) {
      await waitFor(`OpenVPN ${p.role} to complete its TLS handshake`, 15_000, async () => {
        await assertRunning(p.child, `openvpn (${p.role})`, p.log);
        const log = await Deno.readTextFile(p.log).catch(() => "");
        return log.includes("Initialization Sequence Completed");
      }).catch(async (err) => {
        throw new Error(`${err.message}\n${await tail(p.log)}`);
      });
    }
    await topo.exec("client", ["ip", "route", "add", net.targetSubnet, "dev", dev.client]);
    return {
      pids: procs.map((p) => ({ role: p.role, pid: p.child.pid })),
      clientTunAddr: POOL.client,
      targetAddr: net.targetAddr,
      clientDev: dev.client,
      async stop() {
        for (const p of procs) {
          try {
            p.child.kill("SIGTERM");
          } catch {
            // already gone
          }
          await p.child.status;
        }
      },
    };
  },
};
