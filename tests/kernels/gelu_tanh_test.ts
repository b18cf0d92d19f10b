// gelu_tanh: values at known points (mpmath at 40 digits), against Hugging Face's gelu_new
// formula in float32, gradient checks in float64, WebGPU-vs-CPU and wasm-vs-CPU parity of forward
// and backward, and launches cut into pieces when a tensor is larger than one binding.

import { gelu, geluTanh, mul, narrow, transpose } from "../../kernels/mod.ts";
import { tensor } from "../../engine/creation.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { assertClose, cpu, gpu, gradCheck, hasWebGPU, t64, values, wasm } from "../util.ts";
import { gpuParity, poisonPool, wasmParity } from "./gpu_helpers.ts";
import { splitSmall } from "./wasm_split.ts";

// x, gelu_tanh(x), gelu_tanh'(x), computed with mpmath at 40 digits from
// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
const POINTS: [number, number, number][] = [
  [-8, -3.1077829375011112e-21, -4.7147845041068414e-20],
  [-5, -2.291796196629506e-7, -1.5463619875325946e-6],
  [-3, -0.003637392081773019, -0.011584166630969726],
  [-1, -0.1588080093917233, -0.08296408384578255],
  [-0.5, -0.15428599017485609, 0.1326300964653577],
  [0, 0, 0.5],
  [0.5, 0.34571400982514394, 0.8673699035346423],
  [1, 0.8411919906082767, 1.0829640838457826],
  [3, 2.996362607918227, 1.0115841666309697],
  [8, 8, 1],
];

/** Hugging Face's NewGELUActivation, as written there, in float32 arithmetic. */
function geluNew32(x: number): number {
  const f = Math.fround;
  const inner = f(f(Math.sqrt(2 / Math.PI)) * f(x + f(0.044715 * f(x * f(x * x)))));
  return f(f(0.5 * x) * f(1 + f(Math.tanh(inner))));
}

Deno.test("gelu_tanh matches the tanh formula at known points (float64 and float32)", async () => {
  const xs = POINTS.map((p) => p[0]);
  const want = POINTS.map((p) => p[1]);
  // The σ(2u) form keeps relative accuracy in the negative tail (1 + tanh(u) would be 0 at -8).
  assertClose(await values(geluTanh(t64(xs, [xs.length]))), want, { atol: 0, rtol: 1e-14 });
  const x32 = tensor(xs, [xs.length], { dtype: "f32", backend: cpu });
  assertClose(await values(geluTanh(x32)), want, { atol: 1e-30, rtol: 1e-7 });
  const x = t64(xs, [xs.length], undefined, true);
  geluTanh(x).backward(t64(new Array(xs.length).fill(1), [xs.length]));
  assertClose(await values(x.grad!), POINTS.map((p) => p[2]), { atol: 0, rtol: 1e-13 });
});

Deno.test("gelu_tanh agrees with gelu_new in float32 and differs from the exact gelu", async () => {
  const xs = Array.from({ length: 161 }, (_, i) => -8 + i / 10);
  const ours = await values(geluTanh(tensor(xs, [xs.length], { dtype: "f32", backend: cpu })));
  assertClose(ours, xs.map(geluNew32), { atol: 3e-7, rtol: 1e-6 });
  // The two GELUs differ by up to ~4.7e-4 (near |x| = 2): enough to move a model's logits.
  const exact = await values(gelu(t64(xs, [xs.length])));
  const tanh = await values(geluTanh(t64(xs, [xs.length])));
  const gap = Math.max(...exact.map((v, i) => Math.abs(v - tanh[i])));
  assertClose([gap], [4.7e-4], { atol: 2e-5, rtol: 0, msg: "largest |gelu - gelu_tanh|" });
});

Deno.test("gelu_tanh gradcheck (float64, size-1 dims, transposed view, large |x|)", async () => {
  for (const shape of [[1], [3, 1], [2, 5]]) await gradCheck((x) => geluTanh(x), [{ shape }]);
  await gradCheck((x) => geluTanh(transpose(x)), [{ shape: [3, 4] }]);
  const wide = [-7, -4, -2.2, -1.4, 0.3, 1.6, 2.6, 5];
  await gradCheck((x) => geluTanh(mul(x, x)), [{ shape: [8], values: wide.map((v) => v / 3) }]);
  await gradCheck((x) => geluTanh(x), [{ shape: [8], values: wide }]);
});

