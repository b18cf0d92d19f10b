// For wasm parity tests: lower the wasm kernels' single-thread threshold while a check runs, so
// launches of a few thousand elements are split over the threads (the split is what the one-vs-
// two-thread comparison of wasmParity exercises; the default keeps such launches on one thread).

import { forceParallelWork } from "../../kernels/elementwise/wasm.ts";

/** Element-cost units over which launches are split while `fn` runs. */
export const SMALL_WORK = 2048;

/** Run `fn` with launches of SMALL_WORK units or more split over the threads. */
export async function splitSmall<T>(fn: () => Promise<T>): Promise<T> {
  forceParallelWork(SMALL_WORK);
  try {
    return await fn();
  } finally {
    forceParallelWork(null);
  }
}
