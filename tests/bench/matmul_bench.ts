// Matmul throughput, webgpu against cpu, at 256³, 512³ and 1024³: A·B plus the backward
// products A·Bᵀ and Aᵀ·B on webgpu. Before the Deno.bench cases run, a table of GFLOP/s is
// printed from our own timing: N products queued back to back, one sync at the end (the first
// product of each shape class, which triggers autotuning, is excluded). The "cores" column is
// this process's CPU time over wall time while webgpu ran: on llvmpipe (a CPU adapter) it shows
// how much of the machine the run actually got when other processes compete for it.
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

type Layout = "A·B" | "A·Bᵀ" | "Aᵀ·B";
const product = (layout: Layout, a: Tensor, b: Tensor) =>
  layout === "A·B" ? matmul(a, b) : layout === "A·Bᵀ" ? matmul(a, transpose(b)) : matmul(
    transpose(a),
    b,
  );

const inputs = new Map<string, [Tensor, Tensor]>();
function operands(be: Backend, n: number): [Tensor, Tensor] {
  const key = `${be.name}${n}`;
  if (!inputs.has(key)) {
    inputs.set(key, [randn([n, n], { backend: be }), randn([n, n], { backend: be })]);
  }
  return inputs.get(key)!;
}

/** GFLOP/s of `iters` products queued back to back, one sync at the end, after one warm-up;
 * and the CPU cores this process kept busy meanwhile. */
async function gflops(
  be: Backend,
  n: number,
  layout: Layout,
  iters: number,
): Promise<[number, number]> {
  const [a, b] = operands(be, n);
  const warm = product(layout, a, b);
  await warm.data(); // compiles, and tunes this shape class on webgpu
  warm.dispose();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < iters; i++) product(layout, a, b).dispose();
  await be.sync();
  const seconds = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu0);
  const cores = (used.user + used.system) / 1e6 / seconds;
  return [(2 * n ** 3 * iters) / seconds / 1e9, cores];
}

const rows: string[] = [];
for (const n of SIZES) {
  const [cpuRate] = await gflops(cpu, n, "A·B", n >= 1024 ? 1 : 3);
  for (const layout of ["A·B", "A·Bᵀ", "Aᵀ·B"] as Layout[]) {
    const [gpuRate, cores] = gpu ? await gflops(gpu, n, layout, n >= 1024 ? 5 : 20) : [NaN, NaN];
    const c = layout === "A·B" ? cpuRate.toFixed(2) : "";
    const ratio = layout === "A·B" && gpu ? `${(gpuRate / cpuRate).toFixed(1)}x` : "";
    rows.push(
      `| ${n}³ | ${layout} | ${gpuRate.toFixed(1)} | ${cores.toFixed(2)} | ${c} | ${ratio} |`,
    );
  }
}
console.log(`\nmatmul GFLOP/s (f32; cpu accumulates in f64)`);
console.log(gpu ? gpu.describe() : "webgpu: no adapter");
console.log(`${navigator.hardwareConcurrency} CPU cores`);
console.log(
  `| size | product | webgpu | cores | cpu | webgpu/cpu |\n| --- | --- | --- | --- | --- | --- |`,
);
console.log(rows.join("\n"));
if (gpu) {
  console.log("\nautotune decisions (best ms per candidate on the trial problem):");
  for (const r of (gpu as WebGpuBackend).tuning()) {
    const times = r.names.map((name, i) => `${name.slice(7, -1)} ${r.ms[i].toFixed(2)}`);
    console.log(`  ${r.key} -> ${r.names[r.chosen]} (${r.clock}: ${times.join(", ")})`);
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
        const [a, b] = operands(gpu, n);
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
      const [a, b] = operands(cpu, n);
      await matmul(a, b).data();
    },
  });
}
