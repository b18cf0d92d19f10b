// softmax / logSoftmax: closed-form values, float64 gradient checks (size-1 dims, views, other
// axes), WebGPU-vs-CPU parity in both row modes (workgroup per row, invocation per row) with
// rows longer than one workgroup, and wasm-vs-CPU parity (odd sizes for the SIMD tails and
// thread splits; one and two threads bit-identical) through the wasm kernels themselves.

import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { logSoftmax, softmax, transpose } from "../../kernels/mod.ts";
import { softmaxBackwardOp, softmaxOp } from "../../kernels/rows/softmax.ts";
import {
  assertClose,
  cpu,
  gpu,
  gradCheck,
  hasWebGPU,
  randnArray,
  t64,
  values,
  wasm,
} from "../util.ts";
import { gpuParity, inEachRowMode, poisonPool, wasmParity } from "./gpu_helpers.ts";
import { countWasmCalls, ODD_SIZES } from "./wasm_helpers.ts";
import { forceRowMode, rowMode } from "../../kernels/rows/rows.ts";

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

Deno.test("row kernels pick invocation-per-row on software adapters and for many short rows", () => {
  const soft = { isFallback: true, hasDot4I8: false };
  const gpuDev = { isFallback: false, hasDot4I8: true };
  deepStrictEqual(rowMode(3, 16383, soft), "invocation");
  deepStrictEqual(rowMode(3, 50257, soft), "workgroup"); // llvmpipe's loop cap: long_rows_test.ts
  deepStrictEqual(rowMode(8192, 64, gpuDev), "invocation");
  deepStrictEqual(rowMode(8192, 65, gpuDev), "workgroup");
  deepStrictEqual(rowMode(100, 64, gpuDev), "workgroup");
  deepStrictEqual(rowMode(8192, 64), "workgroup"); // no device traits: the GPU default
  forceRowMode("workgroup");
  deepStrictEqual(rowMode(3, 3, soft), "workgroup");
  forceRowMode(null);
  deepStrictEqual(rowMode(3, 3, soft), "invocation");
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
  name: "softmax webgpu matches cpu in both row modes (rows and L 1..129, other axes)",
  ignore: !hasWebGPU,
  fn: () =>
    inEachRowMode(async (mode) => {
      const cases = [[3, 1], [3, 3], [3, 17], [3, 65], [3, 129], [1, 129], [17, 65], [129, 3]];
      for (const [n, len] of cases) {
        const tol = len > 64 || n > 64 ? 1e-3 : 1e-4;
        const shape = [n, len];
        await gpuParity(`${mode} softmax [${shape}]`, (x) => softmax(x), [{ shape }], { tol });
        await gpuParity(`${mode} logSoftmax [${shape}]`, (x) => logSoftmax(x), [{ shape }], {
          tol,
        });
      }
      await gpuParity(`${mode} softmax rows=65`, (x) => softmax(x), [{ shape: [65, 5] }]);
      await gpuParity(`${mode} softmax axis 0`, (x) => softmax(x, 0), [{ shape: [70, 3] }]);
      await gpuParity(`${mode} logSoftmax transposed`, (x) => logSoftmax(transpose(x)), [{
        shape: [9, 4],
      }]);
      await gpuParity(`${mode} softmax long rows`, (x) => softmax(x), [{ shape: [2, 300] }], {
        tol: 1e-3,
      });
    }),
});

Deno.test({
  name: "softmax webgpu: -inf masked scores give exactly 0",
  ignore: !hasWebGPU,
  fn: async () => {
    const v = [0.5, -Infinity, 2, -Infinity, -1, 3];
    const g = await gpu();
    const want = await values(softmax(t64(v, [2, 3], cpu)));
    await inEachRowMode(async (mode) => {
      const x = t64(v, [2, 3], g);
      poisonPool(g, 24);
      const y = await values(softmax(x));
      assertClose(y, want, { msg: mode });
      deepStrictEqual([y[1], y[3]], [0, 0]);
    });
  },
});

Deno.test({
  name: "softmax webgpu: more than 65,535 rows spill into the grid's second dimension",
  ignore: !hasWebGPU,
  fn: async () => {
    const rows = 65537;
    const v = Array.from({ length: rows * 2 }, (_, i) => (i % 7) - 3);
    const g = await gpu();
    const want = await values(softmax(t64(v, [rows, 2], cpu)));
    await inEachRowMode(async (mode) => {
      const x = t64(v, [rows, 2], g);
      poisonPool(g, rows * 8);
      assertClose(await values(softmax(x)), want, { msg: `${mode}: 65537 rows` });
      x.dispose();
    });
  },
});

Deno.test("softmax wasm matches cpu, 1 and 2 threads identical (odd rows and lengths, views)", async () => {
  const [fwd, bwd] = await countWasmCalls([softmaxOp, softmaxBackwardOp], async () => {
    for (const n of ODD_SIZES) {
      for (const len of [1, 3, 7, 33, 65, 1001]) {
        if (n * len > 70000) continue;
        const shape = [n, len];
        await wasmParity(`softmax [${shape}]`, (x) => softmax(x), [{ shape }]);
        await wasmParity(`logSoftmax [${shape}]`, (x) => logSoftmax(x), [{ shape }]);
      }
    }
    await wasmParity("softmax axis 0", (x) => softmax(x, 0), [{ shape: [70, 3] }]);
    await wasmParity("logSoftmax transposed", (x) => logSoftmax(transpose(x)), [{
      shape: [9, 4],
    }]);
    await wasmParity("softmax [3072, 64] (attention)", (x) => softmax(x), [{ shape: [3072, 64] }]);
    await wasmParity("softmax wide logits", (x) => softmax(x), [{
      shape: [5, 333],
      values: randnArray(5 * 333, 3).map((v) => 30 * v),
    }]);
  });
  ok(fwd >= 2 * 2 * 36 && bwd >= 2 * 2 * 36, `wasm kernels ran ${fwd} and ${bwd} times`);
});

Deno.test("softmax wasm: -inf masked scores give exactly 0, an all -inf row NaN", async () => {
  const be = await wasm();
  const v = [0.5, -Infinity, 2, -Infinity, -1, 3, 7, -Infinity, -Infinity, -Infinity];
  const want = await values(softmax(t64(v, [2, 5], cpu)));
  const y = await values(softmax(t64(v, [2, 5], be)));
  assertClose(y, want);
  deepStrictEqual([y[1], y[3], y[7], y[8], y[9]], [0, 0, 0, 0, 0]);
  const nan = await values(softmax(t64([-Infinity, -Infinity, -Infinity], [1, 3], be)));
  ok(nan.every(Number.isNaN), `${nan}`);
});
