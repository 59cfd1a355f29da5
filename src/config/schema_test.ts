import { deepStrictEqual as eq } from "node:assert/strict";
import { suggest } from "./schema.ts";

Deno.test("schema: suggestions catch typos, case and separator slips, prefixes", () => {
  const keys = ["listen", "private_key", "private_key_file", "session_timeout", "nat", "name"];
  eq(suggest("lisen", keys), "listen");
  eq(suggest("privateKey", keys), "private_key");
  eq(suggest("private-key-file", keys), "private_key_file");
  eq(suggest("sesion_timeout", keys), "session_timeout");
  eq(suggest("nmae", keys), "name");
  eq(suggest("warn", ["warning", "error"]), "warning");
  // Short or unrelated words get no suggestion rather than a misleading one.
  eq(suggest("mtu", keys), undefined);
  eq(suggest("frobnicate", keys), undefined);
});
