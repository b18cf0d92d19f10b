// Matmul: NumPy semantics (1-D promotion, batched, broadcast batch dims), transposed and
// narrowed operands read through their strides, the inner-dims error, finite-difference
// gradients, WebGPU-vs-CPU parity at odd sizes (tolerance 1e-3 once K >= 129), k ranges past
// llvmpipe's loop cap, and wasm-vs-CPU parity through the op (values and gradients, 1 and 2
// threads to the bit) at odd sizes and at the baby GPT's shapes, the decode step's M = 1.

import { deepStrictEqual, ok, throws } from "node:assert/strict";
import type { Tensor } from "../../engine/tensor.ts";
import { contiguous, matmul, narrow, transpose } from "../../kernels/mod.ts";
import { fromArray } from "../../engine/creation.ts";
import {
  assertClose,
  freshSeed,
  gpu,
  gradCheck,
  hasWebGPU,
  randnArray,
  t64,
  values,
} from "../util.ts";
import { gpuParity, wasmParity } from "./gpu_helpers.ts";
import { countWasmCalls } from "./wasm_helpers.ts";
import { matmulOp } from "../../kernels/matmul/matmul.ts";

/** Naive reference: C[b] = A[b] · B[b] over row-major [batch, M, K] and [batch, K, N]. */
function naive(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  batch: number,
  M: number,
  K: number,
  N: number,
) {
  const c = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[(z * M + i) * K + k] * b[(z * K + k) * N + j];
        c[(z * M + i) * N + j] = s;
      }
    }
  }
  return c;
}

async function expect(y: Tensor, shape: number[], want: ArrayLike<number>): Promise<void> {
  deepStrictEqual(y.shape, shape);
  assertClose(await values(y), want, { atol: 1e-12, rtol: 1e-12 });
}

Deno.test("matmul hand values: 2-D and 1-D promotion", async () => {
  const a = t64([1, 2, 3, 4], [2, 2]);
  const b = t64([5, 6, 7, 8], [2, 2]);
  await expect(matmul(a, b), [2, 2], [19, 22, 43, 50]);
  const v = t64([1, -1], [2]);
  await expect(matmul(a, v), [2], [-1, -1]); // [2, 2] · [2]
  await expect(matmul(v, b), [2], [-2, -2]); // [2] · [2, 2]
  await expect(matmul(t64([1, 2, 3], [3, 1]), t64([4, 5], [1, 2])), [3, 2], [4, 5, 8, 10, 12, 15]);
});

// TODO(matmul owner): [K] · [K] returns shape [1]; NumPy (and PyTorch) return a 0-d scalar.
// Regression: [K]·[K] used to return shape [1].
Deno.test("matmul of two 1-D tensors is a 0-d dot product", async () => {
  await expect(matmul(t64([1, -1], [2]), t64([3, 4], [2])), [], [-1]);
});

Deno.test("matmul batched, broadcast batch dims, 2-D weight against batched input", async () => {
  const seed = freshSeed();
  const av = randnArray(2 * 3 * 4, seed);
  const bv = randnArray(2 * 4 * 5, seed + 1);
  await expect(
    matmul(t64(av, [2, 3, 4]), t64(bv, [2, 4, 5])),
    [2, 3, 5],
    naive(av, bv, 2, 3, 4, 5),
  );
  // [2, 3, 4] · [4, 5]: the weight is shared by both batches.
  const w = bv.slice(0, 20);
  const tiled = [...w, ...w];
  await expect(matmul(t64(av, [2, 3, 4]), t64(w, [4, 5])), [2, 3, 5], naive(av, tiled, 2, 3, 4, 5));
  // [2, 1, 3, 4] · [3, 4, 5] -> [2, 3, 3, 5]: batch dims broadcast both ways.
  const a4 = randnArray(2 * 3 * 4, seed + 2);
  const b3 = randnArray(3 * 4 * 5, seed + 3);
  const aRep: number[] = [];
  const bRep: number[] = [];
  for (let i = 0; i < 2; i++) {
    for (let j = 0; j < 3; j++) {
      aRep.push(...a4.slice(i * 12, (i + 1) * 12));
      bRep.push(...b3.slice(j * 20, (j + 1) * 20));
    }
  }
  await expect(
    matmul(t64(a4, [2, 1, 3, 4]), t64(b3, [3, 4, 5])),
    [2, 3, 3, 5],
    naive(aRep, bRep, 6, 3, 4, 5),
  );
  // [3] · [2, 3, 4] -> [2, 4]; [2, 3, 4] · [4] -> [2, 3].
  const v3 = randnArray(3, seed + 4);
  const want = naive([...v3, ...v3], av, 2, 1, 3, 4);
  await expect(matmul(t64(v3, [3]), t64(av, [2, 3, 4])), [2, 4], want);
});

