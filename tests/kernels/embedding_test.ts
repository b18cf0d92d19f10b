// embedding: lookup and scatter-add backward by hand, errors, float64 gradient checks with
// repeated ids and views, WebGPU-vs-CPU parity, the documented GPU out-of-range behaviour, and
// wasm-vs-CPU parity (odd sizes; 1 and 2 threads bit-identical) through the wasm kernels.

import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { tensor } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import type { Backend } from "../../engine/backend.ts";
import { embedding, idsPerPass, transpose } from "../../kernels/mod.ts";
import { embeddingBackwardOp, embeddingOp } from "../../kernels/embedding.ts";
import {
  assertClose,
  cpu,
  freshSeed,
  gpu,
  gradCheck,
  hasWebGPU,
  t64,
  values,
  wasm,
} from "../util.ts";
import { poisonPool, wasmParity } from "./gpu_helpers.ts";
import { countWasmCalls, ODD_SIZES } from "./wasm_helpers.ts";

const ids = (v: number[], shape = [v.length], backend: Backend = cpu) =>
  tensor(Int32Array.from(v), shape, { backend });

Deno.test("embedding picks rows and scatter-adds the gradient", async () => {
  const w = t64([1, 2, 3, 4, 5, 6], [3, 2], cpu, true);
  const y = embedding(w, ids([2, 0, 0, 1], [2, 2]));
  deepStrictEqual(y.shape, [2, 2, 2]);
  deepStrictEqual(Array.from(await values(y)), [5, 6, 1, 2, 1, 2, 3, 4]);
  y.backward(t64([1, 2, 10, 20, 100, 200, 1000, 2000], [2, 2, 2]));
  // Row 0 gets positions 1 and 2, row 1 position 3, row 2 position 0.
  deepStrictEqual(Array.from(await values(w.grad!)), [110, 220, 1000, 2000, 1, 2]);
  deepStrictEqual(embedding(w, ids([1], [])).shape, [2]);
});

Deno.test("embedding errors name the op, the id and the shapes", () => {
  const w = t64([1, 2, 3, 4, 5, 6], [3, 2]);
  throws(
    () => embedding(w, ids([0, 3])),
    /embedding: id 3 at position 1 is out of range \[0, 3\) for weight \[3, 2\]/,
  );
  throws(() => embedding(w, ids([-1])), /embedding: id -1 at position 0/);
  throws(() => embedding(w, t64([0], [1])), /embedding: ids must be i32, got f64 \[1\]/);
  throws(
    () => embedding(t64([1, 2], [2]), ids([0])),
    /embedding: weight must be \[V, C\], got \[2\]/,
  );
});

Deno.test("embedding gradcheck (float64, repeated ids, size-1 dims, transposed weight)", async () => {
  await gradCheck((w) => embedding(w, ids([4, 1, 4, 0, 4, 2], [2, 3])), [{ shape: [5, 3] }]);
  await gradCheck((w) => embedding(w, ids([0, 0])), [{ shape: [1, 1] }]);
  await gradCheck((w) => embedding(transpose(w), ids([2, 1, 2])), [{ shape: [3, 4] }]);
});

async function lookup(b: Backend, wv: Float64Array, idv: number[], V: number, C: number) {
  const w = t64(wv, [V, C], b, true);
  const i = ids(idv, [idv.length], b);
  poisonPool(b, idv.length * C * 4);
  const y = embedding(w, i);
  const dy = t64(new Generator(7).normal(idv.length * C), [idv.length, C], b);
  poisonPool(b, V * C * 4);
  y.backward(dy);
  return { y: await values(y), dw: await values(w.grad!) };
}

Deno.test({
  name: "embedding webgpu matches cpu (V, C, N in 1..129)",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu();
    const cases = [[1, 3, 1], [3, 17, 3], [17, 65, 17], [65, 1, 65], [129, 129, 129], [5, 70, 300]];
    for (const [V, C, N] of cases) {
      const seed = freshSeed();
      const gen = new Generator(seed);
      const wv = gen.normal(V * C);
      const idv = Array.from(gen.integers(N, V));
      const want = await lookup(cpu, wv, idv, V, C);
      const got = await lookup(g, wv, idv, V, C);
      const msg = `embedding V=${V} C=${C} N=${N} (seed ${seed})`;
      assertClose(got.y, want.y, { atol: 0, rtol: 1e-7, msg: `${msg} forward` });
      assertClose(got.dw, want.dw, { atol: 1e-5, rtol: 1e-4, msg: `${msg} dweight` });
    }
  },
});

