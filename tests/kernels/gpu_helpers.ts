// Helpers for backend-vs-CPU kernel tests: poison the buffer pool with NaN so an output element a
// kernel forgets to write fails the comparison, run one function on the CPU reference and on a
// backend (values and gradients) on the same random inputs (`gpuParity` on WebGPU, `wasmParity`
// on wasm, where one and two threads must also give identical bytes), and repeat a check in each
// row-kernel mode.

import type { Backend } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { fromArray } from "../../engine/creation.ts";
import { isFloat } from "../../engine/dtype.ts";
import { mul, sum } from "../../kernels/mod.ts";
import { forceRowMode, type RowMode } from "../../kernels/rows/rows.ts";
import { assertClose, cpu, freshSeed, gpu, randnArray, t64, values, wasm } from "../util.ts";

/**
 * Fill pooled buffers of the size classes of `bytes` with NaN and free them again, so the next
 * allocations of those sizes (the op's outputs) start out poisoned. Call it after creating the
 * inputs and right before the op under test. A no-op on other backends than webgpu and wasm.
 */
export function poisonPool(backend: Backend, bytes: number | readonly number[], count = 4): void {
  if (backend.name !== "webgpu" && backend.name !== "wasm") return;
  for (const b of typeof bytes === "number" ? [bytes] : bytes) {
    const n = Math.max(1, Math.ceil(b / 4));
    const held = Array.from({ length: count }, () => backend.alloc(n, "f32"));
    for (const s of held) backend.write(s, new Float32Array(n).fill(NaN));
    for (const s of held) backend.free(s);
  }
}

/** One input of a parity check: its shape, optional values, and whether it gets a gradient. */
export interface ParityInput {
  shape: number[];
  values?: ArrayLike<number>;
  grad?: boolean;
}

/** Options of `gpuParity`. */
export interface ParityOptions {
  seed?: number;
  /** Relative tolerance, against |ref| and the largest |ref| (default 1e-4). */
  tol?: number;
  /** Check gradients too (default: when the output is a float tensor). */
  grad?: boolean;
  /** Integer outputs must match exactly (default true for i32/u32 outputs). */
  exact?: boolean;
}

function maxAbs(v: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]));
  return m;
}

function compare(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, msg: string) {
  assertClose(got, want, { rtol: tol, atol: tol * Math.max(1e-3, maxAbs(want)), msg });
}

/**
 * Run `f` on the CPU backend (float64) and on WebGPU (float32) over the same random inputs and
 * compare the outputs and the gradients of sum(f(x) · w) for random weights w.
 */
export async function gpuParity(
  name: string,
  f: (...xs: Tensor[]) => Tensor,
  inputs: ParityInput[],
  opts: ParityOptions = {},
): Promise<void> {
  await parity(await gpu(), name, f, inputs, opts);
}

/**
 * `gpuParity` on the wasm backend, run with two threads and with one: both must equal the CPU
 * reference to the tolerance and each other to the bit (outputs and gradients).
 */
export async function wasmParity(
  name: string,
  f: (...xs: Tensor[]) => Tensor,
  inputs: ParityInput[],
  opts: ParityOptions = {},
): Promise<void> {
  const be = await wasm();
  const seed = opts.seed ?? freshSeed();
  const runs: Float64Array[][] = [];
  for (const threads of [2, 1]) {
    be.ctx.threadLimit = threads;
    try {
      runs.push(
        await parity(be, `${name} (${threads} thread${threads > 1 ? "s" : ""})`, f, inputs, {
          ...opts,
          seed,
        }),
      );
    } finally {
      be.ctx.threadLimit = Infinity;
    }
  }
  const [two, one] = runs;
  for (let k = 0; k < two.length; k++) {
    assertClose(one[k], two[k], {
      atol: 0,
      rtol: 0,
      msg: `${name} (seed ${seed}) 1 vs 2 threads, result ${k}:`,
    });
  }
}

/**
 * Run `f` on the CPU backend (float64) and on `backend` over the same random inputs; compare the
 * outputs and the gradients of sum(f(x) · w) for random weights w. Returns what `backend` gave
 * (output, then each input's gradient).
 */
async function parity(
  g: Backend,
  name: string,
  f: (...xs: Tensor[]) => Tensor,
  inputs: ParityInput[],
  opts: ParityOptions,
): Promise<Float64Array[]> {
  const seed = opts.seed ?? freshSeed();
  const tol = opts.tol ?? 1e-4;
  const vals = inputs.map((x, i) =>
    Float64Array.from(x.values ?? randnArray(x.shape.reduce((a, b) => a * b, 1), seed + i))
  );
  const make = (b: Backend) =>
    vals.map((v, i) => t64(v, inputs[i].shape, b, inputs[i].grad ?? true));
  const xc = make(cpu);
  const yc = f(...xc);
  const xg = make(g);
  const bytes = [yc.size * 4, ...vals.map((v) => v.length * 4)];
  poisonPool(g, bytes);
  const yg = f(...xg);
  const msg = `${name} (seed ${seed})`;
  const want = await values(yc);
  const got = await values(yg);
  const results = [got];
  if (opts.exact ?? !isFloat(yc.dtype)) {
    assertClose(got, want, { atol: 0, rtol: 0, msg: `${msg} forward` });
  } else {
    compare(got, want, tol, `${msg} forward:`);
  }
  if (!(opts.grad ?? isFloat(yc.dtype)) || !yc.requiresGrad) return results;
  const w = randnArray(yc.size, seed + 99);
  sum(mul(yc, t64(w, [...yc.shape]))).backward();
  const loss = sum(mul(yg, fromArray(Float32Array.from(w), [...yg.shape], { backend: g })));
  poisonPool(g, bytes);
  loss.backward();
  for (let k = 0; k < inputs.length; k++) {
    if (!(inputs[k].grad ?? true)) continue;
    const gc = xc[k].grad ? await values(xc[k].grad!) : new Float64Array(vals[k].length);
    const gg = xg[k].grad ? await values(xg[k].grad!) : new Float64Array(vals[k].length);
    compare(gg, gc, tol, `${msg} grad of input ${k}:`);
    results.push(gg);
  }
  return results;
}

/**
 * Run `fn` once in each execution mode of the fused row kernels (kernels/rows/rows.ts), forced,
 * restoring the automatic choice afterwards.
 */
export async function inEachRowMode(fn: (mode: RowMode) => Promise<void>): Promise<void> {
  try {
    for (const mode of ["workgroup", "invocation"] as const) {
      forceRowMode(mode);
      await fn(mode);
    }
  } finally {
    forceRowMode(null);
  }
}
