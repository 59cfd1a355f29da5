/**
 * `xvpn tcp-check`: a tiny TCP transfer with a checksum on both ends, used by `xvpn demo` and
 * the integration tests to prove that bytes crossed the tunnel intact.
 *
 *   xvpn tcp-check sink   --port P            accept one connection, print {bytes, sha256}
 *   xvpn tcp-check source --to HOST:P --bytes N [--seed S]
 *                                             send N pseudo-random bytes, print {bytes, sha256}
 *
 * @module
 */
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { UsageError } from "./report.ts";

/** Fills `buf` with a deterministic xorshift stream continuing from `state`; returns the state. */
function fill(buf: Uint8Array, state: number): number {
  const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength >> 2);
  let x = state >>> 0 || 1;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return x;
}

/** Runs the tcp-check subcommand. */
export async function tcpCheck(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      port: { type: "string" },
      to: { type: "string" },
      bytes: { type: "string" },
      seed: { type: "string" },
      listen: { type: "string" },
    },
    allowPositionals: true,
  });
  const mode = positionals[0];
  if (mode === "sink") {
    const port = Number(values.port);
    if (!Number.isInteger(port)) throw new UsageError("tcp-check sink: --port is required");
    const listener = Deno.listen({ hostname: values.listen ?? "0.0.0.0", port });
    console.log(JSON.stringify({ listening: port }));
    const conn = await listener.accept();
    listener.close();
    const hash = createHash("sha256");
    let bytes = 0;
    const started = performance.now();
    for await (const chunk of conn.readable) {
      hash.update(chunk);
      bytes += chunk.length;
    }
    const secs = (performance.now() - started) / 1000;
    console.log(JSON.stringify({ bytes, sha256: hash.digest("hex"), seconds: secs }));
    return 0;
  }
  if (mode === "source") {
    const [host, portText] = (values.to ?? "").split(":");
    const total = Number(values.bytes);
    if (!host || !portText || !Number.isInteger(total)) {
      throw new UsageError("tcp-check source: --to HOST:PORT and --bytes N are required");
    }
    const conn = await Deno.connect({ hostname: host, port: Number(portText) });
    const hash = createHash("sha256");
    const buf = new Uint8Array(64 * 1024);
    let state = Number(values.seed ?? 1);
    let sent = 0;
    const started = performance.now();
    const w = conn.writable.getWriter();
    while (sent < total) {
      state = fill(buf, state);
      const n = Math.min(buf.length, total - sent);
      const chunk = buf.slice(0, n); // the writer may hold it while we refill buf
      hash.update(chunk);
      await w.write(chunk);
      sent += n;
    }
    await w.close();
    const secs = (performance.now() - started) / 1000;
    console.log(JSON.stringify({ bytes: sent, sha256: hash.digest("hex"), seconds: secs }));
    return 0;
  }
  throw new UsageError('tcp-check: expected "sink" or "source"');
}
