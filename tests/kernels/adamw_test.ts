// The fused AdamW kernel: a hand-computed update on the CPU backend, strided (transposed)
// gradients, and WebGPU and wasm (one and two threads, the same bytes) against the CPU reference
// on random inputs of odd sizes.

import { fromArray, full } from "../../engine/creation.ts";
import type { Backend } from "../../engine/backend.ts";
import { transpose } from "../../kernels/mod.ts";
import { adamwUpdate } from "../../kernels/adamw.ts";
import { deepStrictEqual } from "node:assert/strict";
import { assertClose, cpu, freshSeed, gpu, hasWebGPU, randnArray, values, wasm } from "../util.ts";
import { splitSmall } from "./wasm_split.ts";

const HP = { lr: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

/** AdamW written out as the paper's algorithm with bias-corrected moments (float64). */
function reference(p: number[], gs: number[][], hp = HP): number[] {
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  const out = [...p];
  gs.forEach((g, k) => {
    const t = k + 1;
    for (let i = 0; i < out.length; i++) {
      out[i] -= hp.lr * hp.weightDecay * out[i];
      m[i] = hp.beta1 * m[i] + (1 - hp.beta1) * g[i];
      v[i] = hp.beta2 * v[i] + (1 - hp.beta2) * g[i] * g[i];
      const mHat = m[i] / (1 - hp.beta1 ** t);
      const vHat = v[i] / (1 - hp.beta2 ** t);
      out[i] -= hp.lr * mHat / (Math.sqrt(vHat) + hp.eps);
    }
  });
  return out;
}

function f64(vals: number[], shape: number[], backend: Backend = cpu) {
  const dtype = backend.name === "cpu" ? "f64" : "f32";
  const arr = dtype === "f64" ? Float64Array.from(vals) : Float32Array.from(vals);
  return fromArray(arr, shape, { backend, dtype });
}

Deno.test("adamw: one step by hand (step 1 moves each weight by lr·sign(g) after decay)", async () => {
  const p = f64([1, -2, 0.5, 3], [2, 2]);
  const g = f64([0.3, -0.1, 2, -4], [2, 2]);
  const m = f64([0, 0, 0, 0], [2, 2]);
  const v = f64([0, 0, 0, 0], [2, 2]);
  adamwUpdate(p, g, m, v, f64([1], [1]), { ...HP, step: 1 });
  // Bias correction makes m̂ = g, v̂ = g², so the step is lr·g/(|g| + eps).
  const byHand = [1 * 0.99 - 0.1, -2 * 0.99 + 0.1, 0.5 * 0.99 - 0.1, 3 * 0.99 + 0.1];
  assertClose(await values(p), byHand, { atol: 1e-8, rtol: 0 });
  assertClose(await values(m), [0.03, -0.01, 0.2, -0.4], { atol: 1e-15, rtol: 1e-12 });
  assertClose(await values(v), [0.0045, 0.0005, 0.2, 0.8], { atol: 1e-15, rtol: 1e-12 });
});

Deno.test("adamw: three steps match the bias-corrected algorithm; scale multiplies g", async () => {
  const p0 = [0.2, -0.7, 1.5];
  const gs = [[0.1, 0.2, -0.3], [-0.5, 0.05, 0.4], [0.3, -0.2, 0.1]];
  const p = f64(p0, [3]);
  const m = f64([0, 0, 0], [3]);
  const v = f64([0, 0, 0], [3]);
  gs.forEach((g, k) =>
    adamwUpdate(p, f64(g.map((x) => x * 4), [3]), m, v, f64([0.25], [1]), { ...HP, step: k + 1 })
  );
  assertClose(await values(p), reference(p0, gs), { atol: 1e-12, rtol: 1e-12 });
});

Deno.test("adamw: a transposed gradient view is read through its strides", async () => {
  const p = f64([1, 2, 3, 4, 5, 6], [2, 3]);
  const gT = f64([0.1, 0.4, 0.2, 0.5, 0.3, 0.6], [3, 2]); // g = gTᵀ = [[.1 .2 .3], [.4 .5 .6]]
  const m = f64(new Array(6).fill(0), [2, 3]);
  const v = f64(new Array(6).fill(0), [2, 3]);
  adamwUpdate(p, transpose(gT), m, v, f64([1], [1]), { ...HP, step: 1 });
  assertClose(await values(m), [0.01, 0.02, 0.03, 0.04, 0.05, 0.06], { atol: 1e-15, rtol: 1e-12 });
});

Deno.test({
  name: "adamw: webgpu matches cpu on odd sizes, strided grads, several steps",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu();
    for (const [rows, cols] of [[1, 1], [7, 13], [33, 65]]) {
      const seed = freshSeed();
      const n = rows * cols;
      const p0 = Array.from(randnArray(n, seed));
      const grads = [1, 2, 3].map((k) => Array.from(randnArray(n, seed + k)));
      const run = async (b: Backend) => {
        const p = f64(p0, [rows, cols], b);
        const m = f64(new Array(n).fill(0), [rows, cols], b);
        const v = f64(new Array(n).fill(0), [rows, cols], b);
        const s = full([1], 0.5, { backend: b, dtype: p.dtype });
        grads.forEach((gv, k) => {
          const gradT = f64(gv, [cols, rows], b); // consumed as a transposed view
          adamwUpdate(p, transpose(gradT), m, v, s, { ...HP, step: k + 1 });
        });
        return [await values(p), await values(m), await values(v)];
      };
      const [want, got] = [await run(cpu), await run(g)];
      for (let k = 0; k < 3; k++) {
        assertClose(got[k], want[k], {
          atol: 1e-6,
          rtol: 1e-4,
          msg: `[${rows}, ${cols}] seed ${seed} out ${k}:`,
        });
      }
    }
  },
});

Deno.test("adamw: wasm matches cpu on odd sizes and strided grads, the same on 1 and 2 threads", () =>
  splitSmall(async () => {
    const be = await wasm();
    for (const [rows, cols] of [[1, 1], [3, 1], [7, 13], [33, 65], [300, 131]]) {
      const seed = freshSeed();
      const n = rows * cols;
      const p0 = Array.from(randnArray(n, seed));
      const grads = [1, 2, 3].map((k) => Array.from(randnArray(n, seed + k)));
      const run = async (b: Backend) => {
        const p = f64(p0, [rows, cols], b);
        const m = f64(new Array(n).fill(0), [rows, cols], b);
        const v = f64(new Array(n).fill(0), [rows, cols], b);
        const s = full([1], 0.5, { backend: b, dtype: p.dtype });
        grads.forEach((gv, k) => {
          // Odd steps read a transposed view, even ones a plain gradient.
          const grad = k % 2 ? f64(gv, [rows, cols], b) : transpose(f64(gv, [cols, rows], b));
          adamwUpdate(p, grad, m, v, s, { ...HP, step: k + 1 });
        });
        return [await values(p), await values(m), await values(v)];
      };
      const want = await run(cpu);
      const got: Float64Array[][] = [];
      for (const threads of [2, 1]) {
        be.ctx.threadLimit = threads;
        try {
          got.push(await run(be));
        } finally {
          be.ctx.threadLimit = Infinity;
        }
      }
      for (let k = 0; k < 3; k++) {
        const msg = `[${rows}, ${cols}] seed ${seed} out ${k}:`;
        assertClose(got[0][k], want[k], { atol: 1e-6, rtol: 1e-4, msg });
        deepStrictEqual(got[1][k], got[0][k], `${msg} 1 vs 2 threads`);
      }
    }
  }));
