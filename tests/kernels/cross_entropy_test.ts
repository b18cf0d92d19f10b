// crossEntropy: closed-form losses and gradients, ignoreIndex, errors, float64 gradient checks,
// WebGPU-vs-CPU parity of the loss and dlogits (rows longer than one workgroup, many rows), and
// wasm-vs-CPU parity (odd sizes, ignored rows, views, the mean's chunks; 1 and 2 threads
// bit-identical) through the wasm kernels themselves.

import { deepStrictEqual, ok, throws } from "node:assert/strict";
import { tensor } from "../../engine/creation.ts";
import { Generator } from "../../engine/random.ts";
import type { Backend } from "../../engine/backend.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { crossEntropy, transpose } from "../../kernels/mod.ts";
import {
  crossEntropyBackwardOp,
  crossEntropyCount,
  crossEntropyGrad,
  crossEntropyMean,
  crossEntropyMeanOp,
  crossEntropyRowsOp,
  crossEntropyStats,
} from "../../kernels/rows/cross_entropy.ts";
import { MEAN_CHUNK } from "../../kernels/rows/cross_entropy_wasm.ts";
import {
  assertClose,
  cpu,
  freshSeed,
  gpu,
  gradCheck,
  hasWebGPU,
  settleGarbage,
  t64,
  values,
  wasm,
} from "../util.ts";
import { inEachRowMode, poisonPool, wasmParity } from "./gpu_helpers.ts";
import { countWasmCalls, ODD_SIZES } from "./wasm_helpers.ts";

const ids = (v: number[], shape = [v.length], backend: Backend = cpu) =>
  tensor(Int32Array.from(v), shape, { backend });

Deno.test("crossEntropy of known logits, with an ignored row", async () => {
  // Row 0: uniform over 4 classes -> ln 4. Row 1: [1, 2, 3, 0] target 0 -> lse - 1. Row 2 ignored.
  const rows = [0, 0, 0, 0, 1, 2, 3, 0, 5, -5, 2, 2];
  const x = t64(rows, [3, 4], cpu, true);
  const loss = crossEntropy(x, ids([2, 0, -1]));
  const z1 = Math.E + Math.E ** 2 + Math.E ** 3 + 1;
  const want = (Math.log(4) + Math.log(z1) - 1) / 2;
  assertClose([await loss.item()], [want], { atol: 0, rtol: 1e-15 });
  deepStrictEqual(loss.shape, []);
  loss.backward();
  // dlogits = (softmax - onehot) / count; the ignored row gets 0.
  const p1 = [Math.E, Math.E ** 2, Math.E ** 3, 1].map((v) => v / z1);
  const grad = [0.25, 0.25, -0.75, 0.25, p1[0] - 1, p1[1], p1[2], p1[3], 0, 0, 0, 0];
  assertClose(await values(x.grad!), grad.map((v) => v / 2), { atol: 1e-16, rtol: 1e-14 });
});

Deno.test("crossEntropy with every row ignored is 0 with zero gradient", async () => {
  const x = t64([1, 2, 3, 4], [2, 2], cpu, true);
  const loss = crossEntropy(x, ids([7, 7]), 7);
  deepStrictEqual(await loss.item(), 0);
  loss.backward();
  deepStrictEqual(Array.from(await values(x.grad!)), [0, 0, 0, 0]);
});

Deno.test("crossEntropy errors name the op, the row and the shapes", () => {
  const x = t64([0, 0, 0, 0, 0, 0], [2, 3]);
  throws(
    () => crossEntropy(x, ids([0, 3])),
    /crossEntropy: target 3 at row 1 is out of range \[0, 3\)/,
  );
  throws(() => crossEntropy(x, ids([-2, 0])), /target -2 at row 0/);
  throws(
    () => crossEntropy(x, ids([0, 1, 2])),
    /crossEntropy: targets \[3\] do not match logits \[2, 3\]/,
  );
  throws(() => crossEntropy(x, t64([0, 1], [2])), /crossEntropy: targets must be i32/);
  throws(
    () => crossEntropy(t64([], [2, 0]), ids([0, 0])),
    /logits must be \[\.\.\., V\] with V > 0/,
  );
});

