// layerNorm / rmsNorm: closed-form values, errors, float64 gradient checks (size-1 dims, views,
// more rows than one dweight block), WebGPU-vs-CPU parity and flat GPU memory over steps, and
// wasm-vs-CPU parity (odd sizes, with and without bias; 1 and 2 threads bit-identical) through
// the wasm kernels themselves.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { tidy } from "../../engine/scope.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { layerNorm, mul, rmsNorm, sum, transpose } from "../../kernels/mod.ts";
import {
  normBackwardOp,
  normForwardOp,
  normParamPartialOp,
  normParamSumOp,
} from "../../kernels/rows/norm.ts";
import {
  assertClose,
  cpu,
  gpu,
  gradCheck,
  hasWebGPU,
  randnArray,
  settleGarbage,
  t64,
  values,
} from "../util.ts";
import { gpuParity, inEachRowMode, wasmParity } from "./gpu_helpers.ts";
import { countWasmCalls, ODD_SIZES } from "./wasm_helpers.ts";

Deno.test("layerNorm and rmsNorm of known rows", async () => {
  const x = t64([1, 2, 3, 4, 2, 2, 2, 2], [2, 4]);
  const w = t64([1, 2, 1, 0.5], [4]);
  const b = t64([0, 1, 0, -1], [4]);
  // Row 0: mean 2.5, var 1.25; row 1: var 0, so x̂ = 0 and y = bias.
  const r0 = 1 / Math.sqrt(1.25 + 1e-5);
  const xhat = [-1.5 * r0, -0.5 * r0, 0.5 * r0, 1.5 * r0];
  const want = [xhat[0], 2 * xhat[1] + 1, xhat[2], 0.5 * xhat[3] - 1, 0, 1, 0, -1];
  assertClose(await values(layerNorm(x, w, b)), want, { atol: 1e-15, rtol: 1e-14 });
  assertClose(await values(layerNorm(x, w, null, 0)).then((v) => v.slice(0, 4)), [
    -1.5 / Math.sqrt(1.25),
    -1 / Math.sqrt(1.25),
    0.5 / Math.sqrt(1.25),
    0.75 / Math.sqrt(1.25),
  ], { atol: 0, rtol: 1e-14 });
  // rms of row 0: sqrt(30 / 4); of row 1: 2.
  const rs = 1 / Math.sqrt(7.5 + 1e-6);
  const r1 = 1 / Math.sqrt(4 + 1e-6);
  assertClose(await values(rmsNorm(x, w)), [
    rs,
    4 * rs,
    3 * rs,
    2 * rs,
    2 * r1,
    4 * r1,
    2 * r1,
    r1,
  ], { atol: 0, rtol: 1e-14 });
});

Deno.test("norm shape errors name the op and shapes", () => {
  const x = t64(new Array(6).fill(1), [2, 3]);
  throws(
    () => layerNorm(x, t64([1, 1], [2])),
    /layerNorm: weight is \[2\], expected \[3\] for x \[2, 3\]/,
  );
  throws(() => layerNorm(x, t64([1, 1, 1], [3]), t64([1], [1])), /layerNorm: bias is \[1\]/);
  throws(() => rmsNorm(x, t64([1, 1, 1, 1], [4])), /rmsNorm: weight is \[4\], expected \[3\]/);
  throws(() => rmsNorm(t64([1], []), t64([1], [1])), /rmsNorm: x must have at least one dim/);
});

Deno.test("layerNorm gradcheck (float64, x, weight and bias)", async () => {
  for (const s of [[3, 4], [1, 5], [4, 1], [2, 3, 4], [70, 2]]) {
    const c = s[s.length - 1];
    await gradCheck((x, w, b) => layerNorm(x, w, b), [{ shape: s }, { shape: [c] }, {
      shape: [c],
    }]);
  }
  await gradCheck((x, w) => layerNorm(transpose(x), w), [{ shape: [5, 3] }, { shape: [5] }]);
  await gradCheck((x, w, b) => layerNorm(x, w, b, 0.5), [{ shape: [2, 3] }, { shape: [3] }, {
    shape: [3],
  }]);
});

Deno.test("rmsNorm gradcheck (float64, x and weight)", async () => {
  for (const s of [[3, 4], [1, 5], [4, 1], [2, 3, 4], [70, 2]]) {
    await gradCheck((x, w) => rmsNorm(x, w), [{ shape: s }, { shape: [s[s.length - 1]] }]);
  }
  await gradCheck((x, w) => rmsNorm(transpose(x), w, 0.1), [{ shape: [5, 3] }, { shape: [5] }]);
});

