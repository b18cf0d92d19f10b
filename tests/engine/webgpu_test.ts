// The WebGPU backend's machinery: deferred shader errors, the buffer pool, the binding limit,
// flat memory over a training-like loop, command batching, bind-group reuse, describeDevice.
// The autotuner's wall-clock path; matmul's variants and its tuning through the backend are in
// tests/kernels/matmul_variants_test.ts.

import { deepStrictEqual, ok, rejects, strictEqual, throws } from "node:assert/strict";
import type { Kernel } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { MAX_BATCH, WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { describeDevice, useBackend } from "../../engine/device.ts";
import { launch } from "../../engine/op.ts";
import { fromArray, zeros } from "../../engine/creation.ts";
import { noGrad } from "../../engine/autograd.ts";
import { tidy } from "../../engine/scope.ts";
import { DeviceError, DeviceLimitError, ShaderCompileError } from "../../engine/errors.ts";
import { matmul, mean, mul, neg, sub, tanh } from "../../kernels/mod.ts";
import { sizeClass } from "../../engine/webgpu/pool.ts";
import { Autotuner, type TunableLaunch } from "../../engine/webgpu/autotune.ts";
import { BindingCache } from "../../engine/webgpu/binding.ts";
import { matmulOp } from "../../kernels/matmul/matmul.ts";
import { gpu, hasWebGPU, randnArray, settleGarbage } from "../util.ts";

const ignore = !hasWebGPU;
const backend = async () => (await gpu()) as WebGpuBackend;

Deno.test({
  // Deno's `device.lost` is an async op holding the device until it settles; a test worker torn
  // down with it pending frees the device under it, and the process aborted at exit with "double
  // free or corruption" in a few percent of runs. The backend must not start one under Deno.
  name: "under Deno the backend never takes device.lost (its pending op corrupts the heap at exit)",
  ignore,
  async fn() {
    const desc = Object.getOwnPropertyDescriptor(GPUDevice.prototype, "lost")!;
    let taken = 0;
    Object.defineProperty(GPUDevice.prototype, "lost", {
      ...desc,
      get() {
        taken++;
        return desc.get!.call(this);
      },
    });
    try {
      const be = await WebGpuBackend.create();
      const y = fromArray(new Float32Array([1, 2, 3]), [3], { backend: be });
      deepStrictEqual(Array.from(await mul(y, 2).data()), [2, 4, 6]);
      strictEqual(taken, 0);
    } finally {
      Object.defineProperty(GPUDevice.prototype, "lost", desc);
    }
  },
});

Deno.test({
  name: "a lost device (destroyed) makes the next read throw DeviceError",
  ignore,
  async fn() {
    const be = await WebGpuBackend.create(); // its own device: the shared one stays usable
    const y = fromArray(new Float32Array([1, 2, 3]), [3], { backend: be });
    deepStrictEqual(Array.from(await mul(y, 2).data()), [2, 4, 6]);
    be.device.destroy();
    await rejects(mul(y, 3).data(), (e: unknown) => {
      ok(e instanceof DeviceError, `expected DeviceError, got ${e}`);
      ok(/device may be lost/.test(e.message), e.message);
      return true;
    });
  },
});

Deno.test({
  name: "a broken WGSL kernel makes the next read throw ShaderCompileError naming it",
  ignore,
  async fn() {
    const be = await backend();
    const broken: Kernel<void> = {
      name: "deliberately_broken",
      cpu() {},
      webgpu: () => ({
        source: `@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) { y[gid.x] = no_such_variable; }`,
        grid: [1, 1, 1],
      }),
    };
    const y = zeros([4], { backend: be, dtype: "f32" });
    launch(broken, [], [y], undefined);
    await rejects(y.data(), (e: unknown) => {
      ok(e instanceof ShaderCompileError, `expected ShaderCompileError, got ${e}`);
      strictEqual(e.kernel, "deliberately_broken");
      ok(e.message.includes("deliberately_broken"), e.message);
      ok(/no_such_variable/.test(e.messages), `WGSL's message missing: ${e.messages}`);
      ok(e.source.includes("no_such_variable"));
      return true;
    });
    // The error is reported once; the backend keeps working afterwards.
    deepStrictEqual(Array.from(await neg(y).data()), [-0, -0, -0, -0]);
  },
});

Deno.test({
  name: "pool counters: allocations, reuses, liveBytes and pooledBytes",
  ignore,
  fn: async () => {
    const be = await backend();
    await be.sync();
    const n = 1000 + Math.floor(Math.random() * 50); // a size class no other test holds
    const cls = sizeClass(n * 4);
    const s0 = { ...be.stats() };
    const a = zeros([n], { backend: be, dtype: "f32" });
    const s1 = { ...be.stats() };
    strictEqual(s1.liveBytes - s0.liveBytes, cls);
    strictEqual(s1.liveBuffers - s0.liveBuffers, 1);
    a.dispose();
    const s2 = { ...be.stats() };
    strictEqual(s2.liveBytes, s0.liveBytes);
    strictEqual(s2.pooledBytes - s1.pooledBytes, cls);
    const b = zeros([n], { backend: be, dtype: "f32" }); // same class: served from the pool
    const s3 = { ...be.stats() };
    strictEqual(s3.allocations, s2.allocations);
    strictEqual(s3.reuses - s2.reuses, 1);
    strictEqual(s3.pooledBytes, s1.pooledBytes);
    strictEqual(s3.liveBytes, s1.liveBytes);
    b.dispose();
  },
});

Deno.test({
  name: "a tensor over the device's largest buffer is refused before touching the device",
  ignore,
  fn: async () => {
    const be = await backend();
    const limit = be.traits.maxTensorBytes;
    const half = Math.ceil(limit / 8) + 1000; // [2, half] f32 is over the limit
    const allocations = be.stats().allocations;
    throws(() => zeros([2, half], { backend: be }), (e: Error) => {
      ok(e instanceof DeviceLimitError, `${e}`);
      ok(e.message.includes(`[2, ${half}] f32`), `shape missing: ${e.message}`);
      ok(e.message.includes(`${limit} bytes`), `limit missing: ${e.message}`);
      return true;
    });
    strictEqual(be.stats().allocations, allocations);
  },
});

Deno.test({
  name: "a training-like loop keeps liveBytes flat from step 20 to step 200",
  ignore,
  async fn() {
    const be = await backend();
    const param = (shape: number[], seed: number) => {
      const n = shape[0] * shape[1];
      const t = fromArray(Float32Array.from(randnArray(n, seed), (v) => 0.3 * v), shape, {
        backend: be,
      });
      t.requiresGrad = true;
      return t;
    };
    const x = fromArray(Float32Array.from(randnArray(8 * 12, 1)), [8, 12], { backend: be });
    let w1 = param([12, 16], 2);
    let w2 = param([16, 4], 3);
    const losses: number[] = [];
    let live20 = -1;
    for (let step = 0; step <= 200; step++) {
      const [loss, n1, n2] = tidy(() => {
        const y = matmul(tanh(matmul(x, w1)), w2);
        const l = mean(mul(y, y));
        l.backward();
        // SGD, new tensors swapped in for the old ones.
        return noGrad(() => [l, sub(w1, mul(w1.grad!, 0.1)), sub(w2, mul(w2.grad!, 0.1))]);
      }) as Tensor[];
      for (const w of [w1, w2]) {
        w.grad?.dispose();
        w.dispose();
      }
      [w1, w2] = [n1, n2];
      w1.requiresGrad = w2.requiresGrad = true;
      if (step % 50 === 0) losses.push(await loss.item());
      loss.dispose();
      if (step === 20) {
        await be.sync();
        await settleGarbage();
        live20 = be.stats().liveBytes;
      }
    }
    await be.sync();
    await settleGarbage();
    strictEqual(be.stats().liveBytes, live20, "liveBytes at step 200 differs from step 20");
    ok(losses[losses.length - 1] < losses[0], `loss did not fall: ${losses.join(", ")}`);
    for (const t of [x, w1, w2]) t.dispose();
  },
});

Deno.test({
  name: "1000 small dispatches take at most ceil(1000 / MAX_BATCH) + 1 submits",
  ignore,
  async fn() {
    const be = await backend();
    const x = zeros([64], { backend: be, dtype: "f32" });
    await be.sync();
    const before = be.stats();
    for (let i = 0; i < 1000; i++) neg(x).dispose();
    await be.sync();
    const after = be.stats();
    strictEqual(after.dispatches - before.dispatches, 1000);
    ok(
      after.submits - before.submits <= Math.ceil(1000 / MAX_BATCH) + 1,
      `${after.submits - before.submits} submits`,
    );
    // The same op on the same buffers reuses its bind group and its uniform slot.
    ok(after.bindGroupHits - before.bindGroupHits >= 990, "bind groups were not reused");
    x.dispose();
  },
});

Deno.test({
  name: "reused bind groups and uniform slots still give each dispatch its own data",
  ignore,
  async fn() {
    const be = await backend();
    const a = fromArray(Float32Array.from([1, 2, 3]), [3], { backend: be });
    const b = fromArray(Float32Array.from([10, 20, 30]), [3], { backend: be });
    const outs: Tensor[] = [];
    for (let i = 0; i < 3; i++) outs.push(neg(a), neg(b), mul(a, i));
    const got = await Promise.all(outs.map(async (t) => Array.from(await t.data())));
    deepStrictEqual(got, [
      [-1, -2, -3],
      [-10, -20, -30],
      [0, 0, 0],
      [-1, -2, -3],
      [-10, -20, -30],
      [1, 2, 3],
      [-1, -2, -3],
      [-10, -20, -30],
      [2, 4, 6],
    ]);
    for (const t of [a, b, ...outs]) t.dispose();
  },
});

Deno.test({
  name: "describeDevice names the adapter in one line",
  ignore,
  async fn() {
    const be = await backend();
    try {
      await useBackend("webgpu");
      const line = describeDevice();
      const info = be.ctx.info;
      const name = info.description || info.vendor;
      ok(line.startsWith("webgpu: "), line);
      ok(line.includes(name), `${line} does not name ${name}`);
      ok(!line.includes("\n"), line);
    } finally {
      await useBackend("cpu");
    }
  },
});

Deno.test({
  name: "autotuner without timestamps: wall-clock timing picks a candidate once per key",
  ignore,
  async fn() {
    const be = await backend();
    const pipelines = new Map<string, GPUComputePipeline>();
    const tuner = new Autotuner(be.device, (label, code) => {
      if (!pipelines.has(code)) {
        const module = be.device.createShaderModule({ code, label });
        pipelines.set(
          code,
          be.device.createComputePipeline({
            layout: "auto",
            compute: { module, entryPoint: "main" },
          }),
        );
      }
      return pipelines.get(code)!;
    }, false);
    const info = (shape: number[]) => ({
      shape,
      strides: [shape[1], 1],
      offset: 0,
      dtype: "f32" as const,
    });
    const p = { batch: 1, M: 256, N: 256, K: 256 };
    const launch = matmulOp.webgpu(
      [info([256, 256]), info([256, 256])],
      [info([256, 256])],
      p,
      { isFallback: false, hasDot4I8: false },
    ) as TunableLaunch;
    ok(launch.tune, "a 256³ matmul offers candidates");
    strictEqual(tuner.select(launch), launch, "untimed key: the default runs");
    ok(tuner.hasPending);
    await tuner.settle();
    const [r] = tuner.results();
    strictEqual(r.clock, "wall");
    ok(r.ms.every((t) => t > 0 && t >= r.ms[r.chosen]), `${r.ms}`);
    const chosen = tuner.select(launch);
    strictEqual(chosen.label, r.names[r.chosen]);
    ok(!tuner.hasPending);
    strictEqual(tuner.results().length, 1);
  },
});

Deno.test({
  name: "uniform blocks over 256 bytes bind, and a full uniform store flushes and starts over",
  ignore,
  async fn() {
    const be = await backend();
    // A 320-byte block: the kernel writes its last word.
    const y = zeros([1], { backend: be, dtype: "u32" });
    const words = new Uint32Array(80).map((_, i) => 1000 + i);
    launch(
      {
        name: "big_uniform",
        cpu: () => {},
        webgpu: () => ({
          source: `struct U { w: array<vec4<u32>, 20> }
@group(0) @binding(0) var<storage, read_write> y: array<u32>;
@group(0) @binding(1) var<uniform> u: U;
@compute @workgroup_size(1) fn main() { y[0] = u.w[19].w; }`,
          grid: [1, 1, 1],
          uniforms: words,
        }),
      },
      [],
      [y],
      undefined,
    );
    deepStrictEqual(Array.from(await y.data()), [1079]);
    // 64 chunks of 256 slots: the 16385th distinct block empties the store after a flush.
    let flushes = 0;
    const cache = new BindingCache(be.device, () => flushes++);
    const first = cache.uniform(new Uint32Array([0]));
    for (let i = 1; i <= 64 * 256; i++) cache.uniform(new Uint32Array([i]));
    strictEqual(flushes, 1);
    strictEqual(cache.stats.uniformSlots, 1);
    const again = cache.uniform(new Uint32Array([0]));
    ok(again.id !== first.id, "a slot id is never reused for other contents");
    strictEqual(cache.uniform(new Uint32Array([0])), again);
  },
});
