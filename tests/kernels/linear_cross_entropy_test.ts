// linearCrossEntropy (kernels/rows/linear_cross_entropy.ts): the mean cross-entropy of x·Wᵀ + b
// over blocks of tokens equals crossEntropy(linear(x, W, b)) in value and in every gradient, for
// any block size, with ignored targets, with and without a bias; finite differences agree in
// float64; under noGrad nothing is saved; WebGPU matches the CPU; a block that cannot hold one
// token's logits is refused.

import { ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import { DeviceLimitError } from "../../engine/errors.ts";
import { noGrad } from "../../engine/autograd.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { add, crossEntropy, linearCrossEntropy, matmul, transpose } from "../../kernels/mod.ts";
import { assertClose, cpu, freshSeed, gpu, gradCheck, hasWebGPU, randnArray } from "../util.ts";

const [N, C, V] = [11, 6, 9];

function inputs(b: Backend, seed: number, dtype: "f32" | "f64") {
  const arr = (n: number, s: number) =>
    dtype === "f64" ? randnArray(n, s) : Float32Array.from(randnArray(n, s));
  const t = (n: number, shape: number[], s: number) =>
    fromArray(arr(n, s), shape, { backend: b, dtype, requiresGrad: true });
  const ids = Int32Array.from({ length: N }, (_, i) => (i * 4 + seed) % V);
  ids[2] = -1; // ignored
  ids[7] = -1;
  return {
    x: t(N * C, [N, C], seed),
    w: t(V * C, [V, C], seed + 1),
    b: t(V, [V], seed + 2),
    y: fromArray(ids, [N], { backend: b, dtype: "i32" }),
  };
}

/** The loss and gradients both ways, for blocks of `rows` tokens. */
function both(b: Backend, dtype: "f32" | "f64", rows: number, bias: boolean, seed: number) {
  const bytes = dtype === "f64" ? 8 : 4;
  const run = (fused: boolean) => {
    const { x, w, b: bb, y } = inputs(b, seed, dtype);
    const bv = bias ? bb : null;
    let loss: Tensor;
    if (fused) loss = linearCrossEntropy(x, w, bv, y, { maxLogitsBytes: rows * V * bytes });
    else {
      const mm = matmul(x, transpose(w));
      loss = crossEntropy(bv ? add(mm, bv) : mm, y);
    }
    loss.backward();
    return [loss, x.grad!, w.grad!, ...(bv ? [bv.grad!] : [])];
  };
  return { fused: run(true), reference: run(false) };
}

Deno.test("linearCrossEntropy equals crossEntropy(linear) in value and every gradient (cpu f64)", async () => {
  const seed = freshSeed();
  for (const rows of [1, 3, 4, N]) {
    for (const bias of [true, false]) {
      const { fused, reference } = both(cpu, "f64", rows, bias, seed);
      for (let i = 0; i < fused.length; i++) {
        assertClose(await fused[i].data(), await reference[i].data(), {
          atol: 1e-12,
          rtol: 1e-12,
          msg: `blocks of ${rows}, bias ${bias}, output ${i}, seed ${seed}`,
        });
      }
    }
  }
});

Deno.test("linearCrossEntropy gradcheck (float64, blocks of 4 rows)", async () => {
  const ids = Int32Array.from({ length: 5 }, (_, i) => (i * 2) % 4);
  ids[1] = -1;
  const y = fromArray(ids, [5], { backend: cpu, dtype: "i32" });
  await gradCheck(
    (x, w, b) => linearCrossEntropy(x, w, b, y, { maxLogitsBytes: 4 * 4 * 8 }),
    [{ shape: [5, 3] }, { shape: [4, 3] }, { shape: [4] }],
  );
});

Deno.test("linearCrossEntropy under noGrad computes the loss and saves no gradient", async () => {
  const { x, w, b, y } = inputs(cpu, 3, "f64");
  const loss = noGrad(() => linearCrossEntropy(x, w, b, y, { maxLogitsBytes: 3 * V * 8 }));
  strictEqual(loss.node, null);
  strictEqual(loss.requiresGrad, false);
  const want = noGrad(() => crossEntropy(add(matmul(x, transpose(w)), b), y));
  assertClose([await loss.item()], [await want.item()], { atol: 1e-12, rtol: 1e-12 });
});

Deno.test("a block that cannot hold one token's logits is refused", () => {
  const { x, w, b, y } = inputs(cpu, 4, "f64");
  throws(
    () => linearCrossEntropy(x, w, b, y, { maxLogitsBytes: V * 8 - 1 }),
    (e: Error) =>
      e instanceof DeviceLimitError && /one token's logits \[9\] f64 need 72/.test(e.message),
  );
});

Deno.test({
  name: "linearCrossEntropy webgpu matches the CPU (blocks of 1, 4 and all rows)",
  ignore: !hasWebGPU,
  fn: async () => {
    const seed = freshSeed();
    const be = await gpu();
    for (const rows of [1, 4, N]) {
      const g = both(be, "f32", rows, true, seed);
      const c = both(cpu, "f64", rows, true, seed);
      for (let i = 0; i < g.fused.length; i++) {
        assertClose(await g.fused[i].data(), await c.fused[i].data(), {
          atol: 1e-5,
          rtol: 1e-4,
          msg: `blocks of ${rows}, output ${i}, seed ${seed}`,
        });
      }
      ok(true);
    }
  },
});
