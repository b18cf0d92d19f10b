// The wasm row kernels (softmax, cross-entropy, norms, embedding, the BitLinear quantisers,
// sampling) at the baby GPT's shapes (B·T = 768 tokens, C = 128, vocabulary 65, 4 heads of
// T = 64), each on 1 and 2 threads against its CPU reference run on views of the same heap
// (what the wasm backend ran before these kernels existed). µs per call, the median of
// ROUNDS rounds taken interleaved (every kernel and thread count once per round), so load from
// other processes on a shared machine hits all alike.
// Run: deno run -A tests/bench/wasm_rows_bench.ts  (WASM_ROWS_BENCH=softmax,norm picks cases)

import type { BoundArg, Kernel } from "../../engine/backend.ts";
import type { DType } from "../../engine/dtype.ts";
import { WasmBackend } from "../../engine/wasm/backend.ts";
import { Generator } from "../../engine/random.ts";
import { BENCH_CASES, type BenchCase } from "./wasm_rows_cases.ts";

const ROUNDS = 9;
const be = await WasmBackend.create({ threads: 2, idleMs: 10_000 });
const pick = Deno.env.get("WASM_ROWS_BENCH")?.split(",");
const cases = BENCH_CASES.filter((c) => !pick || pick.some((p) => c.name.includes(p)));

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** Storage of `shape` filled by `fill` (default: normal values, or small integers for i32). */
function arg(shape: number[], dtype: DType, fill?: (i: number) => number): BoundArg {
  const size = shape.reduce((a, b) => a * b, 1);
  const storage = be.alloc(size, dtype);
  const v = be.view(storage);
  const g = new Generator(size);
  const normal = g.normal(size);
  for (let i = 0; i < size; i++) v[i] = fill ? fill(i) : dtype === "i32" ? i % 7 : normal[i];
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  return { storage, info: { shape, strides, offset: 0, dtype } };
}

/** Median µs of an empty 2-thread launch: back to back, and after 1 ms without jobs. */
function forkJoinCost(): { one: number; hot: number; parked: number } {
  const mod = be.ctx.module("bench|noop", (b) => b.export("noop", ["i32", "i32"], [], () => {}));
  const time = (threads: number, idleMs: number) => {
    const xs: number[] = [];
    for (let i = 0; i < (idleMs ? 300 : 3000); i++) {
      const until = performance.now() + idleMs;
      while (performance.now() < until) { /* let the workers block */ }
      const t0 = performance.now();
      be.ctx.run(mod, "noop", [], threads);
      xs.push((performance.now() - t0) * 1000);
    }
    return median(xs);
  };
  return { one: time(1, 0), hot: time(2, 0), parked: time(2, 1) };
}

/** µs per call of `kernel` (its wasm implementation, or without it the CPU reference). */
function time(c: BenchCase, kernel: Kernel<unknown>, ins: BoundArg[], outs: BoundArg[]): number {
  const reps = c.reps ?? 20;
  const t0 = performance.now();
  for (let i = 0; i < reps; i++) be.run(kernel, ins, outs, c.params);
  return ((performance.now() - t0) * 1000) / reps;
}

const rows = cases.map((c) => {
  const ins = c.inputs.map(([shape, dtype, fill], i) => {
    const a = arg(shape, dtype ?? "f32", fill);
    const strides = c.strides?.[i];
    return strides ? { ...a, info: { ...a.info, shape: c.outputs[0][0], strides } } : a;
  });
  const outs = c.outputs.map(([shape, dtype]) => arg(shape, dtype ?? "f32", () => 0));
  const fallback = { ...c.kernel, wasm: undefined } as Kernel<unknown>;
  return {
    c,
    ins,
    outs,
    fallback,
    t: { cpu: [] as number[], 1: [] as number[], 2: [] as number[] },
  };
});
for (const r of rows) {
  for (const threads of [1, 2]) {
    be.ctx.threadLimit = threads;
    time(r.c, r.c.kernel, r.ins, r.outs); // compile, tier up
  }
}
for (let round = 0; round < ROUNDS; round++) {
  for (const r of rows) {
    be.ctx.threadLimit = 1;
    if (round < 3) r.t.cpu.push(time({ ...r.c, reps: 2 }, r.fallback, r.ins, r.outs));
    for (const threads of [1, 2] as const) {
      be.ctx.threadLimit = threads;
      r.t[threads].push(time(r.c, r.c.kernel, r.ins, r.outs));
    }
  }
}
be.ctx.threadLimit = Infinity;
const forkJoin = forkJoinCost();
console.log(`\nwasm row kernels, µs per call (median of ${ROUNDS} rounds), ${be.describe()}`);
console.log(
  `fork/join of an empty kernel on 2 threads: ${forkJoin.hot.toFixed(1)} µs back to back, ` +
    `${forkJoin.parked.toFixed(1)} µs after 1 ms idle (a worker blocked in Atomics.wait; the ` +
    `calling thread alone: ${forkJoin.one.toFixed(2)} µs)`,
);
console.log("| kernel | shape | CPU reference on the heap | wasm, 1 thread | wasm, 2 threads |");
console.log("| --- | --- | --- | --- | --- |");
for (const r of rows) {
  const f = (xs: number[]) => median(xs).toFixed(1);
  console.log(`| ${r.c.name} | ${r.c.shape} | ${f(r.t.cpu)} | ${f(r.t[1])} | ${f(r.t[2])} |`);
}
be.dispose();
