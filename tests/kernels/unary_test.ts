// Unary ops: closed-form values on every backend, finite-difference gradients (float64, CPU,
// contiguous and strided inputs), WebGPU-vs-CPU and wasm-vs-CPU parity of values and gradients,
// and the wasm transcendentals on special values (0, ±∞, NaN, denormals, overflow).

import type { Backend } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import {
  abs,
  clamp,
  exp,
  log,
  narrow,
  neg,
  pow,
  relu,
  round,
  rsqrt,
  scale,
  shift,
  sigmoid,
  sign,
  sqrt,
  tanh,
  transpose,
} from "../../kernels/mod.ts";
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
import { splitSmall } from "./wasm_split.ts";

/** The backends to check closed forms on. */
async function backends(): Promise<Backend[]> {
  return hasWebGPU ? [cpu, await gpu(), await wasm()] : [cpu, await wasm()];
}

/** f(values) on each backend equals `want` (f32 precision on webgpu and wasm). */
async function expectOn(
  f: (x: Tensor) => Tensor,
  xs: number[],
  want: number[],
  rtol = 1e-6,
): Promise<void> {
  for (const b of await backends()) {
    const got = await values(f(t64(xs, [xs.length], b)));
    assertClose(got, want, { rtol, atol: 1e-7, msg: `${b.name}:` });
  }
}

const E = Math.E;

Deno.test("unary closed forms on cpu, webgpu and wasm", async () => {
  await expectOn(exp, [0, 1, -1, 2], [1, E, 1 / E, E * E]);
  await expectOn(log, [1, E, 0.5, 1e-3], [0, 1, -Math.LN2, Math.log(1e-3)]);
  await expectOn(sqrt, [0, 4, 2, 0.25], [0, 2, Math.SQRT2, 0.5]);
  await expectOn(rsqrt, [4, 0.25, 2], [0.5, 2, Math.SQRT1_2]);
  await expectOn(abs, [-2, 0, 3.5], [2, 0, 3.5]);
  await expectOn(sign, [-2, 0, 3.5], [-1, 0, 1]);
  await expectOn(neg, [-2, 0, 3.5], [2, -0, -3.5]);
  await expectOn((x) => clamp(x, -1, 1), [-2, 0.5, 3, -1, 1], [-1, 0.5, 1, -1, 1]);
  await expectOn(relu, [-2, 0, 3.5], [0, 0, 3.5]);
  await expectOn(tanh, [0, 1, -1, 20, -20], [0, Math.tanh(1), -Math.tanh(1), 1, -1]);
  await expectOn(sigmoid, [0, Math.log(3), -Math.log(3)], [0.5, 0.75, 0.25]);
  await expectOn((x) => scale(x, 2.5), [1, -2], [2.5, -5]);
  await expectOn((x) => shift(x, -3), [1, -2], [-2, -5]);
});

Deno.test("pow: integer exponents keep the sign of negative bases; fractional and zero", async () => {
  await expectOn((x) => pow(x, 3), [-2, 3, 0.5, -1], [-8, 27, 0.125, -1]);
  await expectOn((x) => pow(x, 2), [-2, 3, -0.5], [4, 9, 0.25]);
  await expectOn((x) => pow(x, -1), [-2, 4], [-0.5, 0.25]);
  await expectOn((x) => pow(x, 0.5), [4, 2.25], [2, 1.5]);
  await expectOn((x) => pow(x, 0), [-3, 0, 5], [1, 1, 1]);
});

Deno.test("round is half to even on both backends", async () => {
  await expectOn(
    round,
    [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, 2.6, -2.6, 3],
    [0, 2, 2, -0, -2, -2, 2, 3, -3, 3],
  );
});

/** Values bounded away from 0 and from each other's kinks. */
function positive(n: number, seed: number): number[] {
  return Array.from(randnArray(n, seed), (v) => Math.abs(v) + 0.5);
}

/** Each differentiable op with the inputs it is defined on. */
const DIFFERENTIABLE: [string, (x: Tensor) => Tensor, boolean][] = [
  ["exp", exp, false],
  ["log", log, true],
  ["sqrt", sqrt, true],
  ["rsqrt", rsqrt, true],
  ["pow 3", (x) => pow(x, 3), false],
  ["pow 2", (x) => pow(x, 2), false],
  ["pow -1.5", (x) => pow(x, -1.5), true],
  ["abs", abs, false],
  ["neg", neg, false],
  ["clamp", (x) => clamp(x, -0.5, 0.7), false],
  ["relu", relu, false],
  ["tanh", tanh, false],
  ["sigmoid", sigmoid, false],
  ["scale", (x) => scale(x, -1.5), false],
  ["shift", (x) => shift(x, 2), false],
];

