/**
 * A tiny UDP DNS server answering A queries from a fixed table, for tests and labs: run it on
 * the VPN server's tunnel address and a name resolves only through the tunnel.
 *
 * As a program:
 * `deno run --unstable-net --allow-net static_server.ts 10.77.0.1:53 game.test=10.201.2.2 ...`
 * prints `listening on <addr>` once bound and serves until SIGTERM/SIGINT.
 *
 * @module
 */
import { formatIPv4, parseIPv4 } from "../../lib/ip.ts";
import { answerQuery } from "./message.ts";

/** A running server. */
export interface StaticDnsServer {
  /** The bound address. */
  readonly addr: Deno.NetAddr;
  /** How many queries were answered. */
  readonly answered: number;
  /** Stops serving and closes the socket. */
  close(): Promise<void>;
}

/** Parses `name=1.2.3.4` words into a record table (a name may repeat for several addresses). */
export function parseRecords(words: readonly string[]): Map<string, number[]> {
  const out = new Map<string, number[]>();
  for (const w of words) {
    const [name, ip] = w.split("=");
    const addr = ip === undefined ? undefined : parseIPv4(ip);
    if (!name || addr === undefined) throw new Error(`bad record ${w} (want name=IPv4)`);
    const key = name.toLowerCase().replace(/\.$/, "");
    out.set(key, [...(out.get(key) ?? []), addr]);
  }
  return out;
}

/** Binds UDP `hostname:port` and answers from `records` until closed. */
export function serveStaticDns(
  hostname: string,
  port: number,
  records: ReadonlyMap<string, readonly number[]>,
): StaticDnsServer {
  const sock = Deno.listenDatagram({ transport: "udp", hostname, port });
  let answered = 0;
  const loop = (async () => {
    try {
      for await (const [msg, from] of sock) {
        const reply = answerQuery(msg, records);
        if (!reply) continue;
        await sock.send(reply, from).catch(() => {}); // the asker may be gone
        answered++;
      }
    } catch {
      // closed
    }
  })();
  return {
    addr: sock.addr as Deno.NetAddr,
    get answered() {
      return answered;
    },
    async close() {
      try {
        sock.close();
      } catch {
        // already closed
      }
      await loop;
    },
  };
}

if (import.meta.main) {
  const [listen, ...words] = Deno.args;
  const m = /^(.+):(\d+)$/.exec(listen ?? "");
  if (!m) {
    console.error("usage: static_server.ts <ipv4>:<port> name=ipv4 ...");
    Deno.exit(2);
  }
  const records = parseRecords(words);
  const server = serveStaticDns(m[1]!, Number(m[2]), records);
  const table = [...records].map(([n, a]) => `${n}=${a.map(formatIPv4).join(",")}`).join(" ");
  console.log(`listening on ${server.addr.hostname}:${server.addr.port} (${table})`);
  const stop = () => server.close().then(() => Deno.exit(0));
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
}
