// The wasm matmul's GFLOP/s on 1 and 2 threads against this machine's measured 128-bit FMA
// peak: 256³, 512³ and 1024³ for A·B, A·Bᵀ and Aᵀ·B, then every product of a baby GPT training
// step (4 layers × 128 wide, 4 heads, B 12 × T 64 = 768 tokens, vocabulary 65: the
// projections x·Wᵀ, their gradients dY·W and dYᵀ·X with K = 768, the batched attention
// products of 48 heads × T 64 and their gradients), and the decode step's matrix-vector
// products (M = 1). The peak is a generated loop of 12 independent f32x4 multiply-adds
// (relaxed_madd where the runtime has it) per iteration, no memory traffic, on 1 and on all
// threads. Products are timed interleaved (every case and thread count once per round, ROUNDS
// rounds, each a few products back to back), so load from other processes on a shared machine
// hits all alike; the table gives the median and best round and the median as a percentage of
// the peak on the same thread count; "× 1 thread" is the 2-thread median over the 1-thread
// median of the same product (2.0 is perfect scaling; far below it, other processes had the
// second core).
// Run: deno bench --allow-read --allow-env --allow-sys tests/bench/wasm_matmul_bench.ts
// (WASM_BENCH_SIZES=1024 times only 1024³ of the cubes; WASM_BENCH_SET=cubes, model or decode
// times one group)

import { wasmArg, WasmBackend } from "../../engine/wasm/backend.ts";
import type { ModuleBuilder } from "../../engine/wasm/builder.ts";
import type { WasmArg } from "../../engine/wasm/context.ts";
import { type MatmulDims, matmulWasm } from "../../kernels/matmul/wasm.ts";

/** Sizes of the cubes (WASM_BENCH_SIZES=1024 for one; the Deno.bench cases are 1024³). */
const SIZES = (Deno.env.get("WASM_BENCH_SIZES") ?? "256,512,1024").split(",").map(Number);
const SET = Deno.env.get("WASM_BENCH_SET") ?? "all";
const ROUNDS = 7;
const THREADS = [1, 2];

/** One product: dims, and whether A and B are read transposed (a transposed view). */
interface Case {
  group: "cubes" | "model" | "decode";
  name: string;
  dims: MatmulDims;
  at?: boolean;
  bt?: boolean;
}

const cube = (n: number, name: string, at: boolean, bt: boolean): Case => ({
  group: "cubes",
  name: `${n}³ ${name}`,
  dims: { batch: 1, M: n, N: n, K: n },
  at,
  bt,
});
const shape = (
  group: Case["group"],
  name: string,
  [batch, M, N, K]: number[],
  at = false,
  bt = false,
): Case => ({ group, name, dims: { batch, M, N, K }, at, bt });

const CASES: Case[] = [
  ...SIZES.flatMap((n) => [
    cube(n, "A·B", false, false),
    cube(n, "A·Bᵀ", false, true),
    cube(n, "Aᵀ·B", true, false),
  ]),
  shape("model", "qkv x·Wᵀ [768×128]·[128×384]", [1, 768, 384, 128], false, true),
  shape("model", "attn proj x·Wᵀ [768×128]·[128×128]", [1, 768, 128, 128], false, true),
  shape("model", "fc x·Wᵀ [768×128]·[128×512]", [1, 768, 512, 128], false, true),
  shape("model", "fc proj x·Wᵀ [768×512]·[512×128]", [1, 768, 128, 512], false, true),
  shape("model", "lm_head x·Wᵀ [768×128]·[128×65]", [1, 768, 65, 128], false, true),
  shape("model", "q·kᵀ 48×[64×32]·[32×64]", [48, 64, 64, 32]),
  shape("model", "att·v 48×[64×64]·[64×32]", [48, 64, 32, 64]),
  shape("model", "d(att) = dy·vᵀ 48×[64×32]·[32×64]", [48, 64, 64, 32], false, true),
  shape("model", "dv = attᵀ·dy 48×[64×64]ᵀ·[64×32]", [48, 64, 32, 64], true, false),
  shape("model", "dX qkv dY·W [768×384]·[384×128]", [1, 768, 128, 384]),
  shape("model", "dX fc dY·W [768×512]·[512×128]", [1, 768, 128, 512]),
  shape("model", "dX fc proj dY·W [768×128]·[128×512]", [1, 768, 512, 128]),
  shape("model", "dW qkv dYᵀ·X [384×768]·[768×128]", [1, 384, 128, 768], true),
  shape("model", "dW fc dYᵀ·X [512×768]·[768×128]", [1, 512, 128, 768], true),
  shape("model", "dW fc proj dYᵀ·X [128×768]·[768×512]", [1, 128, 512, 768], true),
  shape("model", "dW attn proj dYᵀ·X [128×768]·[768×128]", [1, 128, 128, 768], true),
  shape("model", "dW lm_head dYᵀ·X [65×768]·[768×128]", [1, 65, 128, 768], true),
  shape("decode", "qkv x·Wᵀ [1×128]·[128×384]", [1, 1, 384, 128], false, true),
  shape("decode", "fc x·Wᵀ [1×128]·[128×512]", [1, 1, 512, 128], false, true),
  shape("decode", "fc proj x·Wᵀ [1×512]·[512×128]", [1, 1, 128, 512], false, true),
  shape("decode", "lm_head x·Wᵀ [1×128]·[128×65]", [1, 1, 65, 128], false, true),
  shape("decode", "q·Kᵀ 4×[1×32]·[32×64]", [4, 1, 64, 32], false, true),
  shape("decode", "att·V 4×[1×64]·[64×32]", [4, 1, 32, 64]),
].filter((c) => SET === "all" || c.group === SET);

