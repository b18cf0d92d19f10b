// Generation: the KV-cached path gives the same greedy tokens as recomputing the whole window
// every token (both models, learned and rotary positions, past the block size), seeded sampling
// is reproducible, chunks stream, and WebGPU samples the same tokens as the CPU; a chat's
// context is cropped by whole turns.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { tidy } from "../../engine/scope.ts";
import { AdamW } from "../../nn/optim.ts";
import { makeConfig } from "../../models/config.ts";
import { fitContext, generate, generateStream, type Turns } from "../../models/generate.ts";
import { createModel } from "../../models/model.ts";
import type { LanguageModel } from "../../models/model.ts";
import { cpu, gpu, hasWebGPU } from "../util.ts";

const CFG = makeConfig({ vocabSize: 23, blockSize: 12, nLayer: 2, nHead: 2, nEmbd: 16 });

/** A small model trained briefly on a period-7 sequence, so greedy decoding is not degenerate. */
function model(kind: "gpt" | "bitgpt", pos: "learned" | "rope" = "learned"): LanguageModel {
  const m = createModel(kind, { ...CFG, pos }, { backend: cpu, generator: new Generator(9) });
  const opt = new AdamW(m, { lr: 2e-2, weightDecay: 0 });
  const seq = Array.from({ length: 64 }, (_, i) => (i * 3 + Math.floor(i / 7)) % 23);
  const [B, T] = [4, CFG.blockSize];
  for (let step = 0; step < 40; step++) {
    const x = new Int32Array(B * T);
    const y = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const s = (step * 5 + b * 11) % (seq.length - T - 1);
      x.set(seq.slice(s, s + T), b * T);
      y.set(seq.slice(s + 1, s + T + 1), b * T);
    }
    tidy(() => {
      const ids = fromArray(x, [B, T], { dtype: "i32", backend: cpu });
      m.forward(ids, fromArray(y, [B, T], { dtype: "i32", backend: cpu })).loss!.backward();
      opt.step();
      opt.zeroGrad();
    });
  }
  opt.dispose();
  return m;
}

for (const kind of ["gpt", "bitgpt"] as const) {
  for (const pos of ["learned", "rope"] as const) {
    Deno.test(`${kind} (${pos}): KV-cache greedy tokens equal full recomputation, past blockSize`, async () => {
      const m = model(kind, pos);
      const prompt = [[3, 1, 4, 1, 5], [9, 2, 6, 5, 3]];
      const opts = { maxNewTokens: 14, temperature: 0, chunkTokens: 4 }; // 5 + 14 > blockSize 12
      const cached = await generate(m, prompt, opts);
      const full = await generate(m, prompt, { ...opts, useCache: false });
      deepStrictEqual(cached, full);
      strictEqual(cached[0].length, 14);
      ok(new Set(cached.flat()).size > 4, `degenerate output ${cached}`);
    });
  }
}

Deno.test("sampling: same seed, same tokens; chunks stream in order", async () => {
  const m = model("gpt");
  const opts = { maxNewTokens: 10, temperature: 1, topK: 10, topP: 0.95, seed: 7 };
  const a = await generate(m, [1, 2, 3], opts);
  const chunks: number[][][] = [];
  for await (const c of generateStream(m, [1, 2, 3], { ...opts, chunkTokens: 3, chunkMs: 1e9 })) {
    chunks.push(c);
  }
  deepStrictEqual(chunks.map((c) => c[0].length), [3, 3, 3, 1]);
  deepStrictEqual(chunks.flatMap((c) => c[0]), a[0]);
  const b = await generate(m, [1, 2, 3], { ...opts, seed: 8 });
  ok(JSON.stringify(a) !== JSON.stringify(b), "another seed should change the sample");
  ok(m.training, "the model's mode is restored");
});

