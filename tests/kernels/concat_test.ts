// cat, split and padAxis: hand values along every axis (strided and empty inputs, i32), views
// sharing storage, errors naming op and shapes, finite-difference gradients (narrow's backward
// is padAxis), and WebGPU-vs-CPU and wasm-vs-CPU parity with a poisoned pool.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Tensor } from "../../engine/tensor.ts";
import { fromArray, tensor } from "../../engine/creation.ts";
import { profile } from "../../engine/profile.ts";
import {
  cat,
  exp,
  mul,
  narrow,
  padAxis,
  permute,
  split,
  sum,
  transpose,
} from "../../kernels/mod.ts";
import { cpu, gpu, gradCheck, hasWebGPU, t64, values, wasm } from "../util.ts";
import { gpuParity, poisonPool, wasmParity } from "./gpu_helpers.ts";
import { splitSmall } from "./wasm_split.ts";

/** start, start + 1, ... as an f64 CPU tensor. */
function iota(shape: number[], start = 0): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return t64(Array.from({ length: n }, (_, i) => start + i), shape);
}

async function expect(y: Tensor, shape: number[], want: number[]): Promise<void> {
  deepStrictEqual(y.shape, shape);
  deepStrictEqual(Array.from(await values(y)), want);
}

Deno.test("cat along each axis, with strided, empty and integer inputs", async () => {
  const a = iota([2, 2]); // 0 1 / 2 3
  const b = iota([1, 2], 10); // 10 11
  await expect(cat([a, b]), [3, 2], [0, 1, 2, 3, 10, 11]);
  await expect(cat([a, transpose(b)], 1), [2, 3], [0, 1, 10, 2, 3, 11]);
  await expect(cat([b, a, b], -2), [4, 2], [10, 11, 0, 1, 2, 3, 10, 11]);
  await expect(cat([transpose(a), a], 1), [2, 4], [0, 2, 0, 1, 1, 3, 2, 3]);
  await expect(cat([a, iota([2, 0])], 1), [2, 2], [0, 1, 2, 3]);
  await expect(cat([narrow(iota([2, 3]), 1, 1, 2)], 0), [2, 2], [1, 2, 4, 5]);
  const ints = cat([tensor([1, 2], [2], { dtype: "i32" }), tensor([3], [1], { dtype: "i32" })]);
  strictEqual(ints.dtype, "i32");
  deepStrictEqual(Array.from(await ints.data()), [1, 2, 3]);
  const x3 = iota([2, 1, 2]);
  await expect(cat([x3, iota([2, 2, 2], 10)], 1), [2, 3, 2], [
    0,
    1,
    10,
    11,
    12,
    13,
    2,
    3,
    14,
    15,
    16,
    17,
  ]);
});

Deno.test("cat errors name the op and the shapes", () => {
  throws(() => cat([]), /cat: needs at least one tensor/);
  throws(
    () => cat([iota([2, 3]), iota([3, 3])], 1),
    /cat: shapes differ outside axis 1: \[2, 3\] and \[3, 3\]/,
  );
  throws(
    () => cat([iota([2, 3]), iota([6])]),
    /cat: shapes differ outside axis 0: \[2, 3\] and \[6\]/,
  );
  throws(() => cat([iota([2])], 1), /cat: axis 1 out of range for a tensor of rank 1/);
  throws(
    () => cat([tensor([1], [1]), tensor([1], [1], { dtype: "i32" })]),
    /cat: dtypes differ: f32 and i32/,
  );
});

Deno.test("split into chunks or sizes gives views that share storage", async () => {
  const x = iota([5, 2]);
  const parts = split(x, 2);
  deepStrictEqual(parts.map((p) => p.shape), [[2, 2], [2, 2], [1, 2]]);
  for (const p of parts) strictEqual(p.ref, x.ref);
  await expect(parts[2], [1, 2], [8, 9]);
  const [l, r] = split(x, [1, 1], 1);
  await expect(l, [5, 1], [0, 2, 4, 6, 8]);
  await expect(r, [5, 1], [1, 3, 5, 7, 9]);
  deepStrictEqual(split(x, [0, 5]).map((p) => p.shape), [[0, 2], [5, 2]]);
  throws(() => split(x, [2, 2]), /split: sizes \[2, 2\] do not add up to dim 0 \(5\) of \[5, 2\]/);
  throws(() => split(x, 0), /split: chunk size must be a positive integer, got 0/);
});

Deno.test("padAxis places a block among zeros; narrow's backward uses it", async () => {
  await expect(padAxis(iota([2, 2], 1), 1, 1, 4), [2, 4], [0, 1, 2, 0, 0, 3, 4, 0]);
  await expect(padAxis(iota([1, 2], 1), 0, 2, 3), [3, 2], [0, 0, 0, 0, 1, 2]);
  await expect(padAxis(transpose(iota([2, 2], 1)), -1, 0, 3), [2, 3], [1, 3, 0, 2, 4, 0]);
  throws(
    () => padAxis(iota([2, 2]), 1, 3, 4),
    /padAxis: block \[3, 5\) of \[2, 2\] does not fit length 4/,
  );
  const x = t64([1, 2, 3, 4, 5, 6], [2, 3], cpu, true);
  sum(mul(narrow(x, 1, 1, 2), 3)).backward();
  deepStrictEqual(Array.from(await values(x.grad!)), [0, 3, 3, 0, 3, 3]);
});

