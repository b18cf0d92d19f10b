// Reductions: sum, mean, max and argmax over single, multiple and negative axes with keepdim,
// hand-computed values, finite-difference gradients (max shares ties), WebGPU parity, and wasm
// parity (rows split over threads, long rows in chunks: the same bytes on one and two threads).

import { deepStrictEqual, strictEqual, throws } from "node:assert/strict";
import type { Tensor } from "../../engine/tensor.ts";
import { zeros } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import { argmax, exp, max, mean, narrow, sum, transpose } from "../../kernels/mod.ts";
import { reduceRowsOp } from "../../kernels/reduce.ts";
import { apply } from "../../engine/op.ts";
import { fromArray } from "../../engine/creation.ts";
import {
  assertClose,
  cpu,
  freshSeed,
  gpu,
  gradCheck,
  hasWebGPU,
  randnArray,
  t64,
  values,
  wasm,
} from "../util.ts";
import { gpuParity, wasmParity } from "./gpu_helpers.ts";
import { CHUNK } from "../../kernels/reduce_wasm.ts";
import { splitSmall } from "./wasm_split.ts";

/** 0, 1, 2, ... as an f64 CPU tensor. */
function iota(shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return t64(Array.from({ length: n }, (_, i) => i), shape);
}

async function expect(y: Tensor, shape: number[], want: number[]): Promise<void> {
  deepStrictEqual(y.shape, shape);
  assertClose(await values(y), want, { atol: 1e-12, rtol: 1e-12 });
}

Deno.test("sum and mean over single, multiple and negative axes, with keepdim", async () => {
  const x = iota([2, 3, 4]); // x[i][j][k] = 12i + 4j + k
  await expect(sum(x), [], [276]);
  await expect(mean(x), [], [11.5]);
  await expect(sum(x, 0), [3, 4], [12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34]);
  await expect(sum(x, -1), [2, 3], [6, 22, 38, 54, 70, 86]);
  await expect(sum(x, 1, true), [2, 1, 4], [12, 15, 18, 21, 48, 51, 54, 57]);
  await expect(sum(x, [0, 2]), [3], [60, 92, 124]);
  await expect(sum(x, [-1, 0], true), [1, 3, 1], [60, 92, 124]);
  await expect(mean(x, [0, 1]), [4], [10, 11, 12, 13]);
  await expect(mean(x, -2, true), [2, 1, 4], [4, 5, 6, 7, 16, 17, 18, 19]);
  // Strided inputs: a transpose and a narrow.
  await expect(sum(transpose(iota([2, 3])), 1), [3], [3, 5, 7]);
  await expect(sum(narrow(iota([2, 5]), 1, 1, 3), 1), [2], [6, 21]);
  throws(() => sum(x, 3), /sum: axis 3 out of range for a tensor of rank 3/);
});

Deno.test("reducing an empty axis gives zeros of the kept shape", async () => {
  await expect(sum(zeros([3, 0], { dtype: "f64" }), 1), [3], [0, 0, 0]);
  await expect(sum(zeros([0, 2], { dtype: "f64" }), 0, true), [1, 2], [0, 0]);
});

Deno.test("max and argmax: values, first index of ties, i32 indices", async () => {
  const x = t64([1, 5, 5, -2, 7, 0, 3, 3, -1, 8, 8, 8], [3, 4]);
  await expect(max(x), [], [8]);
  await expect(max(x, 1), [3], [5, 7, 8]);
  await expect(max(x, 0, true), [1, 4], [7, 8, 8, 8]);
  const am = argmax(x, -1);
  strictEqual(am.dtype, "i32");
  deepStrictEqual(Array.from(await am.data()), [1, 0, 1]);
  deepStrictEqual(Array.from(await argmax(x, 0, true).data()), [1, 2, 2, 2]);
  deepStrictEqual(argmax(x, 0, true).shape, [1, 4]);
});

Deno.test("max shares the gradient among tied maxima", async () => {
  const x = t64([1, 5, 5, -2, 3, 3, 3, 0], [2, 4], cpu, true);
  sum(max(x, 1)).backward();
  assertClose(await values(x.grad!), [0, 0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3, 0]);
});

/** Reductions to check, each over a random input of the given shape. */
const CASES: [string, number[], (x: Tensor) => Tensor][] = [
  ["sum all", [3, 4], (x) => sum(x)],
  ["sum axis 0", [3, 4], (x) => sum(x, 0)],
  ["sum axes [0, 2] keepdim", [2, 3, 4], (x) => sum(x, [0, 2], true)],
  ["sum axis -1 of a transpose", [3, 5], (x) => sum(transpose(x), -1)],
  ["mean axis -2", [2, 3, 4], (x) => mean(x, -2)],
  ["mean of a narrow", [4, 5], (x) => mean(narrow(x, 1, 1, 3), [0, 1])],
  ["max axis 1", [3, 5], (x) => max(x, 1)],
  ["max axes [0, 1] keepdim", [2, 3, 4], (x) => max(x, [0, 1], true)],
  ["max all, then exp", [3, 4], (x) => exp(max(x))],
];

