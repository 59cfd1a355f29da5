/**
 * Host names of servers and nodes to addresses.
 *
 * @module
 */
import { parseIPv4 } from "../lib/ip.ts";

/**
 * Resolves `host` to an address text (a literal is returned as is): IPv4 first, since every
 * client network carries it, then IPv6 for a server that has only that.
 */
export async function resolveHost(host: string): Promise<string> {
  if (parseIPv4(host) !== undefined || host.includes(":")) return host;
  let why = "no IPv4 or IPv6 address";
  for (const type of ["A", "AAAA"] as const) {
    try {
      const [a] = await Deno.resolveDns(host, type);
      if (a) return a;
    } catch (err) {
      why = (err as Error).message;
    }
  }
  throw new Error(`Cannot resolve server "${host}": ${why}`);
}