Deno.test("norms pass gradients only where asked", async () => {
  const xv = randnArray(6, 3);
  const dy = t64([1, -2, 3, 0.5, 1, 2], [2, 3]);
  const run = async (paramGrad: boolean) => {
    const x = t64(xv, [2, 3], cpu, true);
    const w = t64([1, 2, 3], [3], cpu, paramGrad);
    const b = t64([0.5, 0, -1], [3], cpu, paramGrad);
    layerNorm(x, w, b).backward(dy);
    return { dx: await values(x.grad!), w, b };
  };
  const some = await run(false);
  const all = await run(true);
  strictEqual(some.w.grad, null);
  strictEqual(some.b.grad, null);
  assertClose(some.dx, all.dx, { atol: 0, rtol: 0 });
  const x = t64(xv, [2, 3]);
  const w = t64([1, 2, 3], [3], cpu, true);
  rmsNorm(x, w).backward(dy);
  strictEqual(x.grad, null);
  deepStrictEqual(w.grad!.shape, [3]);
  deepStrictEqual(all.b.grad && Array.from(await values(all.b.grad)), [1.5, -1, 5]);
});

Deno.test({
  name: "norms webgpu match cpu in both row modes (rows and C 1..129, views)",
  ignore: !hasWebGPU,
  fn: () =>
    inEachRowMode(async (mode) => {
      const cases = [[3, 1], [3, 3], [3, 17], [3, 65], [3, 129], [129, 5], [70, 300], [1, 129], [
        17,
        65,
      ]];
      for (const [n, c] of cases) {
        const tol = c > 64 || n > 64 ? 1e-3 : 1e-4;
        await gpuParity(`${mode} layerNorm [${n}, ${c}]`, (x, w, b) => layerNorm(x, w, b), [
          { shape: [n, c] },
          { shape: [c] },
          { shape: [c] },
        ], { tol });
        // With C = 1, dx = g·eps·rstd³ cancels to ~1e-4 of its natural scale |g·rstd| in f32.
        await gpuParity(`${mode} rmsNorm [${n}, ${c}]`, (x, w) => rmsNorm(x, w), [
          { shape: [n, c] },
          { shape: [c] },
        ], { tol: c === 1 ? 1e-2 : tol });
      }
      await gpuParity(
        `${mode} layerNorm no bias, transposed`,
        (x, w) => layerNorm(transpose(x), w),
        [
          { shape: [17, 3] },
          { shape: [17] },
        ],
      );
    }),
});

Deno.test({
  name: "layerNorm on webgpu keeps live GPU memory flat over steps",
  ignore: !hasWebGPU,
  fn: async () => {
    const g = await gpu() as WebGpuBackend;
    const x = t64(randnArray(40, 1), [5, 8], g, true);
    const w = t64(randnArray(8, 2), [8], g, true);
    const b = t64(randnArray(8, 3), [8], g, true);
    const dy = t64(randnArray(40, 4), [5, 8], g);
    const live: number[] = [];
    for (let step = 0; step < 3; step++) {
      tidy(() => sum(mul(layerNorm(x, w, b), rmsNorm(x, w))).backward());
      // No scope: the ops must free their saved statistics themselves.
      for (const y of [layerNorm(x, w, b), rmsNorm(x, w)]) {
        y.backward(dy);
        y.dispose();
      }
      await g.sync();
      await settleGarbage();
      live.push(g.stats().liveBuffers);
    }
    deepStrictEqual(live[2], live[1]);
  },
});

const NORM_KERNELS = [normForwardOp, normBackwardOp, normParamPartialOp, normParamSumOp];

Deno.test("norms wasm match cpu, 1 and 2 threads identical (odd rows and C, bias or not, views)", async () => {
  const counts = await countWasmCalls(NORM_KERNELS, async () => {
    for (const n of ODD_SIZES) {
      for (const c of ODD_SIZES) {
        if (n * c > 70000) continue;
        const tol = c > 64 || n > 64 ? 1e-3 : 1e-4;
        await wasmParity(`layerNorm [${n}, ${c}]`, (x, w, b) => layerNorm(x, w, b), [
          { shape: [n, c] },
          { shape: [c] },
          { shape: [c] },
        ], { tol });
        // With C = 1, dx = g·eps·rstd³ cancels to ~1e-4 of its natural scale |g·rstd| in f32.
        await wasmParity(`rmsNorm [${n}, ${c}]`, (x, w) => rmsNorm(x, w), [
          { shape: [n, c] },
          { shape: [c] },
        ], { tol: c === 1 ? 1e-2 : tol });
        await wasmParity(`layerNorm no bias [${n}, ${c}]`, (x, w) => layerNorm(x, w), [
          { shape: [n, c] },
          { shape: [c] },
        ], { tol: c === 1 ? 1e-2 : tol });
      }
    }
    await wasmParity("layerNorm transposed", (x, w, b) => layerNorm(transpose(x), w, b), [
      { shape: [17, 3] },
      { shape: [17] },
      { shape: [17] },
    ]);
    await wasmParity("layerNorm [768, 128] (baby GPT)", (x, w, b) => layerNorm(x, w, b), [
      { shape: [768, 128] },
      { shape: [128] },
      { shape: [128] },
    ], { tol: 1e-3 });
  });
  ok(counts.every((c) => c >= 2 * 3 * 30), `wasm kernels ran ${counts} times`);
});
