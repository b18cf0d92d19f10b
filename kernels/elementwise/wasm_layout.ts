// Launch layout for the wasm kernels of the elementwise family: collapsing a launch's shape over
// its operands' strides (wasm.ts, the transpose tiles), and the work under which a launch stays
// on the calling thread.

import type { WasmContext } from "../../engine/wasm/context.ts";

/**
 * Element-cost units under which a launch stays on the calling thread. Memory-bound launches of
 * baby GPT's sizes (10^5 elements) gain little from a second thread here (the two cores share
 * the L3 bandwidth: add of 393,216: 55.8 µs on one, 54.0 on two), while waking a parked worker
 * costs about the pool's spin time (~210 µs, wasm.ts's header); so a launch needs 2^20 units: a
 * copy of 10^6 elements, a GELU of 87,000.
 */
export const PARALLEL_WORK = 1 << 20;
let parallelWork = PARALLEL_WORK;

/** Threads for a launch of `work` element-cost units (all of ctx's, or the caller alone). */
export function threadsFor(ctx: WasmContext, work: number): number {
  return work >= parallelWork ? ctx.threads : 1;
}

/**
 * Set the work under which launches stay on one thread (tests lower it to split small launches
 * over the threads); null restores PARALLEL_WORK.
 */
export function forceParallelWork(units: number | null): void {
  parallelWork = units ?? PARALLEL_WORK;
}

/** The collapsed iteration space: dims (inner last) and each operand's strides over them. */
export interface Collapsed {
  /** Dims, outer to inner (at least one). */
  dims: number[];
  /** Per operand, its strides over `dims` (elements). */
  strides: number[][];
}

/**
 * Drop size-1 dims and merge each dim into its inner neighbour where every operand steps
 * through the pair contiguously (stride[d] = stride[d+1]·dims[d+1]).
 */
export function collapse(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): Collapsed {
  const dims: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, o) => st[o][last] === s[d] * shape[d])) {
      dims[last] *= shape[d];
      strides.forEach((s, o) => (st[o][last] = s[d]));
    } else {
      dims.push(shape[d]);
      strides.forEach((s, o) => st[o].push(s[d]));
    }
  }
  if (dims.length === 0) return { dims: [1], strides: strides.map(() => [1]) };
  return { dims, strides: st };
}

/** Throw, naming the kernel, where the runtime's WebAssembly lacks SIMD128 (as matmul does). */
export function requireSimd(ctx: WasmContext, name: string): void {
  if (!ctx.features.simd) throw new Error(`${name} (wasm): this runtime lacks WebAssembly SIMD`);
}