Deno.test("crossEntropy gradcheck (float64, V = 1, views, leading dims, ignored rows)", async () => {
  const g = new Generator(freshSeed());
  for (const [n, v] of [[3, 4], [1, 5], [4, 1], [2, 7]]) {
    const t = Array.from(g.integers(n, v));
    await gradCheck((x) => crossEntropy(x, ids(t)), [{ shape: [n, v] }]);
  }
  await gradCheck((x) => crossEntropy(transpose(x), ids([0, 4, 2])), [{ shape: [5, 3] }]);
  await gradCheck((x) => crossEntropy(x, ids([1, -1, 0, 3, -1, 2], [2, 3])), [{
    shape: [2, 3, 4],
  }]);
});

/** Loss and dlogits of one random problem on a backend (dy = 1). */
async function lossAndGrad(b: Backend, x: Float64Array, t: number[], n: number, v: number) {
  const logits = t64(x, [n, v], b, true);
  const targets = ids(t, [n], b);
  poisonPool(b, [n * v * 4, n * 8, 8]);
  const loss = crossEntropy(logits, targets, -1);
  poisonPool(b, n * v * 4);
  loss.backward();
  return { loss: await loss.item(), grad: await values(logits.grad!) };
}

Deno.test({
  name: "crossEntropy webgpu matches cpu in both row modes (rows and V 1..129, ignored rows)",
  ignore: !hasWebGPU,
  fn: () =>
    inEachRowMode(async (mode) => {
      const gpuBackend = await gpu();
      const cases = [
        [3, 1],
        [3, 3],
        [3, 17],
        [3, 65],
        [3, 129],
        [129, 5],
        [2, 1000],
        [65, 17],
        [1, 129],
        [17, 65],
        [129, 65],
      ];
      for (const [n, v] of cases) {
        const seed = freshSeed();
        const gen = new Generator(seed);
        const x = gen.normal(n * v).map((z) => 3 * z);
        const t = Array.from(gen.integers(n, v), (c, i) => (i % 4 === 3 ? -1 : c));
        const want = await lossAndGrad(cpu, x, t, n, v);
        const got = await lossAndGrad(gpuBackend, x, t, n, v);
        const msg = `${mode} crossEntropy [${n}, ${v}] (seed ${seed})`;
        const tol = v > 64 || n > 64 ? 1e-3 : 1e-4;
        assertClose([got.loss], [want.loss], { atol: tol, rtol: tol, msg: `${msg} loss` });
        assertClose(got.grad, want.grad, { atol: tol / (n * v), rtol: tol, msg: `${msg} grad` });
      }
    }),
});

Deno.test({
  name: "crossEntropy webgpu: out-of-range target gives NaN, all ignored gives 0",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu();
    const x = t64([1, 2, 3, 4, 5, 6], [2, 3], g, true);
    const bad = crossEntropy(x, ids([0, 3], [2], g));
    deepStrictEqual(Number.isNaN(await bad.item()), true);
    const none = crossEntropy(x, ids([-1, -1], [2], g));
    deepStrictEqual(await none.item(), 0);
    none.backward();
    deepStrictEqual(Array.from(await values(x.grad!)), [0, 0, 0, 0, 0, 0]);
  },
});

Deno.test({
  name: "crossEntropy on webgpu keeps live GPU memory flat over steps",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu() as WebGpuBackend;
    const x = t64(new Generator(3).normal(4 * 70), [4, 70], g, true);
    const t = ids([3, -1, 69, 0], [4], g);
    const live: number[] = [];
    for (let step = 0; step < 3; step++) {
      const loss = crossEntropy(x, t); // no scope: the op must free its saved tensors itself
      loss.backward();
      loss.dispose();
      await g.sync();
      await settleGarbage();
      live.push(g.stats().liveBuffers);
    }
    deepStrictEqual(live[2], live[1]);
  },
});

