// embeddingSplit: lookup in a table held as row chunks equals `embedding` on the whole table
// (values and per-chunk gradients, one group and several groups of EMBEDDING_SPLIT_MAX_TABLES chunks), float64
// gradient checks, the CPU's out-of-range error, and WebGPU-vs-CPU parity with NaN rows.

import { deepStrictEqual, ok, throws } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import { tensor } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { EMBEDDING_SPLIT_MAX_TABLES, embeddingSplit } from "../../kernels/embedding_split.ts";
import { contiguous, embedding, narrow } from "../../kernels/mod.ts";
import { assertClose, cpu, freshSeed, gpu, gradCheck, hasWebGPU, t64, values } from "../util.ts";
import { poisonPool } from "./gpu_helpers.ts";

const ids = (v: number[], shape = [v.length], backend: Backend = cpu) =>
  tensor(Int32Array.from(v), shape, { backend });

/** Row chunks of `sizes` rows cut from w [V, C] (contiguous copies). */
function chunksOf(w: Tensor, sizes: number[]): Tensor[] {
  let at = 0;
  return sizes.map((n) => {
    const c = contiguous(narrow(w, 0, at, n));
    at += n;
    return c;
  });
}

/** Whole-table and chunked lookups with gradients, on backend `b`. */
async function both(
  b: Backend,
  wv: Float64Array,
  V: number,
  C: number,
  sizes: number[],
  idv: number[],
) {
  const whole = t64(wv, [V, C], b, true);
  const parts = chunksOf(t64(wv, [V, C], b), sizes);
  for (const p of parts) p.requiresGrad = true;
  const i = ids(idv, [idv.length], b);
  const dy = t64(new Generator(3).normal(idv.length * C), [idv.length, C], b);
  poisonPool(b, idv.length * C * 4);
  const y1 = embedding(whole, i);
  const y2 = embeddingSplit(parts, i);
  y1.backward(dy);
  y2.backward(dy);
  const dParts = await Promise.all(parts.map((p) => values(p.grad!)));
  const joined = new Float64Array(V * C);
  let at = 0;
  for (const d of dParts) {
    joined.set(d, at);
    at += d.length;
  }
  return { y1: await values(y1), y2: await values(y2), dw: await values(whole.grad!), dj: joined };
}

Deno.test("embeddingSplit equals embedding on the whole table, gradients per chunk", async () => {
  const cases: [number, number, number[]][] = [
    [7, 3, [3, 3, 1]],
    [5, 2, [5]],
    [17, 4, [1, 2, 3, 4, 2, 2, 1, 2]], // 8 chunks: two groups of EMBEDDING_SPLIT_MAX_TABLES
  ];
  for (const [V, C, sizes] of cases) {
    const seed = freshSeed();
    const gen = new Generator(seed);
    const idv = Array.from(gen.integers(3 * V, V));
    const r = await both(cpu, gen.normal(V * C), V, C, sizes, idv);
    const msg = `V=${V} C=${C} chunks [${sizes}] (seed ${seed})`;
    deepStrictEqual(Array.from(r.y2), Array.from(r.y1), msg);
    assertClose(r.dj, r.dw, { atol: 1e-12, rtol: 1e-12, msg });
  }
  ok(cases[2][2].length > EMBEDDING_SPLIT_MAX_TABLES, "the last case must need two kernel groups");
});

Deno.test("embeddingSplit gradcheck (float64, three chunks, repeated ids)", async () => {
  const idv = ids([4, 1, 4, 0, 6, 2, 6], [7]);
  await gradCheck(
    (a, b, c) => embeddingSplit([a, b, c], idv),
    [{ shape: [2, 3] }, { shape: [3, 3] }, { shape: [2, 3] }],
  );
});

Deno.test("embeddingSplit errors name the id and the whole table", () => {
  const parts = [t64([1, 2, 3, 4], [2, 2]), t64([5, 6], [1, 2])];
  throws(
    () => embeddingSplit(parts, ids([0, 3])),
    /embedding: id 3 at position 1 is out of range \[0, 3\) for weight \[3, 2\]/,
  );
  throws(() => embeddingSplit(parts, ids([-1])), /id -1 at position 0/);
  throws(() => embeddingSplit([t64([1, 2], [1, 2]), t64([1], [1, 1])], ids([0])), /\[rows, 2\]/);
  throws(() => embeddingSplit(parts, t64([0], [1])), /ids must be i32/);
});

Deno.test({
  name: "embeddingSplit webgpu matches cpu (values, chunk gradients, 1 and 2 groups)",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu();
    const cases: [number, number, number[], number][] = [
      [7, 3, [3, 3, 1], 9],
      [65, 44, [22, 22, 21], 64],
      [17, 65, [1, 2, 3, 4, 2, 2, 1, 2], 40],
    ];
    for (const [V, C, sizes, N] of cases) {
      const seed = freshSeed();
      const gen = new Generator(seed);
      const wv = gen.normal(V * C);
      const idv = Array.from(gen.integers(N, V));
      const want = await both(cpu, wv, V, C, sizes, idv);
      const got = await both(g, wv, V, C, sizes, idv);
      const msg = `V=${V} C=${C} N=${N} (seed ${seed})`;
      assertClose(got.y2, want.y1, { atol: 0, rtol: 1e-7, msg: `${msg} forward` });
      assertClose(got.dj, want.dw, { atol: 1e-5, rtol: 1e-4, msg: `${msg} dweight` });
    }
  },
});

Deno.test({
  name: "embeddingSplit webgpu: an out-of-range id gives a NaN row and no gradient",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu();
    const a = t64([1, 2], [1, 2], g, true);
    const b = t64([3, 4], [1, 2], g, true);
    const y = embeddingSplit([a, b], ids([1, 5, -1, 0], [4], g));
    const v = await values(y);
    deepStrictEqual(Array.from(v.slice(0, 2)), [3, 4]);
    deepStrictEqual(Array.from(v.slice(2, 6)).every(Number.isNaN), true);
    deepStrictEqual(Array.from(v.slice(6)), [1, 2]);
    y.backward(t64([1, 1, 1, 1, 1, 1, 1, 1], [4, 2], g));
    deepStrictEqual(Array.from(await values(a.grad!)), [1, 1]);
    deepStrictEqual(Array.from(await values(b.grad!)), [1, 1]);
  },
});
