// Layers: Linear as PyTorch (weight [out, in]), tying, Embedding/LayerNorm/RMSNorm wiring,
// Dropout modes; attention with all heads batched equals a per-head loop, cached decoding equals
// a full pass; RoPE is identity at position 0 and depends only on relative positions.

import { deepStrictEqual, notDeepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { fromArray } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { cat, narrow } from "../../kernels/mod.ts";
import { attend, LayerCache } from "../../nn/attention.ts";
import { CausalSelfAttention, MLP } from "../../models/gpt.ts";
import { BitMLP } from "../../models/bitgpt.ts";
import { makeConfig } from "../../models/config.ts";
import { Dropout, Embedding, LayerNorm, Linear, RMSNorm } from "../../nn/layers.ts";
import { Rope } from "../../nn/rope.ts";
import { assertClose, cpu, randnArray, t64, values } from "../util.ts";

const f64 = { backend: cpu, dtype: "f64" as const };

Deno.test("Linear: y = x·Wᵀ + b with W [out, in]; no-bias and tied variants", async () => {
  const lin = new Linear(3, 2, f64);
  deepStrictEqual(lin.namedParameters().map(([n, p]) => [n, [...p.shape]]), [["weight", [2, 3]], [
    "bias",
    [2],
  ]]);
  lin.loadStateDict({
    weight: { shape: [2, 3], data: [1, 2, 3, 4, 5, 6] },
    bias: { shape: [2], data: [0.5, -1] },
  });
  const y = lin.forward(t64([1, 0, -1, 2, 1, 0], [2, 3]));
  deepStrictEqual(Array.from(await values(y)), [1 - 3 + 0.5, 4 - 6 - 1, 2 + 2 + 0.5, 8 + 5 - 1]);
  const w = await values(new Linear(100, 50, { ...f64, generator: new Generator(1) }).weight);
  ok(
    w.every((v) => Math.abs(v) <= 0.1) && Math.max(...w) > 0.09,
    "PyTorch's U(-1/sqrt(in), 1/sqrt(in))",
  );
  const noBias = new Linear(3, 2, { ...f64, bias: false });
  strictEqual(noBias.bias, null);
  const tied = new Linear(3, 2, { weight: lin.weight });
  strictEqual(tied.weight, lin.weight);
  throws(
    () => new Linear(2, 3, { weight: lin.weight }),
    /tied weight is \[2, 3\], expected \[3, 2\]/,
  );
  throws(() => lin.forward(t64([1, 2], [1, 2])), /linear: input is \[1, 2\], weight is \[2, 3\]/);
});

Deno.test("Embedding, LayerNorm (bias optional), RMSNorm: names, shapes, values", async () => {
  const emb = new Embedding(5, 3, { ...f64, generator: new Generator(2) });
  const ids = fromArray(Int32Array.from([4, 0, 4]), [1, 3], { dtype: "i32", backend: cpu });
  const e = await values(emb.forward(ids));
  const w = await values(emb.weight);
  deepStrictEqual(Array.from(e), [
    ...w.subarray(12, 15),
    ...w.subarray(0, 3),
    ...w.subarray(12, 15),
  ]);
  deepStrictEqual(new LayerNorm(4, { bias: false }).namedParameters().map(([n]) => n), ["weight"]);
  const ln = new LayerNorm(4, f64);
  const ly = await values(ln.forward(t64([1, 2, 3, 4], [1, 4]))); // mean 2.5, variance 1.25
  assertClose(ly, [1, 2, 3, 4].map((v) => (v - 2.5) / Math.sqrt(1.25 + 1e-5)), { rtol: 1e-12 });
  const rms = new RMSNorm(2, f64);
  strictEqual(rms.eps, 1e-6);
  assertClose(await values(rms.forward(t64([3, 4], [1, 2]))), [
    3 / Math.sqrt(12.5 + 1e-6),
    4 / Math.sqrt(12.5 + 1e-6),
  ], { rtol: 1e-12 });
});

Deno.test("Dropout: identity in eval mode or at p = 0; seeded masks in training", async () => {
  const x = t64(new Array(200).fill(1), [200]);
  const d = new Dropout(0.5);
  d.eval();
  strictEqual(d.forward(x), x);
  strictEqual(new Dropout(0).forward(x), x);
  d.train();
  d.generator = new Generator(3);
  const a = await values(d.forward(x));
  ok(a.every((v) => v === 0 || v === 2));
  const zeros = a.filter((v) => v === 0).length;
  ok(zeros > 60 && zeros < 140, `${zeros} of 200 dropped`);
  d.generator = new Generator(3);
  deepStrictEqual(await values(d.forward(x)), a);
  throws(() => new Dropout(1), /p must be in \[0, 1\)/);
});

/** softmax(q·kᵀ/√hs + causal mask)·v per head with plain loops (float64). */
function naiveAttention(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  B: number,
  T: number,
  C: number,
  nh: number,
) {
  const hs = C / nh;
  const y = new Float64Array(B * T * C);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nh; h++) {
      for (let i = 0; i < T; i++) {
        const s: number[] = [];
        for (let j = 0; j <= i; j++) {
          let dot = 0;
          for (let d = 0; d < hs; d++) {
            dot += q[(b * T + i) * C + h * hs + d] * k[(b * T + j) * C + h * hs + d];
          }
          s.push(dot / Math.sqrt(hs));
        }
        const m = Math.max(...s);
        const e = s.map((x) => Math.exp(x - m));
        const z = e.reduce((a, c) => a + c, 0);
        for (let d = 0; d < hs; d++) {
          let acc = 0;
          for (let j = 0; j <= i; j++) acc += (e[j] / z) * v[(b * T + j) * C + h * hs + d];
          y[(b * T + i) * C + h * hs + d] = acc;
        }
      }
    }
  }
  return y;
}