const CE_KERNELS = [crossEntropyRowsOp, crossEntropyMeanOp, crossEntropyBackwardOp];

Deno.test("crossEntropy wasm matches cpu, 1 and 2 threads identical (odd sizes, ignored rows, views)", async () => {
  const counts = await countWasmCalls(CE_KERNELS, async () => {
    for (const n of ODD_SIZES) {
      for (const v of ODD_SIZES) {
        if (n * v > 70000) continue;
        const gen = new Generator(freshSeed());
        const t = Array.from(gen.integers(n, v), (c, i) => (i % 4 === 3 ? -1 : c));
        await wasmParity(
          `crossEntropy [${n}, ${v}]`,
          (x) => crossEntropy(x, ids(t, [n], x.backend)),
          [
            { shape: [n, v], values: gen.normal(n * v).map((z) => 3 * z) },
          ],
        );
      }
    }
    await wasmParity(
      "crossEntropy transposed",
      (x) => crossEntropy(transpose(x), ids([0, 4, 2], [3], x.backend)),
      [{ shape: [5, 3] }],
    );
    await wasmParity(
      "crossEntropy leading dims",
      (x) => crossEntropy(x, ids([1, -1, 0, 3, -1, 2], [2, 3], x.backend)),
      [{ shape: [2, 3, 4] }],
    );
    await wasmParity(
      "crossEntropy all ignored",
      (x) => crossEntropy(x, ids([-1, -1, -1], [3], x.backend)),
      [{ shape: [3, 5] }],
    );
    // Past one chunk of the mean: chunk partials summed in order on every thread count.
    const n = MEAN_CHUNK * 2 + 5;
    const t = Array.from(new Generator(freshSeed()).integers(n, 3), (c, i) => (i % 5 ? c : -1));
    await wasmParity(`crossEntropy [${n}, 3]`, (x) => crossEntropy(x, ids(t, [n], x.backend)), [{
      shape: [n, 3],
    }]);
  });
  ok(counts.every((c) => c >= 2 * 39), `wasm kernels ran ${counts} times`);
});

Deno.test("crossEntropy wasm: all ignored gives 0 and zero gradient, bad targets throw as on cpu", async () => {
  const be = await wasm();
  const x = t64([1, 2, 3, 4, 5, 6], [2, 3], be, true);
  const none = crossEntropy(x, ids([-1, -1], [2], be));
  deepStrictEqual(await none.item(), 0);
  none.backward();
  deepStrictEqual(Array.from(await values(x.grad!)), [0, 0, 0, 0, 0, 0]);
  throws(
    () => crossEntropy(x, ids([0, 3], [2], be)),
    /crossEntropy: target 3 at row 1 is out of range \[0, 3\)/,
  );
  throws(() => crossEntropy(x, ids([-2, 0], [2], be)), /target -2 at row 0/);
});

Deno.test("crossEntropy wasm: the row-block pieces (stats, count, grad) match cpu", async () => {
  const gen = new Generator(freshSeed());
  const [n, v] = [37, 66];
  const x = gen.normal(n * v);
  const t = Array.from(gen.integers(n, v), (c, i) => (i % 3 ? c : 5));
  const run = async (b: Backend) => {
    const logits = t64(x, [n, v], b);
    const targets = ids(t, [n], b);
    const stats = crossEntropyStats(logits, targets, 5);
    const count = crossEntropyCount(targets, 5, logits.dtype);
    const one = t64([2], [], b);
    const grad = crossEntropyGrad(logits, targets, stats, count, one, 5);
    const mean = crossEntropyMean(stats, targets, 5);
    return [await values(stats), await values(count), await values(grad), await values(mean)];
  };
  const want = await run(cpu);
  const got = await run(await wasm());
  got.forEach((g, i) => assertClose(g, want[i], { atol: 1e-5, rtol: 1e-4, msg: `piece ${i}` }));
});
