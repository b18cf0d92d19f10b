// Tests for data/token_cache.ts: a second encode reads the cache (the tokenizer is not called),
// a corrupt cache is re-encoded and rewritten, a read-only text directory caches elsewhere, and
// an unwritable cache is skipped without error.

import assert from "node:assert/strict";
import { DataError } from "../../data/errors.ts";
import {
  cacheKey,
  decodeTokenFile,
  encodeTokenFile,
  encodeWithCache,
} from "../../data/token_cache.ts";
import { CharTokenizer, type Tokenizer } from "../../data/tokenizer.ts";
import { withTempDir } from "./util.ts";

const TEXT = "to be or not to be, that is the question\n".repeat(20);

/** A char tokenizer whose `encode` calls are counted. */
function spyTokenizer(text: string): Tokenizer & { encodes: number } {
  const inner = CharTokenizer.fromText(text);
  const spy = Object.create(inner) as CharTokenizer & { encodes: number };
  spy.encodes = 0;
  spy.encode = (t: string) => {
    spy.encodes++;
    return inner.encode(t);
  };
  return spy;
}

Deno.test("token cache: the file layout round trips as u16 and as i32", () => {
  const small = new Int32Array([0, 5, 65535, 17]);
  const file16 = encodeTokenFile(small, 65536);
  assert.equal(file16.length, 24 + 2 * 4);
  assert.deepEqual(decodeTokenFile(file16, 65536), small);
  const big = new Int32Array([0, 70000, 99999]);
  const file32 = encodeTokenFile(big, 100000);
  assert.equal(file32.length, 24 + 4 * 3);
  assert.deepEqual(decodeTokenFile(file32, 100000), big);
  assert.throws(() => decodeTokenFile(file16, 50304), DataError); // another vocabulary
  assert.throws(() => decodeTokenFile(file16.subarray(0, 27), 65536), /ids need 32 bytes/);
  const outOfRange = encodeTokenFile(new Int32Array([3, 9]), 10);
  outOfRange[26] = 12; // second id := 12
  assert.throws(() => decodeTokenFile(outOfRange, 10), /id 12 at 1 is outside \[0, 10\)/);
});

Deno.test("token cache: the key depends on the text and the tokenizer", async () => {
  const a = CharTokenizer.fromText("abc");
  const b = CharTokenizer.fromText("abcd");
  const k = await cacheKey("abc", a);
  assert.match(k, /^[0-9a-f]{16}$/);
  assert.equal(await cacheKey("abc", a), k);
  assert.notEqual(await cacheKey("abd", a), k);
  assert.notEqual(await cacheKey("abc", b), k);
});

Deno.test("token cache: a second encode reads the cache next to the text", async () => {
  await withTempDir(async (dir) => {
    const textPath = `${dir}/play.txt`;
    await Deno.writeTextFile(textPath, TEXT);
    const tok = spyTokenizer(TEXT);
    const opts = { fallbackDir: `${dir}/fallback` };
    const first = await encodeWithCache(textPath, TEXT, tok, opts);
    assert.equal(first.fromCache, false);
    assert.match(
      first.cachePath!,
      new RegExp(`^${dir}/play\\.txt\\.char\\.[0-9a-f]{16}\\.tokens$`),
    );
    const second = await encodeWithCache(textPath, TEXT, tok, opts);
    assert.equal(second.fromCache, true);
    assert.equal(second.cachePath, first.cachePath);
    assert.equal(tok.encodes, 1, "the tokenizer ran once");
    assert.deepEqual(second.tokens, first.tokens);
  });
});

Deno.test("token cache: a corrupt cache is re-encoded and rewritten", async () => {
  await withTempDir(async (dir) => {
    const textPath = `${dir}/play.txt`;
    const tok = spyTokenizer(TEXT);
    const opts = { fallbackDir: `${dir}/fallback` };
    const { cachePath, tokens } = await encodeWithCache(textPath, TEXT, tok, opts);
    const corruptions: ((b: Uint8Array) => Uint8Array)[] = [
      (b) => b.subarray(0, b.length - 1), // truncated
      (b) => (b[0] = 0, b), // bad magic
      (b) => (b[24] = 250, b), // an id past the vocabulary
    ];
    for (const corrupt of corruptions) {
      await Deno.writeFile(cachePath!, corrupt(await Deno.readFile(cachePath!)));
      const before = tok.encodes;
      const again = await encodeWithCache(textPath, TEXT, tok, opts);
      assert.equal(again.fromCache, false);
      assert.equal(tok.encodes, before + 1);
      assert.deepEqual(again.tokens, tokens);
      assert.deepEqual(decodeTokenFile(await Deno.readFile(cachePath!), tok.vocabSize), tokens);
    }
  });
});

Deno.test("token cache: a read-only text directory caches in the fallback directory", async () => {
  await withTempDir(async (dir) => {
    const shared = `${dir}/shared`;
    await Deno.mkdir(shared);
    await Deno.writeTextFile(`${shared}/play.txt`, TEXT);
    await Deno.chmod(shared, 0o555);
    try {
      const tok = spyTokenizer(TEXT);
      const opts = { fallbackDir: `${dir}/cache/` };
      const first = await encodeWithCache(`${shared}/play.txt`, TEXT, tok, opts);
      assert.ok(first.cachePath!.startsWith(`${dir}/cache/play.txt.char.`), first.cachePath!);
      assert.deepEqual([...Deno.readDirSync(shared)].map((e) => e.name), ["play.txt"]);
      const second = await encodeWithCache(`${shared}/play.txt`, TEXT, tok, opts);
      assert.equal(second.fromCache, true);
      assert.equal(tok.encodes, 1);
    } finally {
      await Deno.chmod(shared, 0o755);
    }
  });
});

Deno.test("token cache: nowhere to write means no cache and no error", async () => {
  await withTempDir(async (dir) => {
    const blocker = `${dir}/file`; // a file where the cache directories would have to be
    await Deno.writeTextFile(blocker, "x");
    const tok = spyTokenizer(TEXT);
    const opts = { fallbackDir: `${blocker}/cache` };
    const r = await encodeWithCache(`${blocker}/sub/play.txt`, TEXT, tok, opts);
    assert.equal(r.cachePath, null);
    assert.equal(r.fromCache, false);
    assert.equal(r.tokens.length, TEXT.length);
    const off = await encodeWithCache(`${dir}/play.txt`, TEXT, tok, { enabled: false });
    assert.equal(off.cachePath, null);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["file"]);
  });
});
