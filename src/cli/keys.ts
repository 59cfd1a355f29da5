/**
 * `xvpn genkey` and `xvpn pubkey`: the same text forms as `wg genkey | wg pubkey`.
 *
 * @module
 */
import { decodeKey, encodeKey, generatePrivateKey, publicKeyOf } from "../core/keys.ts";
import { UsageError } from "./report.ts";

/** Prints a new base64 private key. */
export function genkey(): number {
  console.log(encodeKey(generatePrivateKey()));
  return 0;
}

/** Reads a base64 private key on stdin and prints its public key. */
export async function pubkey(): Promise<number> {
  const text = await new Response(Deno.stdin.readable).text();
  const key = decodeKey(text);
  if (!key) throw new UsageError("pubkey: expected a base64 private key of 32 bytes on stdin");
  console.log(encodeKey(publicKeyOf(key)));
  return 0;
}