Deno.test({
  name: "embedding webgpu: an out-of-range id gives a NaN row and no gradient",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu();
    const w = t64([1, 2, 3, 4], [2, 2], g, true);
    const y = embedding(w, ids([1, 5, -1], [3], g));
    const v = await values(y);
    deepStrictEqual([v[0], v[1]], [3, 4]);
    deepStrictEqual(Array.from(v.slice(2)).every(Number.isNaN), true);
    y.backward(t64([1, 1, 1, 1, 1, 1], [3, 2], g));
    deepStrictEqual(Array.from(await values(w.grad!)), [0, 0, 1, 1]);
  },
});

// Regression: llvmpipe stops an invocation after 65,535 loop iterations in all, so one pass
// over 20,000 equal ids at C = 200 (100,000 iterations) summed only part of them before the
// backward was split into passes (idsPerPass).
Deno.test({
  name: "embedding backward over more ids than one pass (plain and split tables) matches cpu",
  ignore: !hasWebGPU,
  async fn() {
    const backend = await gpu();
    const seed = freshSeed();
    const cases: [number, number, number, (k: number) => number][] = [
      [3, 200, 20000, () => 1], // every id the same: the worst case of one pass
      [5, 3, 70001, (k) => (k * 7 + seed) % 5],
    ];
    for (const [V, C, N, idOf] of cases) {
      ok(N > idsPerPass(C), "the case needs several passes");
      const idv = Int32Array.from({ length: N }, (_, k) => idOf(k));
      const dyv = Float32Array.from({ length: N * C }, (_, i) => ((i * 37 + seed) % 11) - 5);
      const grads: Float32Array[] = [];
      for (const b of [cpu, backend]) {
        const w = tensor(new Float32Array(V * C), [V, C], { backend: b, requiresGrad: true });
        const y = embedding(w, tensor(idv, [N], { backend: b }));
        y.backward(tensor(dyv, [N, C], { backend: b }));
        grads.push(Float32Array.from(await w.grad!.data()));
      }
      // Sums of small integers: exact in f32 on both backends.
      deepStrictEqual(grads[1], grads[0], `V ${V} C ${C} N ${N} seed ${seed}`);
    }
  },
});

Deno.test("embedding wasm matches cpu, 1 and 2 threads identical (odd V, C, N, repeated ids, views)", async () => {
  const counts = await countWasmCalls([embeddingOp, embeddingBackwardOp], async () => {
    for (const V of [1, 3, 65]) {
      for (const C of ODD_SIZES) {
        for (const N of [1, 7, 768, 1001]) {
          if (N * C > 300000) continue;
          const idv = Array.from(new Generator(freshSeed()).integers(N, V));
          await wasmParity(
            `embedding V=${V} C=${C} N=${N}`,
            (w) => embedding(w, ids(idv, [N], w.backend)),
            [{ shape: [V, C] }],
          );
        }
      }
    }
    await wasmParity(
      "embedding transposed weight, 2-d ids",
      (w) => embedding(transpose(w), ids([2, 1, 2, 0, 0, 1], [2, 3], w.backend)),
      [{ shape: [5, 3] }],
    );
  });
  ok(counts.every((c) => c >= 2 * 58), `wasm kernels ran ${counts} times`);
});

Deno.test("embedding wasm: bad ids throw as on cpu; several backward passes sum exactly", async () => {
  const be = await wasm();
  const w = t64([1, 2, 3, 4, 5, 6], [3, 2], be);
  throws(
    () => embedding(w, ids([0, 3], [2], be)),
    /embedding: id 3 at position 1 is out of range \[0, 3\) for weight \[3, 2\]/,
  );
  throws(() => embedding(w, ids([-1], [1], be)), /embedding: id -1 at position 0/);
  const [V, C, N] = [5, 9, 40001];
  ok(N > idsPerPass(C), "the case needs several passes");
  const idv = Int32Array.from({ length: N }, (_, k) => (k * 7) % V);
  const dyv = Float32Array.from({ length: N * C }, (_, i) => ((i * 37) % 11) - 5);
  const grads: Float32Array[] = [];
  for (const b of [cpu, be]) {
    const wt = tensor(new Float32Array(V * C), [V, C], { backend: b, requiresGrad: true });
    embedding(wt, tensor(idv, [N], { backend: b })).backward(tensor(dyv, [N, C], { backend: b }));
    grads.push(Float32Array.from(await wt.grad!.data()));
  }
  deepStrictEqual(grads[1], grads[0]);
});
