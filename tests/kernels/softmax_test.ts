// softmax / logSoftmax: closed-form values, float64 gradient checks (size-1 dims, views, other
// axes) and WebGPU-vs-CPU parity with rows longer than one workgroup.

import { deepStrictEqual, throws } from "node:assert/strict";
import { logSoftmax, softmax, transpose } from "../../kernels/mod.ts";
import { assertClose, cpu, gpu, gradCheck, hasWebGPU, t64, values } from "../util.ts";
import { gpuParity, poisonPool } from "./gpu_helpers.ts";

Deno.test("softmax and logSoftmax of known vectors", async () => {
  const x = t64([1, 2, 3], [3]);
  const e = [Math.exp(1), Math.exp(2), Math.exp(3)];
  const z = e[0] + e[1] + e[2];
  assertClose(await values(softmax(x)), e.map((v) => v / z), { atol: 0, rtol: 1e-15 });
  assertClose(await values(logSoftmax(x)), [1, 2, 3].map((v) => v - Math.log(z)), {
    atol: 0,
    rtol: 1e-15,
  });
  // Max subtraction: no overflow at 1000, and -inf entries get probability 0.
  assertClose(await values(softmax(t64([1000, 1000, -Infinity], [3]))), [0.5, 0.5, 0]);
  // axis 0 of [[0, 0], [ln 3, 0]] -> columns [1/4, 3/4] and [1/2, 1/2].
  const m = t64([0, 0, Math.log(3), 0], [2, 2]);
  assertClose(await values(softmax(m, 0)), [0.25, 0.5, 0.75, 0.5], { atol: 1e-15 });
  deepStrictEqual((await values(softmax(t64([7], [])))).length, 1);
});

Deno.test("softmax rejects a bad axis naming the op", () => {
  throws(() => softmax(t64([1, 2], [2]), 1), /softmax: axis 1 out of range/);
  throws(() => logSoftmax(t64([1, 2], [2]), -2), /logSoftmax: axis -2 out of range/);
});

Deno.test("softmax gradcheck (float64, size-1 dims, views, other axes)", async () => {
  for (const shape of [[3, 4], [1, 5], [4, 1], [2, 3, 2]]) {
    await gradCheck((x) => softmax(x), [{ shape }]);
    await gradCheck((x) => logSoftmax(x), [{ shape }]);
  }
  await gradCheck((x) => softmax(transpose(x)), [{ shape: [4, 3] }]);
  await gradCheck((x) => logSoftmax(transpose(x)), [{ shape: [4, 3] }]);
  await gradCheck((x) => softmax(x, 1), [{ shape: [2, 3, 2] }]);
  await gradCheck((x) => logSoftmax(x, 0), [{ shape: [3, 2] }]);
});

Deno.test({
  name: "softmax webgpu matches cpu (rows 1..129, other axes)",
  ignore: !hasWebGPU,
  fn: async () => {
    for (const len of [1, 3, 17, 65, 129]) {
      await gpuParity(`softmax L=${len}`, (x) => softmax(x), [{ shape: [3, len] }]);
      await gpuParity(`logSoftmax L=${len}`, (x) => logSoftmax(x), [{ shape: [3, len] }]);
    }
    await gpuParity("softmax rows=65", (x) => softmax(x), [{ shape: [65, 5] }]);
    await gpuParity("softmax axis 0", (x) => softmax(x, 0), [{ shape: [70, 3] }]);
    await gpuParity("logSoftmax transposed", (x) => logSoftmax(transpose(x)), [{ shape: [9, 4] }]);
    await gpuParity("softmax long rows", (x) => softmax(x), [{ shape: [2, 300] }], { tol: 1e-3 });
  },
});

Deno.test({
  name: "softmax webgpu: -inf masked scores give exactly 0",
  ignore: !hasWebGPU,
  fn: async () => {
    const v = [0.5, -Infinity, 2, -Infinity, -1, 3];
    const g = await gpu();
    const x = t64(v, [2, 3], g);
    poisonPool(g, 24);
    const y = softmax(x);
    const want = await values(softmax(t64(v, [2, 3], cpu)));
    assertClose(await values(y), want);
    deepStrictEqual([(await values(y))[1], (await values(y))[3]], [0, 0]);
  },
});

Deno.test({
  name: "softmax webgpu: more than 65,535 rows spill into the grid's second dimension",
  ignore: !hasWebGPU,
  fn: async () => {
    const rows = 65537;
    const v = Array.from({ length: rows * 2 }, (_, i) => (i % 7) - 3);
    const g = await gpu();
    const x = t64(v, [rows, 2], g);
    poisonPool(g, rows * 8);
    const got = await values(softmax(x));
    assertClose(got, await values(softmax(t64(v, [rows, 2], cpu))), { msg: "65537 rows" });
  },
});