Deno.test("unary gradients by finite differences (contiguous, transposed, narrowed)", async () => {
  for (const [name, f, pos] of DIFFERENTIABLE) {
    const seed = freshSeed();
    const v = (n: number) => (pos ? positive(n, seed) : undefined);
    const named = (e: Error) => {
      throw new Error(`${name}: ${e.message}`);
    };
    await gradCheck(f, [{ shape: [2, 3], values: v(6) }], { seed }).catch(named);
    await gradCheck((x) => f(transpose(x)), [{ shape: [3, 4], values: v(12) }], { seed })
      .catch(named);
    await gradCheck((x) => f(narrow(x, 1, 1, 2)), [{ shape: [2, 4], values: v(8) }], { seed })
      .catch(named);
  }
});

Deno.test({
  name: "unary webgpu parity: values and gradients at odd sizes and views",
  ignore: !hasWebGPU,
  async fn() {
    for (const [name, f, pos] of DIFFERENTIABLE) {
      for (const n of [1, 3, 17, 65, 129]) {
        const seed = freshSeed();
        const vals = pos ? positive(n, seed) : undefined;
        await gpuParity(`${name} [${n}]`, f, [{ shape: [n], values: vals }], { seed });
      }
      const seed = freshSeed();
      const vals = pos ? positive(17 * 3, seed) : undefined;
      await gpuParity(`${name} transposed`, (x) => f(transpose(x)), [
        { shape: [17, 3], values: vals },
      ], { seed });
      await gpuParity(`${name} narrowed`, (x) => f(narrow(x, 0, 2, 13)), [
        { shape: [17, 3], values: vals },
      ], { seed });
    }
    for (const [name, f] of [["sign", sign], ["round", round]] as const) {
      const vals = Array.from(randnArray(65, freshSeed()), (v) => v * 3);
      await gpuParity(name, f, [{ shape: [65], values: vals, grad: false }]);
    }
  },
});

Deno.test("unary wasm parity: odd sizes, views of several ranks, both threads", () =>
  splitSmall(async () => {
    for (const [name, f, pos] of DIFFERENTIABLE) {
      for (const n of [1, 3, 7, 33, 1000, 40001]) {
        const seed = freshSeed();
        const vals = pos ? positive(n, seed) : undefined;
        await wasmParity(`${name} [${n}]`, f, [{ shape: [n], values: vals }], { seed });
      }
      const seed = freshSeed();
      const vals = pos ? positive(2 * 17 * 3, seed) : undefined;
      await wasmParity(`${name} transposed`, (x) => f(transpose(x, 0, 2)), [
        { shape: [2, 17, 3], values: vals },
      ], { seed });
      await wasmParity(`${name} narrowed`, (x) => f(narrow(x, 1, 2, 13)), [
        { shape: [2, 17, 3], values: vals },
      ], { seed });
    }
    for (const p of [0, 1, 2, 3, 5, -1, -2, 0.5, 1.5, -0.75]) {
      const vals = positive(1001, freshSeed());
      await wasmParity(`pow ${p}`, (x) => pow(x, p), [{ shape: [1001], values: vals }]);
    }
    for (const [name, f] of [["sign", sign], ["round", round]] as const) {
      const vals = Array.from(randnArray(65, freshSeed()), (v) => v * 3);
      vals.push(0.5, 1.5, 2.5, -0.5, -2.5, 0, -0);
      await wasmParity(name, f, [{ shape: [72], values: vals, grad: false }], { exact: true });
    }
  }));

Deno.test("unary wasm transcendentals on special values match the CPU's f32 results", async () => {
  const specials = [
    ...[0, -0, Infinity, -Infinity, NaN, 1e-45, -1e-45, 1e-40, 1.17549435e-38, -1],
    ...[88.5, 88.8, 89, 100, -87.5, -100, -103.5, -110, 0.625, -0.625, 1e-8, 20, -20],
  ];
  const be = await wasm();
  const x32 = Float32Array.from(specials);
  const sweeps: [string, (x: Tensor) => Tensor, number?][] = [
    ["exp", exp],
    ["log", log],
    ["tanh", tanh],
    ["sigmoid", sigmoid],
    ["sqrt", sqrt],
    ["rsqrt", rsqrt],
    ["pow -1", (x) => pow(x, -1)],
    // exp(p·log x): log's error grows by |p·log x| (6.7 at 88.5: 4.4e-7 relative)
    ["pow 1.5", (x) => pow(x, 1.5), 1e-6],
    ["relu", relu],
    ["abs", abs],
    ["clamp", (x) => clamp(x, -1, 1)],
  ];
  for (const [name, f, rtol = 2.5e-7] of sweeps) {
    const want = Float32Array.from(await values(f(t64(x32, [x32.length]))));
    const got = await values(f(t64(x32, [x32.length], be)));
    // Denormal results may differ by a few of their steps (2^-149); the rest to 2 ulp.
    assertClose(got, want, { atol: 1e-44, rtol, msg: `wasm ${name} on specials:` });
  }
});