Deno.test("reduction gradients by finite differences", async () => {
  for (const [name, shape, f] of CASES) {
    await gradCheck(f, [{ shape }]).catch((e) => {
      throw new Error(`${name}: ${e.message}`);
    });
  }
});

Deno.test({
  name: "reduction webgpu parity: odd sizes, axes, keepdim, views, gradients",
  ignore: !hasWebGPU,
  async fn() {
    for (const [name, shape, f] of CASES) await gpuParity(name, f, [{ shape }]);
    for (const n of [1, 3, 17, 65, 129]) {
      const tol = n >= 129 ? 1e-3 : 1e-4;
      await gpuParity(`sum [3, ${n}] axis 1`, (x) => sum(x, 1), [{ shape: [3, n] }], { tol });
      await gpuParity(`mean [${n}, 3] axis 0`, (x) => mean(x, 0), [{ shape: [n, 3] }], { tol });
      await gpuParity(`max [${n}, 5] axis -2`, (x) => max(x, -2), [{ shape: [n, 5] }], { tol });
    }
    await gpuParity("sum [17, 65] all (long)", (x) => sum(x), [{ shape: [17, 65] }], { tol: 1e-3 });
    // argmax is exact, ties included (small integers make many ties).
    for (const shape of [[1, 1], [3, 17], [65, 3], [2, 129]]) {
      const seed = freshSeed();
      const v = Array.from(randnArray(shape[0] * shape[1], seed), (x) => Math.round(2 * x));
      for (const axis of [0, 1]) {
        await gpuParity(`argmax ${shape} axis ${axis}`, (x) => argmax(x, axis), [
          { shape, values: v, grad: false },
        ], { seed });
      }
    }
  },
});

Deno.test("reduction gradients on random shapes, axes and keepdim", async () => {
  const seed = freshSeed();
  const g = new Generator(seed);
  const u = () => g.uniform(1)[0];
  for (let i = 0; i < 10; i++) {
    const shape = Array.from({ length: 1 + Math.floor(u() * 3) }, () => 1 + Math.floor(u() * 4));
    const axes = shape.map((_, a) => a).filter(() => u() < 0.5).map((
      a,
    ) => (u() < 0.5 ? a - shape.length : a));
    const keep = u() < 0.5;
    for (const [name, f] of [["sum", sum], ["mean", mean], ["max", max]] as const) {
      await gradCheck((x) => f(x, axes.length ? axes : undefined, keep), [{ shape }], {
        seed: seed + i,
      })
        .catch((e) => {
          throw new Error(`${name} [${shape}] axes [${axes}] keepdim ${keep}: ${e.message}`);
        });
    }
  }
});

Deno.test({
  name: "reduce_rows on webgpu: workgroup and invocation forms both match the CPU",
  ignore: !hasWebGPU,
  async fn() {
    const be = await gpu();
    const seed = freshSeed();
    // Short rows in many rows (a position-embedding gradient), long rows, one row, ties.
    for (const [rows, len] of [[700, 12], [5, 1000], [1, 3000], [64, 1]]) {
      const data = randnArray(rows * len, seed + rows);
      const ties = Float32Array.from(data, (v) => Math.round(2 * v));
      for (const kind of ["sum", "max", "argmax"] as const) {
        const src = kind === "argmax" ? ties : Float32Array.from(data);
        const ref = await apply(reduceRowsOp, [fromArray(src, [rows, len], { backend: cpu })], {
          kind,
          rowLen: len,
        }).data();
        for (const mode of ["workgroup", "invocation"] as const) {
          const x = fromArray(src, [rows, len], { backend: be });
          const got = await apply(reduceRowsOp, [x], { kind, rowLen: len, mode }).data();
          const msg = `${kind} [${rows}, ${len}] ${mode} (seed ${seed}):`;
          if (kind === "argmax") deepStrictEqual(Array.from(got), Array.from(ref), msg);
          else assertClose(got, ref, { atol: 1e-4 * Math.sqrt(len), rtol: 1e-4, msg });
        }
      }
    }
    // A row where nothing beats the start value (all -inf, or NaN): argmax 0 and max -inf, as
    // on the CPU (the start value is -inf itself, not the lowest finite f32).
    for (const fill of [-Infinity, NaN]) {
      const src = new Float32Array(40).fill(fill);
      for (const kind of ["argmax", "max"] as const) {
        const ref = await apply(reduceRowsOp, [fromArray(src, [1, 40], { backend: cpu })], {
          kind,
          rowLen: 40,
        }).data();
        for (const mode of ["workgroup", "invocation"] as const) {
          const x = fromArray(src, [1, 40], { backend: be });
          const got = await apply(reduceRowsOp, [x], { kind, rowLen: 40, mode }).data();
          deepStrictEqual(Array.from(got), Array.from(ref), `${kind} of ${fill}s, ${mode}`);
        }
      }
    }
    deepStrictEqual(
      Array.from(
        await max(fromArray(new Float32Array(3).fill(-Infinity), [3], {
          backend: be,
        })).data(),
      ),
      [-Infinity],
    );
    // Rows longer than one invocation may loop on llvmpipe take the workgroup form by default.
    const long = Float32Array.from(randnArray(20000, seed), (v) => v + 1);
    const want = long.reduce((a, v) => a + v, 0);
    const total = await sum(fromArray(long, [20000], { backend: be })).item();
    assertClose([total], [want], { atol: 1e-2, rtol: 1e-4 });
  },
});

