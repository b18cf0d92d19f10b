// linearCrossEntropy (kernels/rows/linear_cross_entropy.ts): the mean cross-entropy of x·Wᵀ + b
// over blocks of tokens equals crossEntropy(linear(x, W, b)) in value and in every gradient, for
// any block size, with ignored targets, with and without a bias; finite differences agree in
// float64; under noGrad nothing is saved; WebGPU and wasm match the CPU (on wasm its matmul and
// cross-entropy pieces run their wasm kernels, on 1 and 2 threads); a block that cannot hold one
// token's logits is refused.

import { ok, strictEqual, throws } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import { DeviceLimitError } from "../../engine/errors.ts";
import { noGrad } from "../../engine/autograd.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { add, crossEntropy, linearCrossEntropy, matmul, transpose } from "../../kernels/mod.ts";
import {
  assertClose,
  cpu,
  freshSeed,
  gpu,
  gradCheck,
  hasWebGPU,
  randnArray,
  wasm,
} from "../util.ts";
import { countWasmCalls } from "./wasm_helpers.ts";
import { matmulOp } from "../../kernels/matmul/matmul.ts";
import {
  crossEntropyBackwardOp,
  crossEntropyMeanOp,
  crossEntropyRowsOp,
} from "../../kernels/rows/cross_entropy.ts";

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

Deno.test("linearCrossEntropy on wasm matches the CPU, its row and matmul pieces in wasm", async () => {
  const seed = freshSeed();
  const be = await wasm();
  const counts = await countWasmCalls(
    [matmulOp, crossEntropyRowsOp, crossEntropyMeanOp, crossEntropyBackwardOp],
    async () => {
      for (const threads of [2, 1]) {
        be.ctx.threadLimit = threads;
        for (const rows of [1, 4, N]) {
          for (const bias of [true, false]) {
            const w = both(be, "f32", rows, bias, seed);
            const c = both(cpu, "f64", rows, bias, seed);
            for (let i = 0; i < w.fused.length; i++) {
              const msg = `blocks of ${rows}, bias ${bias}, output ${i}, seed ${seed}, ${threads}`;
              assertClose(await w.fused[i].data(), await c.fused[i].data(), {
                atol: 1e-5,
                rtol: 1e-4,
                msg,
              });
              // The fused op and crossEntropy(linear) on wasm agree too.
              assertClose(await w.fused[i].data(), await w.reference[i].data(), {
                atol: 1e-5,
                rtol: 1e-4,
                msg: `${msg} vs unfused`,
              });
            }
          }
        }
      }
    },
  ).finally(() => (be.ctx.threadLimit = Infinity));
  ok(counts.every((n) => n > 0), `wasm kernels ran ${counts} times`);
});

Deno.test("linearCrossEntropy on wasm at the baby GPT's lm_head: [768, 128] · [65, 128]ᵀ", async () => {
  const be = await wasm();
  const seed = freshSeed();
  const ids = Int32Array.from({ length: 768 }, (_, i) => (i * 7 + seed) % 65);
  const run = async (b: Backend) => {
    const dtype = b.name === "cpu" ? "f64" : "f32";
    const x = fromArray(Float64Array.from(randnArray(768 * 128, seed)), [768, 128], {
      backend: b,
      dtype,
      requiresGrad: true,
    });
    const w = fromArray(Float64Array.from(randnArray(65 * 128, seed + 1)), [65, 128], {
      backend: b,
      dtype,
      requiresGrad: true,
    });
    const y = fromArray(ids, [768], { backend: b, dtype: "i32" });
    const loss = linearCrossEntropy(x, w, null, y);
    loss.backward();
    return [await loss.data(), await x.grad!.data(), await w.grad!.data()];
  };
  const [got, want] = [await run(be), await run(cpu)];
  got.forEach((g, i) => assertClose(g, want[i], { atol: 1e-5, rtol: 1e-3, msg: `output ${i}` }));
});
