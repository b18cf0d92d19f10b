// Ternary × int8 GEMV/GEMM against our f32 matmul (kernels/matmul/matmul.ts) on the same adapter
// and shapes, in one run: decode 1×2048·2048×2048 and 1×4096·4096×11008, prefill
// 128×2048·2048×2048. A table is printed first from our own timing: ms per product, effective GB/s
// of weight bytes (packed u32 for ternary, f32 for the baseline) and the speed-up over f32. The
// candidates of a shape are timed interleaved (f32, ternary, quantiser + ternary, the other integer
// path, then again, ROUNDS times; each turn queues a batch of products back to back with one sync,
// whose fixed wait is measured once and subtracted) and each gets its median, so load from other
// processes on a shared machine hits all of them alike. Warm-up first: compiles and autotuning stay
// out. The f32 weight [K, N] of the 11008-wide shape is 180 MB, over llvmpipe's 128 MiB binding
// limit, so it runs as column blocks (the packed ternary weight is 11 MB and needs no split).
// Run: deno run -A tests/bench/ternary_bench.ts   (or deno task bench, which adds Deno.bench cases)

import type { Tensor } from "../../engine/tensor.ts";
import { fromArray } from "../../engine/creation.ts";
import { webgpuBackend } from "../../engine/device.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { matmul } from "../../kernels/matmul/matmul.ts";
import { ternaryRowWords } from "../../kernels/ternary/format.ts";
import { packActivations, type QuantizedActivations } from "../../kernels/ternary/quant.ts";
import {
  ternaryConfig,
  ternaryGemm,
  ternaryGemv,
  type TernaryWeights,
} from "../../kernels/ternary/gemm.ts";
import { hasWebGPU } from "../util.ts";

const SHAPES: [number, number, number][] = [[1, 2048, 2048], [1, 4096, 11008], [128, 2048, 2048]];
/** Seconds of queued work per candidate, split over the rounds. */
const TARGET_S = Number(Deno.env.get("TERNARY_BENCH_SECONDS") ?? 1);
/** Interleaved rounds per shape; each candidate reports its median. */
const ROUNDS = 5;

let seed = 0x9e3779b9;
/** A fast LCG: benchmark operands need no quality, only size. */
function lcg(): number {
  seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
  return seed;
}

/** One shape's operands: f32 x and weight column blocks, packed ternary weight, norm weight. */
interface Operands {
  x: Tensor;
  wf32: Tensor[];
  w: TernaryWeights;
  g: Tensor;
  xq: QuantizedActivations;
}

function operands(gpu: WebGpuBackend, [T, K, N]: [number, number, number]): Operands {
  const backend = gpu;
  const x = fromArray(Float32Array.from({ length: T * K }, () => lcg() / 2 ** 31 - 1), [T, K], {
    backend,
  });
  const limit = gpu.ctx.limits.maxStorageBufferBindingSize;
  const blocks = Math.ceil((K * N * 4) / limit);
  const width = Math.ceil(N / blocks);
  const wf32 = Array.from({ length: blocks }, (_, b) => {
    const n = Math.min(width, N - b * width);
    const data = new Float32Array(K * n);
    for (let i = 0; i < data.length; i++) data[i] = (lcg() / 2 ** 32 - 0.5) * 0.04;
    return fromArray(data, [K, n], { backend });
  });
  const words = new Uint32Array(N * ternaryRowWords(K));
  for (let i = 0; i < words.length; i++) {
    let v = 0;
    for (let e = 0; e < 16; e++) v |= (lcg() % 3) << (2 * e); // codes 0..2
    words[i] = v >>> 0;
  }
  const packed = fromArray(words, [N, ternaryRowWords(K)], { backend });
  const g = fromArray(new Float32Array(K).fill(1), [K], { backend });
  const w = { packed, scale: 40, outFeatures: N, inFeatures: K };
  return { x, wf32, w, g, xq: packActivations(x, g) };
}

/** Time of `n` calls of `f` queued back to back and one sync, in ms. */
async function timeOf(gpu: WebGpuBackend, f: () => Tensor[], n: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) f().forEach((t) => t.dispose());
  await gpu.sync();
  return performance.now() - t0;
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];

/** The fixed wait of one sync (≈ 10 ms on llvmpipe): median time of a 1×1 product and a sync. */
async function syncMs(gpu: WebGpuBackend): Promise<number> {
  const a = fromArray(new Float32Array([1]), [1, 1], { backend: gpu });
  const one = () => [matmul(a, a)];
  await timeOf(gpu, one, 1);
  const v: number[] = [];
  for (let i = 0; i < 7; i++) v.push(await timeOf(gpu, one, 1));
  a.dispose();
  return median(v);
}

/**
 * Median ms per call of each candidate: a warm-up read (compile, autotune, first touch), a
 * two-point estimate of the per-call time (1 and 4 calls) to size each turn's batch, then ROUNDS
 * interleaved turns; each turn's time less one sync wait, over its calls.
 */
