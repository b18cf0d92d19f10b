// Matmul throughput, webgpu against cpu, at 256³, 512³ and 1024³: A·B plus the backward
// products A·Bᵀ and Aᵀ·B on webgpu, and A·B at 128×2048 · 2048×2048 (a prefill through a
// 2048-wide layer, the ternary GEMM's comparison shape). Before the Deno.bench cases run, a
// table of GFLOP/s is printed from our own timing: N products queued back to back, one sync at
// the end (the first product of each shape class, which triggers autotuning, is excluded; its
// wall time is the "first ms" column, compiles and tuning included). The "cores" column is this
// process's CPU time over wall time while webgpu ran: on llvmpipe (a CPU adapter) it shows how
// much of the machine the run actually got when other processes compete for it.
// Run: deno bench --allow-read --allow-env --allow-sys tests/bench/matmul_bench.ts

import process from "node:process";
import type { Backend } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { randn } from "../../engine/creation.ts";
import { cpuBackend, webgpuBackend } from "../../engine/device.ts";
import { matmul, transpose } from "../../kernels/mod.ts";
import { hasWebGPU } from "../util.ts";

const SIZES = [256, 512, 1024];
const cpu = cpuBackend();
const gpu = hasWebGPU ? await webgpuBackend() : null;
// Tune afresh: the "first ms" column and the decisions table report compile plus tuning.
if (gpu) (gpu as WebGpuBackend).tuner.memo = null;

type Layout = "A·B" | "A·Bᵀ" | "Aᵀ·B";
type Shape = [number, number, number];
const product = (layout: Layout, a: Tensor, b: Tensor) =>
  layout === "A·B" ? matmul(a, b) : layout === "A·Bᵀ" ? matmul(a, transpose(b)) : matmul(
    transpose(a),
    b,
  );

const inputs = new Map<string, Tensor>();
function operand(be: Backend, rows: number, cols: number, which: string): Tensor {
  const key = `${be.name}|${rows}x${cols}|${which}`;
  if (!inputs.has(key)) inputs.set(key, randn([rows, cols], { backend: be }));
  return inputs.get(key)!;
}
/** Operands of A [M, K] · B [K, N], stored so that `product(layout, a, b)` is that product. */
function operands(be: Backend, [M, N, K]: Shape, layout: Layout = "A·B"): [Tensor, Tensor] {
  const a = layout === "Aᵀ·B" ? operand(be, K, M, "a") : operand(be, M, K, "a");
  const b = layout === "A·Bᵀ" ? operand(be, N, K, "b") : operand(be, K, N, "b");
  return [a, b];
}

/** GFLOP/s of `iters` products queued back to back, one sync at the end, after one warm-up;
 * the CPU cores this process kept busy meanwhile; and the warm-up's milliseconds. */
async function gflops(
  be: Backend,
  shape: Shape,
  layout: Layout,
  iters: number,
): Promise<[number, number, number]> {
  const [a, b] = operands(be, shape, layout);
  const w0 = performance.now();
  const warm = product(layout, a, b);
  await warm.data(); // compiles, and tunes this shape class on webgpu
  const firstMs = performance.now() - w0;
  warm.dispose();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) product(layout, a, b).dispose();
  await be.sync();
  const seconds = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu0);
  const cores = (used.user + used.system) / 1e6 / seconds;
  const [M, N, K] = shape;
  return [(2 * M * N * K * iters) / seconds / 1e9, cores, firstMs];
}

const rows: string[] = [];
const cases: [Shape, Layout[]][] = [
  ...SIZES.map((n): [Shape, Layout[]] => [[n, n, n], ["A·B", "A·Bᵀ", "Aᵀ·B"]]),
  [[128, 2048, 2048], ["A·B"]],
];
for (const [shape, layouts] of cases) {
  const [M, N, K] = shape;
  const big = M * N * K >= 2 ** 29;
  const [cpuRate] = await gflops(cpu, shape, "A·B", big ? 1 : 3);
  for (const layout of layouts) {
    const [gpuRate, cores, firstMs] = gpu
      ? await gflops(gpu, shape, layout, big ? 5 : 20)
      : [NaN, NaN, NaN];
    const c = layout === "A·B" ? cpuRate.toFixed(2) : "";
    const ratio = layout === "A·B" && gpu ? `${(gpuRate / cpuRate).toFixed(1)}x` : "";
    const size = M === N && N === K ? `${M}³` : `${M}×${K}·${K}×${N}`;
    rows.push(
      `| ${size} | ${layout} | ${gpuRate.toFixed(1)} | ${cores.toFixed(2)} | ` +
        `${firstMs.toFixed(0)} | ${c} | ${ratio} |`,
    );
  }
}
console.log(`\nmatmul GFLOP/s (f32; cpu accumulates in f64)`);
console.log(gpu ? gpu.describe() : "webgpu: no adapter");
console.log(`${navigator.hardwareConcurrency} CPU cores`);
console.log(
  `| size | product | webgpu | cores | first ms | cpu | webgpu/cpu |\n` +
    `| --- | --- | --- | --- | --- | --- | --- |`,
);
console.log(rows.join("\n"));
if (gpu) {
  console.log("\nautotune decisions (best ms per candidate on the trial problem; compile ms):");
  for (const r of (gpu as WebGpuBackend).tuning()) {
    const times = r.names.map((name, i) =>
      `${name.slice(7, -1)} ${Number.isFinite(r.ms[i]) ? r.ms[i].toFixed(2) : "-"}`
    );
    console.log(
      `  ${r.key} -> ${r.names[r.chosen]} (${r.clock}: ${times.join(", ")}; ` +
        `compile ${r.compileMs.toFixed(0)})`,
    );
  }
}

for (const n of SIZES) {
  const group = `matmul ${n}³`;
  if (gpu) {
    Deno.bench({
      name: `webgpu ${n}³ A·B`,
      group,
      baseline: true,
      n: 3,
      warmup: 1,
      async fn() {
        const [a, b] = operands(gpu, [n, n, n]);
        await matmul(a, b).data();
      },
    });
  }
  Deno.bench({
    name: `cpu ${n}³ A·B`,
    group,
    n: 1,
    warmup: 1,
    async fn() {
      const [a, b] = operands(cpu, [n, n, n]);
      await matmul(a, b).data();
    },
  });
}