Deno.test({
  name: "gelu_tanh webgpu matches cpu (sizes 1..129, views, tails)",
  ignore: !hasWebGPU,
  fn: async () => {
    for (const n of [1, 3, 17, 65, 129]) {
      await gpuParity(`gelu_tanh n=${n}`, (x) => geluTanh(x), [{ shape: [n] }]);
    }
    await gpuParity("gelu_tanh transposed", (x) => geluTanh(transpose(x)), [{ shape: [9, 7] }]);
    const spread = Array.from({ length: 65 }, (_, i) => -9 + i * 0.28);
    await gpuParity("gelu_tanh tails", (x) => geluTanh(x), [{ shape: [65], values: spread }]);
    await gpuParity("gelu_tanh at the points", (x) => geluTanh(x), [{
      shape: [POINTS.length],
      values: POINTS.map((p) => p[0]),
    }]);
  },
});

Deno.test({
  name: "gelu_tanh webgpu keeps relative accuracy in the negative tail, and splits",
  ignore: !hasWebGPU,
  fn: async () => {
    const xs = Array.from({ length: 193 }, (_, i) => -12 + i / 8);
    const g = await gpu();
    const want = await values(geluTanh(t64(xs, [xs.length])));
    const xc = t64(xs, [xs.length], cpu, true);
    geluTanh(xc).backward(t64(new Array(xs.length).fill(1), [xs.length]));
    const wantGrad = await values(xc.grad!);
    // Whole, then cut into pieces of at most 256 bytes (64 elements) by the engine.
    for (const limit of [null, 256]) {
      (g as WebGpuBackend).limitBindings(limit);
      try {
        const x = t64(xs, [xs.length], g, true);
        poisonPool(g, xs.length * 4);
        const y = geluTanh(x);
        const msg = `gelu_tanh tail, binding limit ${limit ?? "device"}`;
        assertClose(await values(y), want, { atol: 1e-37, rtol: 3e-5, msg });
        y.backward(t64(new Array(xs.length).fill(1), [xs.length], g));
        assertClose(await values(x.grad!), wantGrad, { atol: 2e-7, rtol: 3e-5, msg: `${msg}'` });
      } finally {
        (g as WebGpuBackend).limitBindings(null);
      }
    }
  },
});

Deno.test("gelu_tanh wasm matches cpu (odd sizes to 40000, views, tails, both threads)", () =>
  splitSmall(async () => {
    for (const n of [1, 3, 7, 33, 1000, 40001]) {
      await wasmParity(`gelu_tanh n=${n}`, (x) => geluTanh(x), [{ shape: [n] }]);
    }
    await wasmParity("gelu_tanh transposed", (x) => geluTanh(transpose(x)), [{ shape: [9, 7] }]);
    await wasmParity("gelu_tanh narrowed", (x) => geluTanh(narrow(x, 0, 2, 5)), [{
      shape: [9, 4],
    }]);
    const spread = Array.from({ length: 65 }, (_, i) => -9 + i * 0.28);
    await wasmParity("gelu_tanh tails", (x) => geluTanh(x), [{ shape: [65], values: spread }]);
  }));

Deno.test("gelu_tanh wasm keeps relative accuracy in the tails (backward past x = 4 too)", async () => {
  // Past x ≈ 4, 1 − σ(2u) is below f32's resolution next to 1: the backward computes it as
  // e/(1 + e) rather than 1 − σ, else x·σ·(1 − σ) vanishes (the error was 2e-6 at x = 4.96).
  const xs = Array.from({ length: 193 }, (_, i) => -12 + i / 8);
  const be = await wasm();
  const want = await values(geluTanh(t64(xs, [xs.length])));
  const xc = t64(xs, [xs.length], cpu, true);
  geluTanh(xc).backward(t64(new Array(xs.length).fill(1), [xs.length]));
  const wantGrad = await values(xc.grad!);
  const x = t64(xs, [xs.length], be, true);
  poisonPool(be, xs.length * 4);
  const y = geluTanh(x);
  assertClose(await values(y), want, { atol: 1e-37, rtol: 3e-5, msg: "wasm gelu_tanh tail" });
  y.backward(t64(new Array(xs.length).fill(1), [xs.length], be));
  const got = await values(x.grad!);
  // x < −4: values below 1e-4, relative error from the exponent's rounding; above: absolute.
  const cut = xs.indexOf(-4);
  assertClose(got.slice(0, cut), wantGrad.slice(0, cut), {
    atol: 1e-37,
    rtol: 3e-5,
    msg: "x < -4",
  });
  assertClose(got.slice(cut), wantGrad.slice(cut), { atol: 4e-7, rtol: 0, msg: "wasm x ≥ -4" });
});
