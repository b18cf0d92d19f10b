// Tests for data/batches.ts: the 90/10 split, batch windows (y is x shifted by one), seeded
// determinism, too-short splits, vocabulary checks and loadDataset end to end.

import assert from "node:assert/strict";
import { BatchSampler, checkVocabFits, loadDataset, splitTokens } from "../../data/batches.ts";
import { DataError, TokenizerError } from "../../data/errors.ts";
import { CharTokenizer, Gpt2Tokenizer } from "../../data/tokenizer.ts";
import { Generator } from "../../engine/random.ts";
import { sharedFile, withTempDir } from "./util.ts";

const SHAKESPEARE = sharedFile("shakespeare.txt");

function arange(n: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}

Deno.test("batches: splitTokens keeps the first 90% for training, as views", () => {
  const tokens = arange(1000);
  const { train, val } = splitTokens(tokens);
  assert.equal(train.length, 900);
  assert.equal(val.length, 100);
  assert.equal(val[0], 900);
  assert.equal(train.buffer, tokens.buffer);
  assert.equal(splitTokens(arange(7), 0.5).train.length, 3);
  assert.throws(() => splitTokens(tokens, 0), /trainFraction must be in \(0, 1\], got 0/);
});

Deno.test("batches: windows are contiguous, y is x shifted by one, starts cover [0, N-T)", () => {
  const [N, T, B] = [12, 4, 3];
  const sampler = new BatchSampler(arange(N), T, B, new Generator(0));
  const seen = new Set<number>();
  for (let step = 0; step < 200; step++) {
    const { x, y } = sampler.next();
    assert.equal(x.length, B * T);
    assert.equal(y.length, B * T);
    for (let b = 0; b < B; b++) {
      const start = x[b * T];
      seen.add(start);
      for (let t = 0; t < T; t++) {
        assert.equal(x[b * T + t], start + t);
        assert.equal(y[b * T + t], start + t + 1);
      }
    }
  }
  assert.deepEqual([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7]);
});

Deno.test("batches: the same seed gives the same batches, another seed others", () => {
  const tokens = arange(5000);
  const draw = (seed: number) => {
    const s = new BatchSampler(tokens, 16, 8, new Generator(seed));
    return [s.next(), s.next()];
  };
  assert.deepEqual(draw(42), draw(42));
  assert.notDeepEqual(draw(42)[0].x, draw(43)[0].x);
  const gen = new Generator(42); // resuming from a saved generator state continues the stream
  const s = new BatchSampler(tokens, 16, 8, gen);
  s.next();
  const resumed = new BatchSampler(tokens, 16, 8, Generator.fromState(gen.state()));
  assert.deepEqual(resumed.next(), draw(42)[1]);
});

Deno.test("batches: past 2^24 positions (two uniforms per start) windows stay in range", () => {
  const N = 2 ** 24 + 4096;
  const tokens = arange(N);
  const sampler = new BatchSampler(tokens, 8, 64, new Generator(7));
  for (let i = 0; i < 4; i++) {
    const { x, y } = sampler.next();
    for (let b = 0; b < 64; b++) {
      assert.ok(x[b * 8] >= 0 && x[b * 8] < N - 8);
      assert.equal(y[b * 8 + 7], x[b * 8] + 8);
    }
  }
  const again = new BatchSampler(tokens, 8, 64, new Generator(7));
  assert.deepEqual(again.next(), new BatchSampler(tokens, 8, 64, new Generator(7)).next());
});

Deno.test("batches: a split shorter than block_size + 1 is an error naming it", () => {
  assert.throws(
    () => new BatchSampler(arange(5), 5, 2, new Generator(0), "val"),
    (e: unknown) =>
      e instanceof DataError &&
      /^the val split has 5 tokens, fewer than block_size \+ 1 = 6; use a smaller --block-size/
        .test(e.message),
  );
  new BatchSampler(arange(6), 5, 2, new Generator(0), "val"); // exactly enough
  assert.throws(() => new BatchSampler(arange(9), 0, 2, new Generator(0)), /blockSize must be/);
  assert.throws(() => new BatchSampler(arange(9), 2, 1.5, new Generator(0)), /batchSize must be/);
});

Deno.test("batches: checkVocabFits refuses a vocabulary larger than the model's", () => {
  const chars = CharTokenizer.fromText("abcdefgh");
  checkVocabFits(chars, 8);
  checkVocabFits(chars, 64);
  assert.throws(
    () => checkVocabFits(chars, 6),
    /the character vocabulary has 8 characters but the model's vocab_size is 6; set --vocab-size to at least 8/,
  );
  assert.throws(() => checkVocabFits(new Gpt2Tokenizer(), 50257), /gpt2 tokenizer needs 50304 ids/);
});

Deno.test("batches: loadDataset builds or reuses a char vocabulary and caches tokens", async () => {
  await withTempDir(async (dir) => {
    const path = `${dir}/tiny.txt`;
    await Deno.writeTextFile(path, "abcabcabcd".repeat(10));
    const cache = { fallbackDir: `${dir}/cache` };
    const first = await loadDataset({ dataset: path, tokenizer: "char", cache });
    assert.equal(first.textPath, path);
    assert.deepEqual(first.tokenizer.toJSON(), { kind: "char", chars: ["a", "b", "c", "d"] });
    assert.equal(first.train.length, 90);
    assert.equal(first.val.length, 10);
    assert.equal(first.fromCache, false);
    const vocab = { kind: "char", chars: ["d", "c", "b", "a", "z"] }; // e.g. from a checkpoint
    const again = await loadDataset({ dataset: path, tokenizer: "char", charVocab: vocab, cache });
    assert.equal(again.tokenizer.vocabSize, 5);
    assert.deepEqual([...again.train.subarray(0, 4)], [3, 2, 1, 3]);
    const reread = await loadDataset({ dataset: path, tokenizer: "char", cache });
    assert.equal(reread.fromCache, true);
    assert.deepEqual(reread.train, first.train);
    await assert.rejects(
      loadDataset({ dataset: path, tokenizer: "char", charVocab: { kind: "char", chars: ["a"] } }),
      (e: unknown) =>
        e instanceof TokenizerError &&
        e.message.startsWith(`${path}: char tokenizer: character 'b'`),
    );
    await assert.rejects(
      loadDataset({ dataset: path, tokenizer: "gpt2", charVocab: vocab, cache }),
      /a char vocabulary was given for the gpt2 tokenizer/,
    );
  });
});

Deno.test({
  name: "batches: loadDataset on tiny Shakespeare matches nanoGPT's shakespeare_char split",
  ignore: SHAKESPEARE === null,
  fn: async () => {
    await withTempDir(async (dir) => {
      const data = await loadDataset({
        dataset: SHAKESPEARE!,
        tokenizer: "char",
        cache: { fallbackDir: dir }, // the shared data directory may be read-only
      });
      assert.equal(data.tokenizer.vocabSize, 65);
      assert.equal(data.train.length, 1003854);
      assert.equal(data.val.length, 111540);
    });
  },
});
