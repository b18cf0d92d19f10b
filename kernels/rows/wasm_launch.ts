// How the wasm row kernels (and the matrix-vector products) launch: which thread count the
// work pays for, and items claimed in chunks from a shared counter (RowGen.eachChunk in
// wasm_math.ts), so results never depend on the thread count and a descheduled worker delays a
// launch by one chunk at most.

import { byteSize } from "../../engine/dtype.ts";
import type { WasmArg, WasmContext, WasmKernelModule } from "../../engine/wasm/context.ts";

/**
 * Estimated serial ns below which a kernel runs on the calling thread alone. A fork/join costs
 * ~1 µs when the workers spin (they do for 200 µs after a job) and 10-20 µs when one must be
 * woken on an otherwise idle machine (~200 µs when other processes hold the cores:
 * tests/bench/wasm_rows_bench.ts measures both); items are claimed in chunks, so a late or
 * descheduled worker delays the join by one chunk at most.
 */
export const SERIAL_NS = 20_000;
/** Chunks per thread of a launch: enough to balance, few enough to cost nothing. */
const CHUNKS_PER_THREAD = 8;

let splitAlways = false;

/**
 * Split every launch over all threads however small (tests: the parallel path at the sizes
 * where tails and chunk edges are hit); false restores the SERIAL_NS rule.
 */
export function forceParallel(on: boolean): void {
  splitAlways = on;
}

/** Threads for `items` independent items of `ns` serial work in all. */
export function threadsFor(threads: number, items: number, ns: number): number {
  return ns < SERIAL_NS && !splitAlways ? 1 : Math.max(1, Math.min(threads, items));
}

/**
 * Run export `fn` as fn(tid, n, items, chunk, claim, ...args) on the threads its estimated
 * serial time `ns` pays for (at most `most`): items are claimed in chunks (RowGen.eachChunk)
 * from a counter zeroed here.
 */
export function runItems(
  ctx: WasmContext,
  mod: WasmKernelModule,
  fn: string,
  items: number,
  ns: number,
  args: readonly number[],
  most = Infinity,
): void {
  const threads = Math.min(most, threadsFor(ctx.threads, items, ns));
  const chunk = Math.max(1, Math.ceil(items / (CHUNKS_PER_THREAD * threads)));
  const claim = ctx.scratch(4);
  ctx.heap.i32(claim, 1)[0] = 0;
  ctx.run(mod, fn, [items, threads > 1 ? chunk : Math.max(1, items), claim, ...args], threads);
}

/** Byte address of a wasm argument's element 0. */
export function addr(a: WasmArg): number {
  return a.ptr + byteSize(a.dtype) * a.offset;
}
