// Every WGSL matmul variant (each autotune candidate) against the CPU reference: odd sizes
// (scalar loads), aligned sizes (vec4 loads), several workgroups with ragged edges, batched with
// broadcast batch dims, transposed operands in every combination; then the autotuner: one
// decision per shape class, no extra submits at steady state, and the cpu backend's blocked
// kernel on ragged sizes.

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { Backend } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { fromArray } from "../../engine/creation.ts";
import {
  matmul,
  MATMUL_VARIANTS,
  type MatmulVariant,
  matmulVariant,
  transpose,
  TUNE_MIN,
} from "../../kernels/mod.ts";
import { assertClose, cpu, freshSeed, gpu, hasWebGPU, randnArray } from "../util.ts";

const ignore = !hasWebGPU;

/** An operand of logical shape `shape`, stored transposed (a transpose view) when `t`. */
interface Operand {
  shape: number[];
  t: boolean;
}

function make(op: Operand, seed: number, be: Backend): Tensor {
  const shape = [...op.shape];
  if (op.t) shape.splice(-2, 2, shape[shape.length - 1], shape[shape.length - 2]);
  const n = shape.reduce((x, y) => x * y, 1);
  const dtype = be.name === "cpu" ? "f64" : "f32";
  const data = dtype === "f64" ? randnArray(n, seed) : Float32Array.from(randnArray(n, seed));
  const x = fromArray(data, shape, { backend: be, dtype });
  return op.t ? transpose(x) : x;
}

function maxAbs(xs: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < xs.length; i++) m = Math.max(m, Math.abs(xs[i]));
  return m;
}

/** rel err ≤ 1e-3: |gpu - ref| ≤ 1e-3 · (max |ref| + |ref|) elementwise. */
async function check(variant: string, a: Operand, b: Operand): Promise<void> {
  const seed = freshSeed();
  const be = await gpu();
  const ref = await matmul(make(a, seed, cpu), make(b, seed + 1, cpu)).data();
  const got = await matmulVariant(make(a, seed, be), make(b, seed + 1, be), variant).data();
  const scale = maxAbs(ref);
  assertClose(got, ref, {
    atol: 1e-3 * scale,
    rtol: 1e-3,
    msg: `${variant} a${a.t ? "ᵀ" : ""} [${a.shape}] · b${b.t ? "ᵀ" : ""} [${b.shape}] ` +
      `(seed ${seed}):`,
  });
}

const op = (shape: number[], t = false): Operand => ({ shape, t });

/** Texture-staged variants with blocks over 8×16 share all code but the block size with
 * tex8x16 and compile for 2-17 s each on llvmpipe (per storage and store mode, single or
 * batched): they get two products of the multi-workgroup test (tex8x16 covers every layout and
 * odd size, and matmul_tex_test.ts the staging). */
const brief = (v: MatmulVariant) => v.kind === "tex" && v.tm * v.tn > 128;

for (const v of MATMUL_VARIANTS) {
  if (!brief(v)) {
    Deno.test({
      name: `matmul variant ${v.name}: odd sizes 1, 3, 17, 65, 129 in every orientation`,
      ignore,
      async fn() {
        for (
          const [M, N, K] of [[1, 1, 1], [3, 17, 65], [129, 3, 17], [17, 129, 3], [65, 1, 129]]
        ) {
          await check(v.name, op([M, K]), op([K, N]));
        }
        await check(v.name, op([17, 65]), op([65, 129], true)); // A · Bᵀ
        await check(v.name, op([3, 65], true), op([65, 17])); // Aᵀ · B
        await check(v.name, op([2, 3, 129], true), op([2, 129, 17], true)); // Aᵀ · Bᵀ, batched
      },
    });

    Deno.test({
      name: `matmul variant ${v.name}: aligned (vec4) layouts, batched, broadcast, transposed`,
      ignore,
      async fn() {
        await check(v.name, op([36, 20]), op([20, 68])); // vec4 along k for A, along n for B
        await check(v.name, op([2, 3, 36, 20]), op([3, 20, 68])); // broadcast batch of B
        await check(v.name, op([1, 36, 20]), op([4, 20, 68])); // broadcast batch of A
        await check(v.name, op([3, 36, 20]), op([3, 20, 68], true)); // A · Bᵀ (both along k)
        await check(v.name, op([3, 36, 20], true), op([20, 68])); // Aᵀ · B (A along m)
        await check(v.name, op([132, 68], true), op([68, 132], true)); // Aᵀ · Bᵀ
        await check(v.name, op([36, 20]), op([20, 66], true)); // B along k, N odd
      },
    });
  }

  Deno.test({
    name: `matmul variant ${v.name}: several workgroups each way, ragged last ones (vec4 layouts)`,
    ignore,
    async fn() {
      // 100 × 300 spans more than one workgroup of every variant (32×32 blocks on 8×1
      // invocations cover 32 × 256) in both directions, with partial blocks and idle
      // invocations at the edges.
      await check(v.name, op([100, 44]), op([44, 300])); // A · B
      await check(v.name, op([3, 68, 44]), op([1, 44, 264], true)); // A · Bᵀ, broadcast B
      if (brief(v)) return;
      await check(v.name, op([100, 44]), op([44, 300], true)); // A · Bᵀ
      await check(v.name, op([100, 44], true), op([44, 300])); // Aᵀ · B
      await check(v.name, op([2, 68, 44], true), op([2, 44, 264])); // Aᵀ · B, batched
    },
  });
}

