// View ops: values and layouts (a view shares storage, a reshape that cannot be a view copies),
// errors, finite-difference gradients through every view, and WebGPU-vs-CPU and wasm-vs-CPU
// parity (the strided copy: permutes, transposes in register tiles, broadcasts, offsets).

import { deepStrictEqual, notStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import type { Tensor } from "../../engine/tensor.ts";
import {
  contiguous,
  detach,
  exp,
  expand,
  mul,
  narrow,
  permute,
  reshape,
  slice,
  squeeze,
  sum,
  sumTo,
  transpose,
  unsqueeze,
  view,
} from "../../kernels/mod.ts";
import { assertClose, cpu, freshSeed, gradCheck, hasWebGPU, t64, values, wasm } from "../util.ts";
import { gpuParity, wasmParity } from "./gpu_helpers.ts";
import { tensor } from "../../engine/creation.ts";
import { splitSmall } from "./wasm_split.ts";

/** 0, 1, 2, ... as an f64 CPU tensor. */
function iota(shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return t64(Array.from({ length: n }, (_, i) => i), shape);
}

async function expectView(y: Tensor, shape: number[], want: number[]): Promise<void> {
  deepStrictEqual(y.shape, shape);
  deepStrictEqual(Array.from(await values(y)), want);
}

Deno.test("reshape: -1, views share storage, non-contiguous input copies", async () => {
  const x = iota([2, 3]);
  const r = reshape(x, [3, -1]);
  await expectView(r, [3, 2], [0, 1, 2, 3, 4, 5]);
  strictEqual(r.ref, x.ref, "a contiguous reshape is a view");
  strictEqual(view(x, [-1]).ref, x.ref);
  await expectView(reshape(x, [1, 6, 1]), [1, 6, 1], [0, 1, 2, 3, 4, 5]);
  const t = transpose(x); // [3, 2]: 0 3 1 4 2 5
  const flat = reshape(t, [6]);
  await expectView(flat, [6], [0, 3, 1, 4, 2, 5]);
  notStrictEqual(flat.ref, x.ref, "flattening a transpose copies");
  throws(() => reshape(x, [4, -1]), /reshape: cannot view \[2, 3\] as \[4, -1\]/);
  throws(() => reshape(x, [5]), /reshape: cannot view \[2, 3\] as \[5\]/);
});

Deno.test("reshape of a splittable transposed view shares storage", async () => {
  const x = iota([4, 3]);
  const y = reshape(transpose(x), [3, 2, 2]);
  strictEqual(y.ref, x.ref);
  deepStrictEqual(y.strides, [1, 6, 3]);
  await expectView(y, [3, 2, 2], [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]);
});

Deno.test("permute, transpose, narrow, slice, expand, squeeze, unsqueeze, contiguous", async () => {
  const x = iota([2, 3, 4]);
  const p = permute(x, [2, 0, 1]);
  strictEqual(p.ref, x.ref);
  deepStrictEqual(p.strides, [1, 12, 4]);
  await expectView(p, [4, 2, 3], [
    0,
    4,
    8,
    12,
    16,
    20,
    1,
    5,
    9,
    13,
    17,
    21,
    2,
    6,
    10,
    14,
    18,
    22,
    3,
    7,
    11,
    15,
    19,
    23,
  ]);
  await expectView(transpose(x, 0, -1), [4, 3, 2], [
    0,
    12,
    4,
    16,
    8,
    20,
    1,
    13,
    5,
    17,
    9,
    21,
    2,
    14,
    6,
    18,
    10,
    22,
    3,
    15,
    7,
    19,
    11,
    23,
  ]);
  const n = narrow(x, 1, 1, 2);
  strictEqual(n.ref, x.ref);
  strictEqual(n.offset, 4);
  await expectView(n, [2, 2, 4], [4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23]);
  await expectView(narrow(x, -1, -2, 2), [2, 3, 2], [2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23]);
  await expectView(slice(x, 2, -3, -1), [2, 3, 2], [1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22]);
  await expectView(slice(x, 0, 1), [1, 3, 4], Array.from({ length: 12 }, (_, i) => 12 + i));
  await expectView(slice(x, 1, 5, 9), [2, 0, 4], []);
  const e = expand(t64([1, 2, 3], [3, 1]), [2, 3, 2]);
  deepStrictEqual(e.strides, [0, 1, 0]);
  await expectView(e, [2, 3, 2], [1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3]);
  await expectView(unsqueeze(iota([3]), 0), [1, 3], [0, 1, 2]);
  await expectView(unsqueeze(iota([3]), -1), [3, 1], [0, 1, 2]);
  await expectView(squeeze(iota([1, 3, 1])), [3], [0, 1, 2]);
  await expectView(squeeze(iota([1, 3, 1]), -1), [1, 3], [0, 1, 2]);
  const c = contiguous(n);
  notStrictEqual(c.ref, x.ref);
  ok(c.isContiguous() && c.offset === 0);
  await expectView(c, [2, 2, 4], [4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23]);
  strictEqual(contiguous(x), x, "already contiguous: no copy");
  const d = detach(x);
  strictEqual(d.ref, x.ref);
  await expectView(sumTo(iota([2, 3]), [1, 3]), [1, 3], [3, 5, 7]);
  await expectView(sumTo(iota([2, 3]), [2, 1]), [2, 1], [3, 12]);
  await expectView(sumTo(iota([2, 3]), [3]), [3], [3, 5, 7]);
});

Deno.test("expand of a stride-0 view still changes the shape (regression)", async () => {
  // A [2, 1] view with strides [0, 0] used to be returned unexpanded: its new strides matched.
  const zeroStrided = t64([3], [1]).withLayout([2, 1], [0, 0], 0);
  await expectView(expand(zeroStrided, [2, 4]), [2, 4], [3, 3, 3, 3, 3, 3, 3, 3]);
});

Deno.test("view errors name the op and the shapes", () => {
  const x = iota([2, 3]);
  throws(() => narrow(x, 1, 2, 2), /narrow: range \[2, 4\) out of bounds for dim 1 of \[2, 3\]/);
  throws(() => permute(x, [0, 0]), /permute: \[0, 0\] is not a permutation of 2 dims/);
  throws(() => permute(x, [0, 2]), /permute: axis 2 out of range for a tensor of rank 2/);
  throws(() => expand(x, [3, 3]), /expand: cannot expand \[2, 3\] to \[3, 3\]/);
  throws(() => expand(x, [3]), /expand: cannot expand \[2, 3\] to \[3\]/);
  throws(() => squeeze(x, 0), /squeeze: dim 0 of \[2, 3\] is not 1/);
  throws(() => transpose(x, 0, 5), /transpose: axis 5 out of range/);
  // Regression: out-of-range unsqueeze axes used to insert silently at the end or the start.
  throws(
    () => unsqueeze(x, 3),
    /unsqueeze: axis 3 out of range for a tensor of rank 2 \(valid: -3 to 2\)/,
  );
  throws(() => unsqueeze(x, -4), /unsqueeze: axis -4 out of range/);
});

/** Views and their compositions, each followed by a nonlinearity so the gradient is not trivial. */
const VIEWS: [string, number[], (x: Tensor) => Tensor][] = [
  ["reshape -1", [2, 6], (x) => exp(reshape(x, [3, -1]))],
  ["reshape of transpose (copy)", [3, 4], (x) => exp(reshape(transpose(x), [12]))],
  ["reshape splitting a transpose (view)", [4, 3], (x) => exp(reshape(transpose(x), [3, 2, 2]))],
  ["permute", [2, 3, 4], (x) => exp(permute(x, [2, 0, 1]))],
  ["transpose", [3, 5], (x) => exp(transpose(x))],
  ["narrow", [3, 5], (x) => exp(narrow(x, 1, 1, 3))],
  ["narrow twice", [5, 4], (x) => exp(narrow(narrow(x, 0, 1, 3), 1, 2, 2))],
  ["slice", [4, 3], (x) => exp(slice(x, 0, -3, -1))],
  ["expand", [3, 1], (x) => mul(expand(x, [2, 3, 4]), expand(x, [2, 3, 4]))],
  ["unsqueeze/squeeze", [3, 4], (x) => exp(squeeze(unsqueeze(x, 1), 1))],
  ["contiguous of narrow", [4, 5], (x) => exp(contiguous(narrow(transpose(x), 0, 1, 3)))],
  ["sumTo", [2, 3, 4], (x) => exp(sumTo(x, [3, 1]))],
];

Deno.test("view gradients by finite differences", async () => {
  for (const [name, shape, f] of VIEWS) {
    await gradCheck(f, [{ shape }]).catch((e) => {
      throw new Error(`${name}: ${e.message}`);
    });
  }
});

Deno.test("detach stops the gradient", async () => {
  const x = t64([1, 2, 3], [3], cpu, true);
  sum(mul(x, detach(x))).backward(); // d/dx (x · const) = const
  assertClose(await values(x.grad!), [1, 2, 3]);
});

Deno.test({
  name: "view webgpu parity: materialized views and their gradients",
  ignore: !hasWebGPU,
  async fn() {
    for (const [name, shape, f] of VIEWS) {
      await gpuParity(name, f, [{ shape }], { seed: freshSeed() });
    }
    // Odd sizes through the strided copy and narrow's padding backward.
    for (const n of [1, 3, 17, 65, 129]) {
      await gpuParity(`contiguous transpose [${n}, 3]`, (x) => mul(contiguous(transpose(x)), 2), [
        { shape: [n, 3] },
      ]);
      await gpuParity(
        `narrow [3, ${n}]`,
        (x) => mul(narrow(x, 1, n > 2 ? 1 : 0, n > 2 ? n - 2 : 1), 2),
        [
          { shape: [3, n] },
        ],
      );
    }
  },
});

Deno.test("view wasm parity: materialized views, permutes, transposes, both threads", () =>
  splitSmall(async () => {
    for (const [name, shape, f] of VIEWS) {
      await wasmParity(name, f, [{ shape }], { seed: freshSeed() });
    }
    const copy2 = (x: Tensor) => mul(contiguous(x), 2);
    // Transposes (4×4 register tiles, with rows and columns past multiples of 4 and 16).
    for (const [r, c] of [[1, 1], [3, 5], [4, 4], [17, 33], [16, 8], [37, 129], [256, 130]]) {
      await wasmParity(`transpose [${r}, ${c}]`, (x) => copy2(transpose(x)), [{ shape: [r, c] }]);
      await wasmParity(`batched transpose [3, ${r}, ${c}]`, (x) => copy2(transpose(x, 0, 2)), [{
        shape: [3, r, c],
      }]);
    }
    // Attention's head permutes, with the q/k/v offsets into [B, T, 3C].
    for (const at of [0, 32, 64]) {
      await wasmParity(
        `heads at ${at}`,
        (x) => copy2(permute(reshape(narrow(x, 2, at, 32), [3, 9, 4, 8]), [0, 2, 1, 3])),
        [{ shape: [3, 9, 96] }],
      );
    }
    await wasmParity(
      "k transposed",
      (x) => copy2(permute(reshape(x, [2, 9, 4, 8]), [0, 2, 3, 1])),
      [
        { shape: [2, 9, 32] },
      ],
    );
    await wasmParity("broadcast copy", (x) => copy2(expand(x, [4, 3, 5])), [{ shape: [3, 1] }]);
    await wasmParity("large permute", (x) => copy2(permute(x, [2, 0, 1])), [{
      shape: [40, 30, 33],
    }]);
    for (const n of [1, 3, 7, 33, 1000]) {
      await wasmParity(
        `narrow [3, ${n}]`,
        (x) => copy2(narrow(x, 1, n > 2 ? 1 : 0, n > 2 ? n - 2 : 1)),
        [
          { shape: [3, n] },
        ],
      );
    }
    // Integer tensors are copied bit for bit.
    const be = await wasm();
    const ints = tensor(Int32Array.from([1, -2, 3, 2147483647, -2147483648, 6]), [2, 3], {
      backend: be,
    });
    deepStrictEqual(Array.from(await contiguous(transpose(ints)).data()), [
      1,
      2147483647,
      -2,
      -2147483648,
      3,
      6,
    ]);
  }));