Deno.test("a chat-style cache is extended across calls", async () => {
  const m = model("gpt");
  const cache = m.newCache();
  const turn1 = await generate(m, [4, 5, 6], { maxNewTokens: 3, temperature: 0, cache });
  strictEqual(cache.length, 5); // 3 prompt positions + 2 fed tokens (the last is not fed yet)
  const ctx = [4, 5, 6, ...turn1[0], 7];
  const turn2 = await generate(m, ctx, { maxNewTokens: 2, temperature: 0, cache });
  const fresh = await generate(m, ctx, { maxNewTokens: 2, temperature: 0 });
  deepStrictEqual(turn2, fresh);
  cache.reset();
});

Deno.test({
  name: "webgpu generation samples the same tokens as the cpu (same seed)",
  ignore: !hasWebGPU,
  fn: async () => {
    const m = model("gpt");
    const opts = { maxNewTokens: 8, temperature: 0.8, topK: 5, seed: 3 };
    const onCpu = await generate(m, [1, 2, 3], opts);
    const greedyCpu = await generate(m, [1, 2, 3], { maxNewTokens: 8, temperature: 0 });
    await m.to(await gpu());
    deepStrictEqual(await generate(m, [1, 2, 3], opts), onCpu);
    deepStrictEqual(await generate(m, [1, 2, 3], { maxNewTokens: 8, temperature: 0 }), greedyCpu);
    m.dispose();
  },
});

Deno.test("the cache feeds one token per step until the window slides, then blockSize", async () => {
  const m = model("gpt");
  const seen: number[] = [];
  const forward = m.forward.bind(m);
  m.forward = ((...args: Parameters<typeof forward>) => {
    seen.push(args[0].shape[1]);
    return forward(...args);
  }) as typeof m.forward;
  await generate(m, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], { maxNewTokens: 5, temperature: 0 });
  // Prompt of 10, then positions 11 and 12 cached (≤ blockSize 12); then the crop recomputes.
  deepStrictEqual(seen, [10, 1, 1, 12, 12]);
});

Deno.test("fitContext drops whole turns, keeps the system message while it can, else crops", () => {
  const model = createModel(
    "gpt",
    makeConfig({ vocabSize: 8, blockSize: 16, nLayer: 1, nHead: 1, nEmbd: 4 }),
    {
      backend: cpu,
    },
  );
  const cache = model.newCache();
  let resets = 0;
  const reset = cache.reset.bind(cache);
  cache.reset = () => (resets++, reset());
  // system message [9, 9, 9], then turns of 4, 3 and 5 tokens
  const chat = (): [number[], Turns] => [
    [9, 9, 9, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    { keep: 3, starts: [3, 7, 10] },
  ];
  let [context, turns] = chat();
  fitContext(context, 20, 5, cache, turns); // 15 + 5 fits: nothing changes
  deepStrictEqual([context.length, turns, resets], [15, { keep: 3, starts: [3, 7, 10] }, 0]);
  // budget 12: the oldest turn goes, the system message stays (no cut inside a turn's header)
  fitContext(context, 16, 4, cache, turns);
  deepStrictEqual(context, [9, 9, 9, 2, 2, 2, 3, 3, 3, 3, 3]);
  deepStrictEqual([turns, resets], [{ keep: 3, starts: [3, 6] }, 1]);
  // budget 6: the newest turn alone fits only without the system message
  [context, turns] = chat();
  fitContext(context, 10, 4, cache, turns);
  deepStrictEqual([context, turns], [[3, 3, 3, 3, 3], { keep: 0, starts: [0] }]);
  // budget 3: not even the newest turn fits: its end is kept
  [context, turns] = chat();
  fitContext(context, 7, 4, cache, turns);
  deepStrictEqual([context, turns], [[3, 3, 3], { keep: 0, starts: [] }]);
  // without turns: the plain crop from the left
  [context] = chat();
  fitContext(context, 16, 4, cache);
  deepStrictEqual(context, [1, 1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]);
  strictEqual(resets, 4);
});
