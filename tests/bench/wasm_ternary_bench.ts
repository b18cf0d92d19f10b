// The wasm ternary × int8 product at the issue's three shapes, on 1 and 2 threads: decode
// 1×2048·2048×2048 and 1×4096·4096×11008 (GEMV), prefill 128×2048·2048×2048 (GEMM), against
// the targets (3× bitnet.cpp's I2_S kernel on this CPU: 0.066 ms, 0.7 ms, 7 ms). Each shape's
// thread counts are timed interleaved, ROUNDS rounds of a batch of products each; the table
// gives the median and best ms per product and the weight bytes streamed per second (packed:
// N·K/4 bytes) at the median. Operands are random codes and bytes from a fast LCG.
// Run: deno bench --allow-read --allow-env --allow-sys tests/bench/wasm_ternary_bench.ts

import { wasmArg, WasmBackend } from "../../engine/wasm/backend.ts";
import type { WasmArg } from "../../engine/wasm/context.ts";
import { int8RowWords, ternaryRowWords } from "../../kernels/ternary/format.ts";
import { type TernaryDims, ternaryWasm } from "../../kernels/ternary/wasm.ts";

/** [T, K, N, target ms]. */
const SHAPES: [number, number, number, number][] = [
  [1, 2048, 2048, 0.066],
  [1, 4096, 11008, 0.7],
  [128, 2048, 2048, 7],
];
const THREADS = [1, 2];
const ROUNDS = 9;

const be = await WasmBackend.create({ threads: Math.max(...THREADS), idleMs: 5000 });
const ctx = be.ctx;

let seed = 0x9e3779b9;
function lcg(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed;
}

function tensor(n: number, shape: number[], dtype: "u32" | "i32" | "f32", fill: () => number) {
  const ptr = be.heap.alloc(4 * n, "bench operand");
  const v = be.heap.u32(ptr, n);
  for (let i = 0; i < n; i++) v[i] = fill();
  return wasmArg(ptr, shape, dtype);
}

/** A packed word of 16 random codes in {0, 1, 2}. */
function codes(): number {
  let w = 0;
  for (let i = 0; i < 16; i++) w = w * 4 + (lcg() % 3);
  return w >>> 0;
}

interface Shape {
  dims: TernaryDims;
  inputs: WasmArg[];
  y: WasmArg;
}

function shape(T: number, K: number, N: number): Shape {
  const KW = ternaryRowWords(K);
  return {
    dims: { T, K, N, scale: 1.25, raw: false, bias: false },
    inputs: [
      tensor(N * KW, [N, KW], "u32", codes),
      tensor(T * int8RowWords(K), [T, int8RowWords(K)], "u32", lcg),
      tensor(T, [T], "f32", () => 0x42fe0000), // s_x = 127
      tensor(T, [T], "i32", () => 0),
    ],
    y: tensor(T * N, [T, N], "f32", () => 0),
  };
}

function product(s: Shape, threads: number): void {
  ctx.threadLimit = threads;
  ctx.scoped(() => ternaryWasm(s.inputs, [s.y], s.dims, ctx));
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const rows: string[] = [];
const shapes = SHAPES.map(([T, K, N]) => shape(T, K, N));
for (const [i, [T, K, N, target]] of SHAPES.entries()) {
  const s = shapes[i];
  const reps = Math.max(1, Math.round(30 / (T * N * K * 1e-9 * 2 + 0.01)));
  const ms = THREADS.map(() => [] as number[]);
  for (const t of THREADS) for (let w = 0; w < 10; w++) product(s, t); // compile, tier up
  for (let r = 0; r < ROUNDS; r++) {
    THREADS.forEach((t, j) => {
      const t0 = performance.now();
      for (let k = 0; k < reps; k++) product(s, t);
      ms[j].push((performance.now() - t0) / reps);
    });
  }
  THREADS.forEach((t, j) => {
    const med = median(ms[j]);
    const gbs = (N * K) / 4 / (med * 1e6);
    rows.push(
      `| ${T}×${K}·${K}×${N} | ${t} | ${med.toFixed(4)} | ${Math.min(...ms[j]).toFixed(4)} | ` +
        `${gbs.toFixed(1)} | ${target} | ${
          med <= target ? "met" : `${(med / target).toFixed(2)}×`
        } |`,
    );
  });
}
console.log(`\nwasm ternary × int8 (ms per product), ${be.describe()}`);
console.log(`| shape | threads | median ms | best ms | W GB/s | target ms | vs target |`);
console.log(`| --- | --- | --- | --- | --- | --- | --- |`);
console.log(rows.join("\n"));
console.log(
  `${be.pool.takenBack} worker shares were taken back and run by the calling thread ` +
    `(the worker had not started: asleep or not scheduled)`,
);

for (const [i, [T, K, N]] of SHAPES.entries()) {
  Deno.bench({
    name: `wasm ternary ${T}×${K}·${K}×${N}, 2 threads`,
    n: T > 1 ? 20 : 200,
    warmup: 5,
    fn: () => product(shapes[i], 2),
  });
}