Deno.test("reduction wasm parity: odd sizes, axes, keepdim, views, long rows, both threads", () =>
  splitSmall(async () => {
    for (const [name, shape, f] of CASES) await wasmParity(name, f, [{ shape }]);
    for (const n of [1, 3, 7, 33, 1000, CHUNK + 1, 3 * CHUNK + 5]) {
      const tol = n >= 129 ? 1e-3 : 1e-4;
      await wasmParity(`sum [3, ${n}] axis 1`, (x) => sum(x, 1), [{ shape: [3, n] }], { tol });
      await wasmParity(`mean [${n}, 3] axis 0`, (x) => mean(x, 0), [{ shape: [n, 3] }], { tol });
      await wasmParity(`max [${n}, 5] axis -2`, (x) => max(x, -2), [{ shape: [n, 5] }], { tol });
    }
    // One long row in chunks over both threads; many short rows over both threads.
    await wasmParity("sum [100003] all", (x) => sum(x), [{ shape: [100003] }], { tol: 1e-3 });
    await wasmParity("sum [8192, 12] axis 1", (x) => sum(x, 1), [{ shape: [8192, 12] }]);
    await wasmParity("sum [12, 64, 128] over rows", (x) => sum(x, [0, 1]), [{
      shape: [12, 64, 128],
    }], { tol: 1e-3 });
    for (const shape of [[1, 1], [3, 17], [65, 3], [2, 129], [2, 3 * CHUNK + 7]]) {
      const seed = freshSeed();
      const v = Array.from(randnArray(shape[0] * shape[1], seed), (x) => Math.round(2 * x));
      for (const axis of [0, 1]) {
        await wasmParity(`argmax ${shape} axis ${axis}`, (x) => argmax(x, axis), [
          { shape, values: v, grad: false },
        ], { seed });
      }
    }
  }));

Deno.test("reduce_rows on wasm: sum close, max and argmax exact (ties, -inf, NaN, chunks)", () =>
  splitSmall(async () => {
    const be = await wasm();
    const seed = freshSeed();
    const run = async (b: typeof cpu, src: Float32Array, rows: number, len: number, kind: Kind) =>
      await apply(reduceRowsOp, [fromArray(src, [rows, len], { backend: b })], {
        kind,
        rowLen: len,
      }).data();
    type Kind = "sum" | "max" | "argmax";
    for (const [rows, len] of [[700, 12], [5, 1000], [1, 3000], [64, 1], [3, 4097], [2, 10001]]) {
      const data = randnArray(rows * len, seed + rows);
      const ties = Float32Array.from(data, (v) => Math.round(2 * v));
      for (const kind of ["sum", "max", "argmax"] as const) {
        const src = kind === "sum" ? Float32Array.from(data) : ties;
        const [want, got] = [
          await run(cpu, src, rows, len, kind),
          await run(be, src, rows, len, kind),
        ];
        const msg = `${kind} [${rows}, ${len}] (seed ${seed}):`;
        if (kind === "sum") {
          assertClose(got, want, { atol: 1e-5 * Math.sqrt(len), rtol: 1e-5, msg });
        } else deepStrictEqual(Array.from(got), Array.from(want), msg);
      }
    }
    // Rows where nothing beats -inf (argmax 0, max -inf), NaNs skipped, -0 before +0 kept, and
    // the maximum in a later chunk of a long row.
    const len = 2 * CHUNK + 3;
    const rowsOf = (fill: (j: number, r: number) => number) =>
      Float32Array.from({ length: 4 * len }, (_, i) => fill(i % len, Math.floor(i / len)));
    const special = rowsOf((j, r) =>
      r === 0
        ? -Infinity
        : r === 1
        ? (j % 2 ? NaN : -Infinity)
        : r === 2
        ? (j === 5 ? -0 : j === 9 ? 0 : -1)
        : (j === len - 2 || j === CHUNK + 1 ? 7 : j % 3)
    );
    for (const kind of ["max", "argmax"] as const) {
      const want = await run(cpu, special, 4, len, kind);
      const got = await run(be, special, 4, len, kind);
      deepStrictEqual(Array.from(got), Array.from(want), `${kind} of the special rows`);
      deepStrictEqual(Object.is(got[2], -0), Object.is(want[2], -0), `${kind}: -0 kept`);
    }
  }));