const be = await WasmBackend.create({ threads: Math.max(...THREADS), idleMs: 5000 });
const ctx = be.ctx;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/** A loop of 12 independent f32x4 multiply-adds per iteration: the core's FMA throughput. */
function peakModule(b: ModuleBuilder): void {
  b.export("fma", ["i32", "i32", "i32", "i32"], [], (f) => {
    const [tid, , iters, out] = f.params;
    const accs = Array.from({ length: 12 }, () => f.local("v128"));
    const [x, y] = [f.local("v128"), f.local("v128")];
    const i = f.local("i32");
    f.f32.const(1.0000001);
    f.f32x4.splat();
    f.set(x);
    f.f32.const(0.9999999);
    f.f32x4.splat();
    f.set(y);
    f.for(i, 0, iters, 1, () => {
      for (const a of accs) {
        f.get(x);
        f.get(y);
        f.get(a);
        if (ctx.features.relaxedSimd) f.f32x4.relaxedMadd();
        else (f.f32x4.mul(), f.f32x4.add());
        f.set(a);
      }
    });
    f.add(out, () => f.mul(tid, 16)); // keep the sums alive
    f.get(accs[0]);
    for (const a of accs.slice(1)) (f.get(a), f.f32x4.add());
    f.v128.store();
  });
}

/** GFLOP/s of the FMA loop on `threads` threads (median of 7). */
function peak(threads: number): number {
  const mod = ctx.module("bench|fma-peak", peakModule);
  const out = be.heap.alloc(16 * threads);
  const iters = 2e7;
  ctx.run(mod, "fma", [1000, out], threads);
  const rates: number[] = [];
  for (let r = 0; r < 7; r++) {
    const t0 = performance.now();
    ctx.run(mod, "fma", [iters, out], threads);
    rates.push((iters * 12 * 8 * threads) / ((performance.now() - t0) * 1e6));
  }
  be.heap.free(out);
  return median(rates);
}

/** An operand [batch, rows, cols] in the heap, read transposed (column-major) when `t`. */
function matrix(batch: number, rows: number, cols: number, t = false): WasmArg {
  const n = batch * rows * cols;
  const ptr = be.heap.alloc(4 * n, "bench operand");
  const v = be.heap.f32(ptr, n);
  for (let i = 0; i < n; i++) v[i] = ((i * 7919) % 1000) / 1000 - 0.5;
  const arg = wasmArg(ptr, [batch, rows, cols]);
  return t ? { ...arg, strides: [rows * cols, 1, rows] } : arg;
}

function product(d: MatmulDims, [a, b, c]: WasmArg[], threads: number): void {
  ctx.threadLimit = threads;
  ctx.scoped(() => matmulWasm([a, b], [c], d, ctx));
}

const peaks = new Map(THREADS.map((t) => [t, peak(t)]));
const runs = CASES.map((c) => {
  const { batch, M, N, K } = c.dims;
  const ops = [matrix(batch, M, K, c.at), matrix(batch, K, N, c.bt), matrix(batch, M, N)];
  const flops = 2 * batch * M * N * K;
  const reps = Math.max(1, Math.round(4e8 / flops / (c.group === "decode" ? 40 : 1)));
  return { c, ops, flops, reps, rates: new Map(THREADS.map((t) => [t, [] as number[]])) };
});
for (const r of runs) for (const t of THREADS) product(r.c.dims, r.ops, t); // compile, tier up
for (let round = 0; round < ROUNDS; round++) {
  for (const r of runs) {
    for (const t of THREADS) {
      const t0 = performance.now();
      for (let i = 0; i < r.reps; i++) product(r.c.dims, r.ops, t);
      r.rates.get(t)!.push((r.flops * r.reps) / ((performance.now() - t0) * 1e6));
    }
  }
}
console.log(`\nwasm matmul GFLOP/s (f32), ${be.describe()}`);
console.log(
  `measured 128-bit FMA peak: ${
    [...peaks].map(([t, p]) => `${p.toFixed(1)} (${t} thread${t > 1 ? "s" : ""})`).join(", ")
  }`,
);
console.log(`| product | threads | median GFLOP/s | best | µs (median) | % of peak | × 1 thread |`);
console.log(`| --- | --- | --- | --- | --- | --- | --- |`);
for (const r of runs) {
  const one = median(r.rates.get(1)!);
  for (const t of THREADS) {
    const rates = r.rates.get(t)!;
    const med = median(rates);
    console.log(
      `| ${r.c.name} | ${t} | ${med.toFixed(1)} | ${Math.max(...rates).toFixed(1)} | ` +
        `${(r.flops / med / 1e3).toFixed(1)} | ${(100 * med / peaks.get(t)!).toFixed(0)}% | ` +
        `${(med / one).toFixed(2)} |`,
    );
  }
}
console.log(
  `${be.pool.takenBack} worker shares were taken back and run by the calling thread ` +
    `(the worker had not started: asleep or not scheduled)`,
);
for (const r of runs) for (const x of r.ops) be.heap.free(x.ptr);

for (const threads of THREADS) {
  const d = { batch: 1, M: 1024, N: 1024, K: 1024 };
  const ops = [matrix(1, 1024, 1024), matrix(1, 1024, 1024), matrix(1, 1024, 1024)];
  Deno.bench({
    name: `wasm matmul 1024³ A·B, ${threads} thread${threads > 1 ? "s" : ""}`,
    group: "wasm matmul 1024³",
    baseline: threads === 1,
    n: 5,
    warmup: 1,
    fn: () => product(d, ops, threads),
  });
}
