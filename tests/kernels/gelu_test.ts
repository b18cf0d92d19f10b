// gelu: values at known points (PyTorch's nn.GELU() / mpmath at 30 digits), the float64 erf,
// gradient checks in float64, and WebGPU-vs-CPU and wasm-vs-CPU parity of forward and backward.

import { erf64, erfc64, gelu, mul, narrow, transpose } from "../../kernels/mod.ts";
import { tensor } from "../../engine/creation.ts";
import type { Backend } from "../../engine/backend.ts";
import { assertClose, cpu, gpu, gradCheck, hasWebGPU, t64, values, wasm } from "../util.ts";
import { gpuParity, poisonPool, wasmParity } from "./gpu_helpers.ts";
import { splitSmall } from "./wasm_split.ts";

// x, gelu(x) = x·Φ(x), gelu'(x) = Φ(x) + x·φ(x), computed with mpmath at 30 digits.
const POINTS: [number, number, number][] = [
  [-8, -4.976768459417427e-15, -3.979607261086796e-14],
  [-5, -1.4332578593959695e-6, -7.146946001792295e-6],
  [-3, -0.0040496940948902835, -0.011945647204183927],
  [-1, -0.15865525393145705, -0.0833154705876863],
  [-0.5, -0.15426876936299344, 0.13250487534383715],
  [0, 0, 0.5],
  [0.5, 0.34573123063700656, 0.8674951246561629],
  [1, 0.8413447460685429, 1.0833154705876864],
  [3, 2.99595030590511, 1.011945647204184],
  [8, 7.999999999999995, 1.0000000000000397],
];

Deno.test("erf64 and erfc64 against high-precision values", () => {
  // erf(0.5), erf(1), erf(2), erfc(3), erfc(6), erfc(-1) from mpmath.
  assertClose([erf64(0.5), erf64(1), erf64(2), erf64(-1)], [
    0.5204998778130465,
    0.8427007929497149,
    0.9953222650189527,
    -0.8427007929497149,
  ], { atol: 0, rtol: 1e-15 });
  assertClose([erfc64(3), erfc64(6), erfc64(-1), erfc64(1.4999)], [
    2.209049699858544e-5,
    2.1519736712498913e-17,
    1.8427007929497148,
    0.03390674833770473,
  ], { atol: 0, rtol: 2e-14 });
});

Deno.test("gelu matches PyTorch nn.GELU() at known points (float64 and float32)", async () => {
  const xs = POINTS.map((p) => p[0]);
  const want = POINTS.map((p) => p[1]);
  assertClose(await values(gelu(t64(xs, [xs.length]))), want, { atol: 0, rtol: 1e-14 });
  const x32 = tensor(xs, [xs.length], { dtype: "f32", backend: cpu });
  assertClose(await values(gelu(x32)), want, { atol: 1e-30, rtol: 1e-7 });
  const x = t64(xs, [xs.length], undefined, true);
  gelu(x).backward(t64(new Array(xs.length).fill(1), [xs.length]));
  assertClose(await values(x.grad!), POINTS.map((p) => p[2]), { atol: 0, rtol: 1e-13 });
});

Deno.test("gelu gradcheck (float64, size-1 dims, transposed view, large |x|)", async () => {
  for (const shape of [[1], [3, 1], [2, 5]]) await gradCheck((x) => gelu(x), [{ shape }]);
  await gradCheck((x) => gelu(transpose(x)), [{ shape: [3, 4] }]);
  const wide = [-7, -4, -2.2, -1.4, 0.3, 1.6, 2.6, 5];
  await gradCheck((x) => gelu(mul(x, x)), [{ shape: [8], values: wide.map((v) => v / 3) }]);
  await gradCheck((x) => gelu(x), [{ shape: [8], values: wide }]);
});

Deno.test({
  name: "gelu webgpu matches cpu (sizes 1..129, views, large |x|)",
  ignore: !hasWebGPU,
  fn: async () => {
    for (const n of [1, 3, 17, 65, 129]) {
      await gpuParity(`gelu n=${n}`, (x) => gelu(x), [{ shape: [n] }]);
    }
    await gpuParity("gelu transposed", (x) => gelu(transpose(x)), [{ shape: [9, 7] }]);
    const spread = Array.from({ length: 65 }, (_, i) => -9 + i * 0.28);
    await gpuParity("gelu tails", (x) => gelu(x), [{ shape: [65], values: spread }]);
    await gpuParity("gelu at the points", (x) => gelu(x), [{
      shape: [POINTS.length],
      values: POINTS.map((p) => p[0]),
    }]);
  },
});

Deno.test("gelu wasm matches cpu (odd sizes to 40000, views, tails, both threads)", () =>
  splitSmall(async () => {
    for (const n of [1, 3, 7, 33, 1000, 40001]) {
      await wasmParity(`gelu n=${n}`, (x) => gelu(x), [{ shape: [n] }]);
    }
    await wasmParity("gelu transposed", (x) => gelu(transpose(x)), [{ shape: [9, 7] }]);
    await wasmParity("gelu rank 4 narrowed", (x) => gelu(narrow(x, 2, 1, 5)), [{
      shape: [2, 3, 7, 5],
    }]);
    const spread = Array.from({ length: 65 }, (_, i) => -9 + i * 0.28);
    await wasmParity("gelu tails", (x) => gelu(x), [{ shape: [65], values: spread }]);
    await wasmParity("gelu at the points", (x) => gelu(x), [{
      shape: [POINTS.length],
      values: POINTS.map((p) => p[0]),
    }]);
  }));

/** The negative tail on `g`: forward and backward within 3e-5 of the float64 reference. */
async function tail(g: Backend): Promise<void> {
  // Multiples of 1/8 are exact in f32; the erfc form keeps the relative error ~1e-5 down to
  // x = -12 (f32 rounding of the exponent -x²/2 ≈ -72 dominates there).
  const xs = Array.from({ length: 193 }, (_, i) => -12 + i / 8);
  const x = t64(xs, [xs.length], g, true);
  poisonPool(g, xs.length * 4);
  const y = gelu(x);
  const want = await values(gelu(t64(xs, [xs.length])));
  assertClose(await values(y), want, { atol: 0, rtol: 3e-5, msg: `${g.name} gelu tail` });
  y.backward(t64(new Array(xs.length).fill(1), [xs.length], g));
  const xc = t64(xs, [xs.length], cpu, true);
  gelu(xc).backward(t64(new Array(xs.length).fill(1), [xs.length]));
  const wantGrad = await values(xc.grad!);
  const msg = `${g.name} gelu' tail`;
  assertClose(await values(x.grad!), wantGrad, { atol: 2e-7, rtol: 3e-5, msg });
}

Deno.test({
  name: "gelu webgpu keeps relative accuracy in the negative tail",
  ignore: !hasWebGPU,
  fn: async () => tail(await gpu()),
});

Deno.test("gelu wasm keeps relative accuracy in the negative tail", async () => tail(await wasm()));