Deno.test("matmul reads transposed and narrowed operands like their copies", async () => {
  const seed = freshSeed();
  const a = t64(randnArray(5 * 3, seed), [5, 3]); // used as aᵀ: [3, 5]
  const b = t64(randnArray(4 * 6, seed + 1), [4, 6]); // narrowed to [4, 5], then transposed
  const bt = transpose(narrow(b, 1, 1, 5)); // [5, 4]
  const want = await values(matmul(contiguous(transpose(a)), contiguous(bt)));
  await expect(matmul(transpose(a), bt), [3, 4], want);
  // Batched transposes (the attention pattern q · kᵀ).
  const q = t64(randnArray(2 * 3 * 4, seed + 2), [2, 3, 4]);
  const k = t64(randnArray(2 * 5 * 4, seed + 3), [2, 5, 4]);
  await expect(
    matmul(q, transpose(k)),
    [2, 3, 5],
    await values(matmul(q, contiguous(transpose(k)))),
  );
});

Deno.test("matmul errors name both shapes", () => {
  throws(
    () => matmul(t64(new Array(32).fill(0), [4, 8]), t64(new Array(21).fill(0), [7, 3])),
    /matmul: inner dims differ: a is \[4, 8\], b is \[7, 3\]/,
  );
  throws(
    () => matmul(t64(new Array(24).fill(0), [2, 3, 4]), t64(new Array(60).fill(0), [3, 4, 5])),
    /matmul: shapes \[2\] and \[3\] do not broadcast/,
  );
  throws(() => matmul(t64([1], []), t64([1, 2], [2])), /matmul: operands must have rank >= 1/);
});

/** [name, shape of a, shape of b, f] for gradient and parity checks. */
const CASES: [string, number[], number[], (a: Tensor, b: Tensor) => Tensor][] = [
  ["2-D", [3, 4], [4, 5], matmul],
  ["1-D · 2-D", [4], [4, 3], matmul],
  ["2-D · 1-D", [3, 4], [4], matmul],
  ["dot", [5], [5], matmul],
  ["batched", [2, 3, 4], [2, 4, 5], matmul],
  ["broadcast batch", [2, 1, 3, 4], [3, 4, 2], matmul],
  ["batched · weight", [2, 3, 4], [4, 5], matmul],
  ["aᵀ · b", [4, 3], [4, 5], (a, b) => matmul(transpose(a), b)],
  ["a · bᵀ", [3, 4], [5, 4], (a, b) => matmul(a, transpose(b))],
  ["batched a · bᵀ", [2, 3, 4], [2, 5, 4], (a, b) => matmul(a, transpose(b))],
  ["narrowed", [3, 6], [4, 5], (a, b) => matmul(narrow(a, 1, 2, 4), b)],
];

Deno.test("matmul gradients by finite differences", async () => {
  for (const [name, sa, sb, f] of CASES) {
    await gradCheck(f, [{ shape: sa }, { shape: sb }]).catch((e) => {
      throw new Error(`${name}: ${e.message}`);
    });
  }
});

