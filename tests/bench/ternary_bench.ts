// Ternary × int8 GEMV/GEMM against our f32 matmul (kernels/matmul.ts) on the same adapter and
// shapes, in one run: decode 1×2048·2048×2048 and 1×4096·4096×11008, prefill 128×2048·2048×2048.
// A table is printed first from our own timing (products queued back to back, one sync at the
// end, after a warm-up that compiles and autotunes): ms per product, effective GB/s of weight
// bytes (packed u32 for ternary, f32 for the baseline) and the speed-up over f32. The f32 weight
// [K, N] of the 11008-wide shape is 180 MB, over llvmpipe's 128 MiB binding limit, so it runs as
// column blocks (the packed ternary weight is 11 MB and needs no split).
// Run: deno run -A tests/bench/ternary_bench.ts   (or deno task bench, which adds Deno.bench cases)

import type { Tensor } from "../../engine/tensor.ts";
import { fromArray } from "../../engine/creation.ts";
import { webgpuBackend } from "../../engine/device.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { matmul } from "../../kernels/matmul.ts";
import { ternaryRowWords } from "../../kernels/ternary.ts";
import { packActivations, type QuantizedActivations } from "../../kernels/ternary_quant.ts";
import {
  ternaryConfig,
  ternaryGemm,
  ternaryGemv,
  type TernaryWeights,
} from "../../kernels/ternary_gemm.ts";
import { hasWebGPU } from "../util.ts";

const SHAPES: [number, number, number][] = [[1, 2048, 2048], [1, 4096, 11008], [128, 2048, 2048]];
/** Seconds of queued work per measurement (iterations are chosen to fill it). */
const TARGET_S = Number(Deno.env.get("TERNARY_BENCH_SECONDS") ?? 1);

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

/**
 * ms per call of `f` (returning tensors to free): a warm-up read, a two-point estimate of the
 * per-call time (1 and 4 calls, so the ≈ 11 ms sync drops out), then enough calls to fill
 * TARGET_S, one sync at the end.
 */
async function msPer(gpu: WebGpuBackend, f: () => Tensor[]): Promise<number> {
  const warm = f();
  await warm[0].data(); // compile, autotune, first touch
  warm.forEach((t) => t.dispose());
  const per = Math.max(0.01, ((await timeOf(gpu, f, 4)) - (await timeOf(gpu, f, 1))) / 3);
  const iters = Math.max(3, Math.min(2000, Math.round((TARGET_S * 1000) / per)));
  return (await timeOf(gpu, f, iters)) / iters;
}

const quantise = (o: Operands) => {
  const q = packActivations(o.x, o.g);
  return [q.data, q.scale, q.sum];
};
const product = (o: Operands, dot4?: boolean) => () => [
  o.xq.tokens === 1 ? ternaryGemv(o.w, o.xq, { dot4 }) : ternaryGemm(o.w, o.xq, { dot4 }),
];
const f32 = (o: Operands) => () => o.wf32.map((w) => matmul(o.x, w));

async function table(gpu: WebGpuBackend): Promise<void> {
  const cfg = ternaryConfig(gpu);
  const fmt = (v: number) => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(3));
  const rows: string[] = [];
  for (const shape of SHAPES) {
    const [T, K, N] = shape;
    const o = operands(gpu, shape);
    const f32Bytes = K * N * 4;
    const packedBytes = o.w.packed.size * 4;
    const tF32 = await msPer(gpu, f32(o));
    const tQuant = await msPer(gpu, () => quantise(o));
    const tTer = await msPer(gpu, product(o));
    const other = gpu.ctx.hasDot4I8 || !cfg.dot4 ? await msPer(gpu, product(o, !cfg.dot4)) : NaN;
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
    line("quantiser + ternary (default)", tQuant + tTer, packedBytes, x(tQuant + tTer));
    if (!Number.isNaN(other)) {
      line(`ternary ${cfg.dot4 ? "pair" : "dot4"}`, other, packedBytes, x(other));
    }
    for (const t of [o.x, ...o.wf32, o.w.packed, o.g, o.xq.data, o.xq.scale, o.xq.sum]) t.dispose();
  }
  console.log(`\nternary × int8 vs f32 (${gpu.describe()})`);
  console.log(`load average ${Deno.loadavg().map((v) => v.toFixed(2)).join(" ")}`);
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
    fn: batch(() => [...quantise(o), ...product(o)()], 20),
  });
}