/** Gradient and parity cases: [name, input shapes, f]. */
const CASES: [string, number[][], (...xs: Tensor[]) => Tensor][] = [
  ["cat axis 0", [[2, 3], [1, 3]], (a, b) => exp(cat([a, b], 0))],
  ["cat axis 1 of a transpose", [[3, 2], [2, 4]], (a, b) => exp(cat([transpose(a), b], 1))],
  [
    "cat of three, one reused",
    [[2, 2], [2, 1]],
    (a, b) => mul(cat([a, b, a], -1), cat([b, a, a], -1)),
  ],
  ["split then recombine", [[5, 3]], (x) => {
    const [p, q, r] = split(x, 2);
    return cat([mul(r, r), exp(p), q]);
  }],
  ["split with a piece no gradient reaches", [[3, 7]], (x) => {
    const [a, , c] = split(x, [2, 3, 2], 1);
    return mul(exp(a), c);
  }],
  ["split of a transpose", [[4, 6]], (x) => {
    const [a, b] = split(transpose(x), [1, 5], 0);
    return cat([exp(b), a]);
  }],
  ["padAxis", [[2, 3]], (x) => exp(padAxis(x, 1, 2, 6))],
  ["narrow (padAxis backward)", [[4, 5]], (x) => exp(narrow(x, 0, 1, 2))],
];

Deno.test("cat, split and padAxis gradients by finite differences", async () => {
  for (const [name, shapes, f] of CASES) {
    await gradCheck(f, shapes.map((shape) => ({ shape }))).catch((e) => {
      throw new Error(`${name}: ${e.message}`);
    });
  }
});

Deno.test({
  name: "cat, split and padAxis webgpu parity at odd sizes",
  ignore: !hasWebGPU,
  async fn() {
    for (const [name, shapes, f] of CASES) {
      await gpuParity(name, f, shapes.map((shape) => ({ shape })));
    }
    for (const n of [1, 3, 17, 65, 129]) {
      await gpuParity(`cat [${n}, 3] + [2, 3]ᵀ along 0`, (a, b) => cat([a, transpose(b)]), [
        { shape: [n, 3] },
        { shape: [3, 2] },
      ]);
      await gpuParity(`cat along 1 of [3, ${n}] x3`, (a) => cat([a, exp(a), a], 1), [{
        shape: [3, n],
      }]);
      await gpuParity(`padAxis [${n}, 2] into 2n + 1`, (a) => padAxis(a, 0, n, 2 * n + 1), [
        { shape: [n, 2] },
      ]);
    }
    // Every slot is written: a poisoned output buffer leaves no NaN behind.
    const g = await gpu();
    const parts = [iota([3, 5]), iota([3, 1], 100), iota([3, 7], 200)];
    const want = await values(cat(parts, 1));
    const onGpu = await Promise.all(parts.map(async (p) => t64(await values(p), [...p.shape], g)));
    poisonPool(g, 3 * 13 * 4);
    deepStrictEqual(await values(cat(onGpu, 1)), want);
  },
});

Deno.test("split's backward is one cat of the pieces' gradients (no zero-padded sum)", async () => {
  const x = fromArray(new Float32Array(2 * 3 * 12).fill(1), [2, 3, 12], {
    backend: cpu,
    requiresGrad: true,
  });
  const { report } = await profile(() => {
    const [q, k, v] = split(x, [4, 4, 4], 2);
    sum(mul(mul(q, k), v)).backward();
  });
  const backward = report.ops.filter((o) => o.pass === "backward").map((o) => o.name);
  ok(backward.includes("cat"), backward.join(", "));
  ok(!backward.includes("pad_axis") && !backward.includes("padAxis"), backward.join(", "));
  deepStrictEqual([...await x.grad!.data()], new Array(72).fill(1));
});

Deno.test("cat, split and padAxis wasm parity at odd sizes, views and both threads", () =>
  splitSmall(async () => {
    for (const [name, shapes, f] of CASES) {
      await wasmParity(name, f, shapes.map((shape) => ({ shape })));
    }
    for (const n of [1, 3, 7, 33, 1000, 12000]) {
      await wasmParity(`cat [${n}, 3] + [2, 3]ᵀ along 0`, (a, b) => cat([a, transpose(b)]), [
        { shape: [n, 3] },
        { shape: [3, 2] },
      ]);
      await wasmParity(`cat along 1 of [3, ${n}] x3`, (a) => cat([a, exp(a), a], 1), [{
        shape: [3, n],
      }]);
      await wasmParity(`padAxis [${n}, 2] into 2n + 1`, (a) => padAxis(a, 0, n, 2 * n + 1), [
        { shape: [n, 2] },
      ]);
    }
    // narrow's backward of q, k, v out of [12, 64, 384] (attention's split), rank 4 slots.
    for (const start of [0, 128, 256]) {
      await wasmParity(`padAxis q/k/v at ${start}`, (a) => padAxis(a, 2, start, 384), [
        { shape: [12, 64, 128] },
      ]);
    }
    await wasmParity(
      "cat rank 4 along 2, permuted input",
      (a, b) => cat([permute(a, [0, 2, 1, 3]), b], 2),
      [
        { shape: [2, 5, 3, 7] },
        { shape: [2, 3, 4, 7] },
      ],
    );
    // Every slot is written and nothing past it: a poisoned output leaves no NaN behind.
    const be = await wasm();
    const parts = [iota([3, 5]), iota([3, 1], 100), iota([3, 7], 200)];
    const want = await values(cat(parts, 1));
    const there = await Promise.all(parts.map(async (p) => t64(await values(p), [...p.shape], be)));
    poisonPool(be, 3 * 13 * 4);
    deepStrictEqual(await values(cat(there, 1)), want);
    const ints = cat([
      tensor([1, -2], [2], { dtype: "i32", backend: be }),
      tensor([2147483647], [1], {
        dtype: "i32",
        backend: be,
      }),
    ]);
    deepStrictEqual(Array.from(await ints.data()), [1, -2, 2147483647]);
  }));