Deno.test({
  name: "matmul autotune: one decision per shape class, then no extra submits",
  ignore,
  async fn() {
    const be = (await gpu()) as WebGpuBackend;
    const n = 256; // n³ ≥ TUNE_MIN: tuned
    ok(n ** 3 >= TUNE_MIN);
    const a = make(op([n, n]), 1, be);
    const b = make(op([n, n]), 2, be);
    const tuned = be.tuning().length;
    const memo = be.tuner.memo;
    be.tuner.memo = null; // an earlier run's stored decision would skip the timing
    const y0 = matmul(a, b); // default variant, queues the class
    const first = await y0.data(); // tunes at this read point
    be.tuner.memo = memo;
    const results = be.tuning().slice(tuned);
    strictEqual(results.length, 1, "one shape class tuned");
    const r = results[0];
    // The default first; on a software adapter no workgroup-tiled candidate; untried ones (a
    // block whose smaller sibling lost) count as Infinity.
    strictEqual(r.names[0], "matmul[reg4x4]");
    const names = MATMUL_VARIANTS.map((v) => `matmul[${v.name}]`);
    ok(r.names.every((x) => names.includes(x)), `${r.names}`);
    strictEqual(r.names.some((x) => x.includes("tile")), !be.ctx.isFallback, `${r.names}`);
    ok(Number.isFinite(r.ms[r.chosen]) && r.ms.every((t) => t >= r.ms[r.chosen]), `${r.ms}`);
    // Same class again: no tuning, and nothing submitted until the read.
    const before = be.stats().submits;
    const ys = Array.from({ length: 5 }, () => matmul(a, b));
    strictEqual(be.stats().submits, before);
    strictEqual(be.tuning().length, tuned + 1);
    const last = await ys[4].data();
    // The chosen variant agrees with the default one.
    const scale = maxAbs(first);
    assertClose(last, first, { atol: 1e-4 * scale, rtol: 1e-4 });
    for (const t of [a, b, y0, ...ys]) t.dispose();
  },
});

Deno.test({
  name: "matmul under TUNE_MIN multiply-adds runs the default variant untuned",
  ignore,
  async fn() {
    const be = (await gpu()) as WebGpuBackend;
    const tuned = be.tuning().length;
    const y = matmul(make(op([64, 48]), 1, be), make(op([48, 80]), 2, be));
    await y.data();
    strictEqual(be.tuning().length, tuned);
  },
});

Deno.test({
  name: "matmul with autotuning off runs the default variant and queues nothing",
  ignore,
  async fn() {
    const be = (await gpu()) as WebGpuBackend;
    const tuned = be.tuning().length;
    be.setAutotune(false);
    try {
      const y = matmul(make(op([256, 1024]), 1, be), make(op([1024, 260]), 2, be));
      await y.data();
      strictEqual(be.tuning().length, tuned);
    } finally {
      be.setAutotune(true);
    }
  },
});

Deno.test("cpu matmul: blocked kernel equals the plain triple loop on ragged sizes", async () => {
  for (const [M, N, K] of [[1, 1, 1], [3, 70, 5], [5, 3, 300], [67, 131, 259]]) {
    const A = randnArray(M * K, 1);
    const B = randnArray(K * N, 2);
    const y = await matmul(fromArray(A, [M, K]), fromArray(B, [K, N])).data();
    const want = new Float64Array(M * N);
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j];
        want[i * N + j] = s;
      }
    }
    // Same summation order (k ascending, float64): bit-identical.
    deepStrictEqual(Array.from(y), Array.from(want));
  }
});
