// Test helpers: seeded inputs, closeness checks with useful mismatch reports, central-difference
// gradient checks in float64 on the CPU backend, and the WebGPU availability flag.

import type { Tensor } from "../engine/tensor.ts";
import type { TypedArray } from "../engine/dtype.ts";
import { Generator } from "../engine/random.ts";
import { cpuBackend, webgpuBackend } from "../engine/device.ts";
import { WasmBackend } from "../engine/wasm/backend.ts";
import type { Backend } from "../engine/backend.ts";
import { fromArray } from "../engine/creation.ts";
import { mul, sum } from "../kernels/mod.ts";

/** True when a WebGPU adapter exists (GPU tests use `ignore: !hasWebGPU`). */
export const hasWebGPU: boolean = await (async () => {
  try {
    await webgpuBackend();
    return true;
  } catch {
    return false;
  }
})();

/** The WebGPU backend (only call when hasWebGPU). */
export function gpu(): Promise<Backend> {
  return webgpuBackend();
}

let wasmTest: Promise<WasmBackend> | null = null;

/**
 * A wasm backend of the tests' own with two threads, whatever the machine's cores (tests lower
 * `ctx.threadLimit` to compare with one). Its workers park when idle, so the process can exit.
 */
export function wasm(): Promise<WasmBackend> {
  return wasmTest ??= WasmBackend.create({ threads: 2 });
}

/** The CPU backend. */
export const cpu: Backend = cpuBackend();

let seedCounter = 1;

/** A fresh seed per call, printed on failure through the messages that use it. */
export function freshSeed(): number {
  return (Date.now() % 100000) * 100 + seedCounter++;
}

/** Seeded normal values as float64. */
export function randnArray(n: number, seed: number): Float64Array {
  return new Generator(seed).normal(n);
}

/** Assert |actual - expected| <= atol + rtol·|expected| elementwise, reporting the first miss. */
export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  { atol = 1e-5, rtol = 1e-4, msg = "" } = {},
): void {
  if (actual.length !== expected.length) {
    throw new Error(`${msg} length ${actual.length} != expected ${expected.length}`);
  }
  let bad = 0;
  let first = -1;
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i];
    const e = expected[i];
    const err = Math.abs(a - e);
    const ok = err <= atol + rtol * Math.abs(e) || (Number.isNaN(a) && Number.isNaN(e)) ||
      a === e;
    if (!ok) {
      if (first < 0) first = i;
      bad++;
      worst = Math.max(worst, err);
    }
  }
  if (bad > 0) {
    throw new Error(
      `${msg} ${bad}/${actual.length} elements differ (atol ${atol}, rtol ${rtol}); first at ` +
        `${first}: got ${actual[first]}, expected ${expected[first]}; worst abs err ${worst}`,
    );
  }
}

/** Tensor from float64 values on a backend (f64 on cpu, f32 on webgpu unless told). */
export function t64(
  values: ArrayLike<number>,
  shape: number[],
  backend: Backend = cpu,
  requiresGrad = false,
): Tensor {
  const dtype = backend.name === "cpu" ? "f64" : "f32";
  const arr = dtype === "f64" ? Float64Array.from(values) : Float32Array.from(values);
  return fromArray(arr, shape, { backend, dtype, requiresGrad });
}

/**
 * Check autograd against central differences in float64 on the CPU backend. `f` maps the inputs
 * to any tensor; the check differentiates sum(f(x) · w) for fixed random weights w.
 */
export async function gradCheck(
  f: (...xs: Tensor[]) => Tensor,
  inputs: { shape: number[]; values?: ArrayLike<number> }[],
  { seed = freshSeed(), eps = 1e-6, atol = 1e-7, rtol = 1e-6 } = {},
): Promise<void> {
  const vals = inputs.map((x, i) => {
    const n = x.shape.reduce((a, b) => a * b, 1);
    return Float64Array.from(x.values ?? randnArray(n, seed + i));
  });
  const xs = vals.map((v, i) => t64(v, inputs[i].shape, cpu, true));
  const y = f(...xs);
  const w = t64(randnArray(y.size, seed + 99), [...y.shape]);
  const loss = sum(mul(y, w));
  loss.backward();
  const wv = await w.data();
  const evalLoss = async (vs: Float64Array[]) => {
    const out = await f(...vs.map((v, i) => t64(v, inputs[i].shape))).data();
    let s = 0;
    for (let i = 0; i < out.length; i++) s += out[i] * wv[i];
    return s;
  };
  for (let k = 0; k < xs.length; k++) {
    const analytic = xs[k].grad ? await xs[k].grad!.data() : new Float64Array(vals[k].length);
    const numeric = new Float64Array(vals[k].length);
    for (let i = 0; i < vals[k].length; i++) {
      const orig = vals[k][i];
      vals[k][i] = orig + eps;
      const lp = await evalLoss(vals);
      vals[k][i] = orig - eps;
      const lm = await evalLoss(vals);
      vals[k][i] = orig;
      numeric[i] = (lp - lm) / (2 * eps);
    }
    assertClose(analytic, numeric, { atol, rtol, msg: `gradCheck input ${k} (seed ${seed}):` });
  }
}

/** Read a tensor as float64 values. */
export async function values(t: Tensor): Promise<Float64Array> {
  return Float64Array.from(await t.data() as TypedArray);
}

/**
 * Collect garbage and let FinalizationRegistry callbacks run, so pool counters reflect only
 * live tensors (tensors dropped without dispose() are released by the finalizer at GC time).
 * Needs `--v8-flags=--expose-gc` (the test task passes it); a no-op without it.
 */
export async function settleGarbage(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return;
  for (let i = 0; i < 2; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 0));
  }
}
