// Helpers for the wasm kernel tests: count how often kernels' wasm implementations run (so a
// test fails when an op silently takes the CPU fallback instead), with every row kernel split
// over all threads, and the odd sizes that hit SIMD tails and uneven thread splits.

import type { WasmImpl } from "../../engine/wasm/context.ts";
import { forceParallel } from "../../kernels/rows/wasm_launch.ts";

/** Row lengths and row counts that hit every f32x4 tail (len % 4) and uneven thread splits. */
export const ODD_SIZES = [1, 3, 7, 33, 65, 1001];

/** A kernel as far as counting goes: its name and (mutable here) wasm implementation. */
type Counted = { readonly name: string; wasm?: WasmImpl<unknown> };

/**
 * Run `fn` with the wasm implementation of each kernel wrapped in a counter; returns the number
 * of calls per kernel (in order). Throws when a kernel has no wasm implementation. Meanwhile
 * the row kernels split every launch over all threads (forceParallel), so the small shapes
 * that hit tails and chunk edges also run the multi-threaded path.
 */
export async function countWasmCalls(
  kernels: readonly { readonly name: string }[],
  fn: () => Promise<void> | void,
): Promise<number[]> {
  const counts = kernels.map(() => 0);
  const saved = kernels.map((k) => {
    const impl = (k as Counted).wasm;
    if (!impl) throw new Error(`${k.name} has no wasm implementation`);
    return impl;
  });
  kernels.forEach((k, i) => {
    (k as Counted).wasm = (ins, outs, p, ctx) => {
      counts[i]++;
      saved[i](ins, outs, p, ctx);
    };
  });
  forceParallel(true);
  try {
    await fn();
  } finally {
    forceParallel(false);
    kernels.forEach((k, i) => ((k as Counted).wasm = saved[i]));
  }
  return counts;
}
