import { assert, assertEquals, assertRejects, assertThrows } from "../../tests/support/assert.ts";
import { type Aead, AEAD_TAG_BYTES, loadAead } from "./aead.ts";

const hex = (s: string): Uint8Array =>
  Uint8Array.from((s.replace(/[^0-9a-f]/gi, "").match(/../g) ?? []).map((b) => parseInt(b, 16)));
const random = (n: number): Uint8Array => crypto.getRandomValues(new Uint8Array(n));

// RFC 8439 §2.8.2: the AEAD_CHACHA20_POLY1305 worked example.
const RFC_KEY = Uint8Array.from({ length: 32 }, (_, i) => 0x80 + i);
const RFC_NONCE = hex("07000000 4041424344454647");
const RFC_AD = hex("50515253c0c1c2c3c4c5c6c7");
const RFC_PLAIN = new TextEncoder().encode(
  "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, " +
    "sunscreen would be it.",
);
const RFC_SEALED = hex(
  "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
    "3ff4def08e4b7a9de576d26586cec64b6116" +
    "1ae10b594f09e26a7e902ecbd0600691", // tag
);

const IMPLS: Aead[] = [await loadAead("libsodium"), await loadAead("node:crypto")];

function seal(aead: Aead, plain: Uint8Array, ad: Uint8Array, nonce: Uint8Array, key: Uint8Array) {
  const out = new Uint8Array(plain.length + AEAD_TAG_BYTES);
  assertEquals(aead.seal(out, plain, ad, nonce, key), out.length);
  return out;
}

Deno.test("loadAead() picks libsodium when --allow-ffi is granted", async () => {
  assertEquals((await loadAead()).name, "libsodium");
  assertEquals((await loadAead("auto")).name, "libsodium");
  assertEquals((await loadAead("node:crypto")).name, "node:crypto");
});

Deno.test("loadAead() falls back to node:crypto without --allow-ffi, without prompting", async () => {
  const code = `import { loadAead } from "${new URL("./aead.ts", import.meta.url)}";\n` +
    `console.log((await loadAead()).name);\n` +
    `try { await loadAead("libsodium"); } catch (e) { console.log(e.message); }`;
  // `deno eval` would grant every permission; `deno run -` reads the script from stdin with none.
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(code));
  await writer.close();
  const { code: exit, stdout, stderr } = await child.output();
  const text = new TextDecoder();
  assertEquals(exit, 0, text.decode(stderr));
  assertEquals(text.decode(stdout).trim().split("\n"), [
    "node:crypto",
    "Cannot load libsodium: --allow-ffi is not granted (grant it, or use the node:crypto AEAD)",
  ]);
});

Deno.test("loadAead() rejects an unknown implementation name", async () => {
  // deno-lint-ignore no-explicit-any
  await assertRejects(() => loadAead("openssl" as any), Error, "Unknown AEAD implementation");
});