Deno.test("attend: all heads in one batched matmul equal a per-head loop", async () => {
  const [B, T, C, nh] = [2, 5, 12, 3];
  const [q, k, v] = [1, 2, 3].map((s) => randnArray(B * T * C, s));
  const y = attend(t64(q, [B, T, C]), t64(k, [B, T, C]), t64(v, [B, T, C]), nh);
  deepStrictEqual([...y.shape], [B, T, C]);
  assertClose(await values(y), naiveAttention(q, k, v, B, T, C, nh), { atol: 1e-12, rtol: 1e-10 });
});

Deno.test("cached attention: feeding 2 + 1 + 1 tokens equals one full pass (learned and rope)", async () => {
  for (const rope of [undefined, new Rope(8, 4, 10000, f64)]) {
    const cfg = makeConfig({ nEmbd: 8, nHead: 2, blockSize: 8, vocabSize: 5, dropout: 0 });
    const attn = new CausalSelfAttention(cfg, 0.02, { ...f64, generator: new Generator(4) });
    const x = t64(randnArray(2 * 4 * 8, 5), [2, 4, 8]);
    const full = await values(attn.forward(x, { rope }));
    const cache = new LayerCache();
    const parts = [[0, 2], [2, 1], [3, 1]].map(([s, n]) =>
      attn.forward(narrow(x, 1, s, n), { cache, rope })
    );
    strictEqual(cache.length, 4);
    assertClose(await values(cat(parts, 1)), full, { atol: 1e-12, rtol: 1e-10 });
    cache.reset();
    strictEqual(cache.length, 0);
  }
});

Deno.test("RoPE: identity at position 0, scores depend only on relative position", async () => {
  const hs = 8;
  const rope = new Rope(16, hs, 10000, f64);
  const q = randnArray(hs, 6);
  const k = randnArray(hs, 7);
  const at = (x: Float64Array, pos: number) => values(rope.apply(t64(x, [1, hs]), pos));
  assertClose(await at(q, 0), q, { atol: 0, rtol: 0 });
  const dot = async (m: number, n: number) => {
    const [a, b] = [await at(q, m), await at(k, n)];
    return a.reduce((s, x, i) => s + x * b[i], 0);
  };
  assertClose([await dot(5, 2)], [await dot(12, 9)], { rtol: 1e-12 });
  notDeepStrictEqual((await dot(5, 2)).toFixed(6), (await dot(5, 3)).toFixed(6));
  const norm = (x: Float64Array) => Math.hypot(...x);
  assertClose([norm(await at(q, 11))], [norm(q)], { rtol: 1e-12 }); // a rotation
  throws(() => rope.apply(t64(q, [1, hs]), 16), /exceed 16/);
  throws(() => new Rope(4, 5), /headSize must be even/);
});

Deno.test("MLP (Linear + GELU) and BitMLP (BitLinear + ReLU): names and shapes", () => {
  const cfg = makeConfig({ nEmbd: 8, nHead: 2, vocabSize: 5, blockSize: 4, dropout: 0 });
  deepStrictEqual(new MLP(cfg, 0.02, f64).namedParameters().map(([n, p]) => [n, [...p.shape]]), [
    ["c_fc.weight", [32, 8]],
    ["c_fc.bias", [32]],
    ["c_proj.weight", [8, 32]],
    ["c_proj.bias", [8]],
  ]);
  deepStrictEqual(new BitMLP(cfg, 0.02, f64).namedParameters().map(([n]) => n), [
    "c_fc.weight",
    "c_fc.norm.weight",
    "c_proj.weight",
    "c_proj.norm.weight",
  ]);
  const y = new MLP(cfg, 0.02, f64).forward(t64(randnArray(2 * 3 * 8, 1), [2, 3, 8]));
  deepStrictEqual([...y.shape], [2, 3, 8]);
});
