// WebGPU backend overheads: the time of 1,000 small dispatches (an elementwise op on 64
// elements, all in one compute pass, submitted every MAX_BATCH) and the latency of a readback
// (submit, mapAsync, copy out). Prints a table from our own timing, then registers Deno.bench
// cases for the same work.
// Run: deno bench --allow-read --allow-env --allow-sys tests/bench/dispatch_bench.ts

import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { zeros } from "../../engine/creation.ts";
import { webgpuBackend } from "../../engine/device.ts";
import { neg } from "../../kernels/mod.ts";
import { hasWebGPU } from "../util.ts";

const gpu: WebGpuBackend | null = hasWebGPU ? await webgpuBackend() : null;

/** Milliseconds for 1,000 dispatches: [encode only, encode + sync], best of `reps`. */
async function thousand(be: WebGpuBackend, reps: number): Promise<[number, number, number]> {
  const x = zeros([64], { backend: be, dtype: "f32" });
  await neg(x).data();
  let encode = Infinity, total = Infinity, submits = 0;
  for (let r = 0; r < reps; r++) {
    const s0 = be.stats().submits;
    const t0 = performance.now();
    for (let i = 0; i < 1000; i++) neg(x).dispose();
    const t1 = performance.now();
    await be.sync();
    const t2 = performance.now();
    encode = Math.min(encode, t1 - t0);
    total = Math.min(total, t2 - t0);
    submits = be.stats().submits - s0;
  }
  x.dispose();
  return [encode, total, submits];
}

/** Milliseconds per readback of a 1-element tensor, median of `reps`. */
async function readback(be: WebGpuBackend, reps: number): Promise<number> {
  const x = zeros([1], { backend: be, dtype: "f32" });
  await x.data();
  const ms: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    await x.data();
    ms.push(performance.now() - t0);
  }
  x.dispose();
  return ms.sort((a, b) => a - b)[Math.floor(reps / 2)];
}

if (gpu) {
  const [encode, total, submits] = await thousand(gpu, 5);
  const rb = await readback(gpu, 20);
  console.log(`\n${gpu.describe()}`);
  console.log(`| what | time |\n| --- | --- |`);
  console.log(`| 1,000 dispatches, encode only | ${encode.toFixed(1)} ms |`);
  console.log(
    `| 1,000 dispatches + sync (${submits} submits) | ${total.toFixed(1)} ms ` +
      `(${total.toFixed(1)} µs per dispatch) |`,
  );
  console.log(`| readback of 1 element (median) | ${rb.toFixed(2)} ms |`);
  const s = gpu.stats();
  console.log(
    `bind groups created ${s.bindGroups}, reused ${s.bindGroupHits}; ` +
      `uniform slots ${s.uniformSlots}`,
  );

  const x = zeros([64], { backend: gpu, dtype: "f32" });
  Deno.bench({
    name: "1,000 small dispatches + sync",
    group: "webgpu overhead",
    n: 10,
    async fn() {
      for (let i = 0; i < 1000; i++) neg(x).dispose();
      await gpu.sync();
    },
  });
  Deno.bench({
    name: "readback of 1 element",
    group: "webgpu overhead",
    n: 20,
    async fn() {
      await x.data();
    },
  });
} else {
  console.log("dispatch_bench: no WebGPU adapter; nothing to measure");
}