Deno.test({
  name: "matmul webgpu parity: odd sizes, batches, broadcasts, transposed views, gradients",
  ignore: !hasWebGPU,
  async fn() {
    for (const [name, sa, sb, f] of CASES) await gpuParity(name, f, [{ shape: sa }, { shape: sb }]);
    const dims: [number, number, number][] = [
      [1, 1, 1],
      [3, 17, 65],
      [65, 3, 17],
      [17, 129, 3],
      [129, 65, 1],
      [1, 129, 129],
    ];
    for (const [M, K, N] of dims) {
      const tol = K >= 129 || M >= 129 || N >= 129 ? 1e-3 : 1e-4;
      await gpuParity(
        `[${M}, ${K}] · [${K}, ${N}]`,
        matmul,
        [{ shape: [M, K] }, { shape: [K, N] }],
        {
          tol,
        },
      );
    }
    await gpuParity("batched [3, 17, 5] · [3, 5, 65]ᵀ", (a, b) => matmul(a, transpose(b)), [
      { shape: [3, 17, 5] },
      { shape: [3, 65, 5] },
    ]);
    await gpuParity("broadcast [2, 1, 3, 17] · [3, 17, 5]", matmul, [
      { shape: [2, 1, 3, 17] },
      { shape: [3, 17, 5] },
    ]);
  },
});

Deno.test("matmul wasm parity: odd sizes, batches, broadcasts, views, gradients, model shapes", async () => {
  const [calls] = await countWasmCalls([matmulOp], async () => {
    for (const [name, sa, sb, f] of CASES) {
      await wasmParity(name, f, [{ shape: sa }, { shape: sb }]);
    }
    const dims: [number, number, number][] = [
      [1, 1, 1],
      [3, 17, 65],
      [65, 3, 17],
      [17, 129, 3],
      [129, 65, 1],
      [1, 129, 129],
      [1, 1001, 7],
    ];
    for (const [M, K, N] of dims) {
      const tol = K >= 129 || M >= 129 || N >= 129 ? 1e-3 : 1e-4;
      await wasmParity(`[${M}, ${K}] · [${K}, ${N}]`, matmul, [{ shape: [M, K] }, {
        shape: [K, N],
      }], { tol });
    }
    const linear = (x: Tensor, w: Tensor) => matmul(x, transpose(w));
    await wasmParity("qkv [768, 128] · [384, 128]ᵀ", linear, [{ shape: [768, 128] }, {
      shape: [384, 128],
    }], { tol: 1e-3 });
    await wasmParity("attention [12, 4, 64, 32] · kᵀ", linear, [{ shape: [12, 4, 64, 32] }, {
      shape: [12, 4, 64, 32],
    }], { tol: 1e-3 });
    await wasmParity("attention [12, 4, 64, 64] · v", matmul, [{ shape: [12, 4, 64, 64] }, {
      shape: [12, 4, 64, 32],
    }], { tol: 1e-3 });
    await wasmParity("decode [1, 1, 128] · [512, 128]ᵀ", linear, [{ shape: [1, 1, 128] }, {
      shape: [512, 128],
    }], { tol: 1e-3 });
    await wasmParity("decode attention [1, 4, 1, 32] · [1, 4, 37, 32]ᵀ", linear, [
      { shape: [1, 4, 1, 32] },
      { shape: [1, 4, 37, 32] },
    ]);
  });
  ok(calls > 0, `matmul ran its wasm ${calls} times`);
});

// Regression: llvmpipe ends an invocation's loops after 65535 iterations in all, without an
// error, so a single launch summed only the first 65535 (scalar loads) or 262140 (vec4 loads)
// terms of k. Small integer operands keep every partial sum exact in f32: equality is exact.
Deno.test({
  name: "matmul webgpu sums every k past llvmpipe's loop cap (K = 70001 and 262148)",
  ignore: !hasWebGPU,
  async fn() {
    const be = await gpu();
    for (const K of [70001, 262148]) {
      const [M, N] = [2, 3];
      const av = Array.from({ length: M * K }, (_, e) => (Math.floor(e / K) + e % K) % 5 - 2);
      const bv = Array.from({ length: K * N }, (_, e) => (Math.floor(e / N) + 2 * (e % N)) % 3 - 1);
      const want = naive(av, bv, 1, M, K, N);
      const a = fromArray(Float32Array.from(av), [M, K], { backend: be });
      const b = fromArray(Float32Array.from(bv), [K, N], { backend: be });
      deepStrictEqual(Array.from(await matmul(a, b).data()), Array.from(want), `K = ${K}`);
    }
  },
});