for (const aead of IMPLS) {
  Deno.test(`${aead.name} seal() matches RFC 8439 §2.8.2`, () => {
    assertEquals(seal(aead, RFC_PLAIN, RFC_AD, RFC_NONCE, RFC_KEY), RFC_SEALED);
  });

  Deno.test(`${aead.name} open() recovers the RFC 8439 §2.8.2 plaintext`, () => {
    const out = new Uint8Array(RFC_PLAIN.length);
    assertEquals(aead.open(out, RFC_SEALED, RFC_AD, RFC_NONCE, RFC_KEY), RFC_PLAIN.length);
    assertEquals(out, RFC_PLAIN);
  });

  Deno.test(`${aead.name} open() rejects a flipped bit in ciphertext, tag or AD`, () => {
    const out = new Uint8Array(RFC_PLAIN.length);
    for (let i = 0; i < RFC_SEALED.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = RFC_SEALED.slice();
        bad[i]! ^= bit;
        assertEquals(aead.open(out, bad, RFC_AD, RFC_NONCE, RFC_KEY), -1, `byte ${i}`);
      }
    }
    for (let i = 0; i < RFC_AD.length; i++) {
      const bad = RFC_AD.slice();
      bad[i]! ^= 0x01;
      assertEquals(aead.open(out, RFC_SEALED, bad, RFC_NONCE, RFC_KEY), -1, `AD byte ${i}`);
    }
    assertEquals(aead.open(out, RFC_SEALED, new Uint8Array(0), RFC_NONCE, RFC_KEY), -1);
  });

  Deno.test(`${aead.name} open() rejects a wrong key or nonce`, () => {
    const out = new Uint8Array(RFC_PLAIN.length);
    const key = RFC_KEY.slice();
    key[31]! ^= 0x01;
    assertEquals(aead.open(out, RFC_SEALED, RFC_AD, RFC_NONCE, key), -1);
    const nonce = RFC_NONCE.slice();
    nonce[0]! ^= 0x01;
    assertEquals(aead.open(out, RFC_SEALED, RFC_AD, nonce, RFC_KEY), -1);
  });

  Deno.test(`${aead.name} open() leaves no plaintext in out on failure`, () => {
    const plain = random(1000);
    const key = random(32);
    const nonce = random(12);
    const sealed = seal(aead, plain, new Uint8Array(0), nonce, key);
    sealed[sealed.length - 1]! ^= 0x01;
    const out = new Uint8Array(plain.length);
    assertEquals(aead.open(out, sealed, new Uint8Array(0), nonce, key), -1);
    assert(!out.every((b, i) => b === plain[i]));
  });

  Deno.test(`${aead.name} open() returns -1 for input shorter than the tag`, () => {
    const out = new Uint8Array(64);
    for (let n = 0; n < AEAD_TAG_BYTES; n++) {
      assertEquals(aead.open(out, random(n), RFC_AD, RFC_NONCE, RFC_KEY), -1, `length ${n}`);
    }
  });

  Deno.test(`${aead.name} open() returns -1 when out cannot hold the plaintext`, () => {
    const out = new Uint8Array(RFC_PLAIN.length - 1);
    assertEquals(aead.open(out, RFC_SEALED, RFC_AD, RFC_NONCE, RFC_KEY), -1);
  });

  Deno.test(`${aead.name} seal() and open() throw RangeError on caller bugs`, () => {
    const out = new Uint8Array(RFC_SEALED.length);
    const short = new Uint8Array(RFC_SEALED.length - 1);
    assertThrows(() => aead.seal(short, RFC_PLAIN, RFC_AD, RFC_NONCE, RFC_KEY), RangeError);
    assertThrows(() => aead.seal(out, RFC_PLAIN, RFC_AD, RFC_NONCE, random(16)), RangeError);
    assertThrows(() => aead.seal(out, RFC_PLAIN, RFC_AD, random(8), RFC_KEY), RangeError);
    assertThrows(() => aead.open(out, RFC_SEALED, RFC_AD, RFC_NONCE, random(31)), RangeError);
    assertThrows(() => aead.open(out, RFC_SEALED, RFC_AD, random(24), RFC_KEY), RangeError);
  });

  Deno.test(`${aead.name} seal() and open() honour subarray offsets`, () => {
    // The data path seals behind a header in one buffer; the view's byteOffset must be respected.
    const buf = new Uint8Array(16 + RFC_SEALED.length + 8).fill(0xee);
    assertEquals(aead.seal(buf.subarray(16), RFC_PLAIN, RFC_AD, RFC_NONCE, RFC_KEY), 130);
    assertEquals(buf.subarray(16, 16 + RFC_SEALED.length), RFC_SEALED);
    assert(buf.subarray(0, 16).every((b) => b === 0xee), "bytes before the view untouched");
    assert(buf.subarray(16 + RFC_SEALED.length).every((b) => b === 0xee), "bytes after untouched");
    const plainBuf = new Uint8Array(4 + RFC_PLAIN.length);
    const sealedView = buf.subarray(16, 16 + RFC_SEALED.length);
    const n = aead.open(plainBuf.subarray(4), sealedView, RFC_AD, RFC_NONCE, RFC_KEY);
    assertEquals(n, RFC_PLAIN.length);
    assertEquals(plainBuf.subarray(4), RFC_PLAIN);
  });
}

Deno.test("Aead.seal() gives identical bytes in both implementations, each opens the other's", () => {
  const [a, b] = IMPLS as [Aead, Aead];
  const sizes = [0, 1, 15, 16, 17, 63, 64, 65, 255, 256, 1023, 1024, 1280, 1400, 1499, 1500];
  for (let i = 0; i < 40; i++) sizes.push(Math.floor(Math.random() * 1501));
  for (const size of sizes) {
    const plain = random(size);
    const ad = random(size % 40);
    const nonce = random(12);
    const key = random(32);
    const sealedA = seal(a, plain, ad, nonce, key);
    const sealedB = seal(b, plain, ad, nonce, key);
    assertEquals(sealedA, sealedB, `size ${size}`);
    const outA = new Uint8Array(size);
    const outB = new Uint8Array(size);
    assertEquals(a.open(outA, sealedB, ad, nonce, key), size);
    assertEquals(b.open(outB, sealedA, ad, nonce, key), size);
    assertEquals(outA, plain);
    assertEquals(outB, plain);
  }
});

Deno.test("Aead.seal() and Aead.open() honour explicit lengths inside larger buffers", () => {
  const key = random(32), nonce = random(12), ad = random(16);
  for (const aead of IMPLS) {
    const arena = random(2048); // plaintext at the start, garbage after it
    const want = seal(aead, arena.subarray(0, 700), ad, nonce, key);
    const out = new Uint8Array(4096);
    assertEquals(aead.seal(out, arena, ad, nonce, key, 700), 716, aead.name);
    assertEquals(out.subarray(0, 716), want, `${aead.name}: same bytes as a 700-byte view`);
    const plain = new Uint8Array(4096);
    assertEquals(aead.open(plain, out, ad, nonce, key, 716), 700, aead.name);
    assertEquals(plain.subarray(0, 700), arena.subarray(0, 700));
    assertEquals(
      aead.open(plain, out, ad, nonce, key, 715),
      -1,
      `${aead.name}: short length fails`,
    );
    assertThrows(() => aead.seal(out, arena, ad, nonce, key, 4000), RangeError);
  }
});