async function msPerAll(gpu: WebGpuBackend, fs: (() => Tensor[])[], sync: number) {
  const iters: number[] = [];
  for (const f of fs) {
    const warm = f();
    await warm[0].data();
    warm.forEach((t) => t.dispose());
    const per = Math.max(0.01, ((await timeOf(gpu, f, 4)) - (await timeOf(gpu, f, 1))) / 3);
    iters.push(Math.max(2, Math.min(1000, Math.round((TARGET_S * 1000) / ROUNDS / per))));
  }
  const times = fs.map(() => [] as number[]);
  for (let r = 0; r < ROUNDS; r++) {
    for (let i = 0; i < fs.length; i++) {
      times[i].push(Math.max(0, (await timeOf(gpu, fs[i], iters[i])) - sync) / iters[i]);
    }
  }
  return times.map(median);
}

const ternary = (o: Operands, xq: QuantizedActivations, dot4?: boolean) =>
  xq.tokens === 1 ? ternaryGemv(o.w, xq, { dot4 }) : ternaryGemm(o.w, xq, { dot4 });
const product = (o: Operands, dot4?: boolean) => () => [ternary(o, o.xq, dot4)];
/** The fused quantiser on x, then the product on its output. */
const quantisedProduct = (o: Operands) => () => {
  const q = packActivations(o.x, o.g);
  return [q.data, q.scale, q.sum, ternary(o, q)];
};
const f32 = (o: Operands) => () => o.wf32.map((w) => matmul(o.x, w));

async function table(gpu: WebGpuBackend): Promise<void> {
  const cfg = ternaryConfig(gpu);
  const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(3));
  const rows: string[] = [];
  const sync = await syncMs(gpu);
  const load = Deno.loadavg();
  for (const shape of SHAPES) {
    const [T, K, N] = shape;
    const o = operands(gpu, shape);
    const f32Bytes = K * N * 4;
    const packedBytes = o.w.packed.size * 4;
    const both = gpu.ctx.hasDot4I8 || !cfg.dot4;
    const fs = [f32(o), product(o), quantisedProduct(o), ...(both ? [product(o, !cfg.dot4)] : [])];
    const [tF32, tTer, tBoth, other] = await msPerAll(gpu, fs, sync);
    const name = `${T}×${K}·${K}×${N}`;
    const line = (what: string, ms: number, bytes: number, ratio = "") =>
      rows.push(`| ${name} | ${what} | ${fmt(ms)} | ${fmt(bytes / ms / 1e6)} | ${ratio} |`);
    const x = (ms: number) => `${(tF32 / ms).toFixed(1)}×`;
    line(
      `f32 matmul${o.wf32.length > 1 ? ` (${o.wf32.length} column blocks)` : ""}`,
      tF32,
      f32Bytes,
    );
    line(`ternary ${cfg.dot4 ? "dot4" : "pair"} (default)`, tTer, packedBytes, x(tTer));
    line("quantiser + ternary (default)", tBoth, packedBytes, x(tBoth));
    if (other !== undefined) {
      line(`ternary ${cfg.dot4 ? "pair" : "dot4"}`, other, packedBytes, x(other));
    }
    for (const t of [o.x, ...o.wf32, o.w.packed, o.g, o.xq.data, o.xq.scale, o.xq.sum]) t.dispose();
  }
  const avg = (v: number[]) => v.map((l) => l.toFixed(2)).join(" ");
  console.log(`\nternary × int8 vs f32 (${gpu.describe()})`);
  console.log(
    `load average ${avg(load)} at start, ${avg(Deno.loadavg())} at end; ${ROUNDS} interleaved ` +
      `rounds, medians; sync wait ${sync.toFixed(1)} ms subtracted`,
  );
  console.log("| shape | kernel | ms | weight GB/s | vs f32 |\n| --- | --- | --- | --- | --- |");
  console.log(rows.join("\n"));
}

const gpu = hasWebGPU ? await webgpuBackend() : null;
if (!gpu) console.log("ternary_bench: no WebGPU adapter; nothing to measure");
else await table(gpu);

if (gpu && !import.meta.main) {
  // Deno.bench cases for `deno task bench`: the decode shape, a batch of products per call.
  const o = operands(gpu, SHAPES[0]);
  const batch = (f: () => Tensor[], n: number) => async () => {
    for (let i = 0; i < n; i++) f().forEach((t) => t.dispose());
    await gpu.sync();
  };
  const group = "1×2048·2048×2048, 20 products per call";
  Deno.bench({ name: "f32 matmul", group, baseline: true, n: 5, fn: batch(f32(o), 20) });
  Deno.bench({ name: "ternary GEMV", group, n: 5, fn: batch(product(o), 20) });
  Deno.bench({
    name: "quantiser + ternary GEMV",
    group,
    n: 5,
    fn: batch(quantisedProduct(o), 20),
  });
}
