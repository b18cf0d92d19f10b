// Staged autotuning: a candidate gated on another (`after`) is compiled and timed only once that
// one leads, so the big register blocks (16×32, 32×32) are tried only where 8×16 pays; and
// matmul's candidate lists per layout class and adapter kind (software adapters get no
// workgroup-tiled candidates, scalar-load layouts no register blocks past 8×16, devices with
// read-only storage textures the texture-staged blocks where their textures fit).

import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { ArgInfo, DeviceTraits } from "../../engine/backend.ts";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { Autotuner, type Tunable, type TunableLaunch } from "../../engine/webgpu/autotune.ts";
import { matmulOp } from "../../kernels/matmul/matmul.ts";
import { gpu, hasWebGPU } from "../util.ts";

const ignore = !hasWebGPU;

/** A kernel whose invocations each run `iters` steps of an LCG (llvmpipe stops any loop after
 * 65535 iterations, so `iters` stays below that). */
function spin(iters: number): string {
  return `@group(0) @binding(0) var<storage, read_write> y: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  var x = gid.x;
  for (var i = 0u; i < ${iters}u; i++) { x = x * 1664525u + 1013904223u; }
  y[gid.x] = x;
}`;
}

/** A tunable over spin kernels of the given lengths, gated as `after` says. */
function spinTunable(key: string, iters: number[], after: number[]): Tunable {
  const launch = (i: number) => ({
    source: spin(iters[i]),
    grid: [16, 1, 1] as [number, number, number],
  });
  return {
    key,
    names: iters.map((n) => `spin${n}`),
    after,
    launch,
    trial: () => ({ bindingBytes: [16 * 64 * 4], launch }),
  };
}

Deno.test({
  name: "autotuner stages: a gated candidate is compiled only once its gate leads",
  ignore,
  async fn() {
    const be = (await gpu()) as WebGpuBackend;
    const compiled: string[] = [];
    const tuner = new Autotuner(be.device, (label, code) => {
      compiled.push(label);
      const module = be.device.createShaderModule({ code, label });
      return be.device.createComputePipeline({
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
    }, be.device.features.has("timestamp-query"));
    // The gate (candidate 1) loses to the default by 40×: candidate 2 is never compiled.
    const lost = spinTunable("lost", [1_500, 60_000, 30], [-1, -1, 1]);
    // The gate beats the default by 40×, and candidate 2 beats the gate: 2 is tried and wins.
    const won = spinTunable("won", [60_000, 1_500, 30], [-1, -1, 1]);
    for (const tune of [lost, won]) {
      const l: TunableLaunch = { ...tune.launch(0), tune };
      strictEqual(tuner.select(l), l, "untimed: the default runs");
    }
    await tuner.settle();
    const [a, b] = tuner.results();
    deepStrictEqual(compiled, [
      ...["spin1500", "spin60000"], // "lost": the first stage only
      ...["spin60000", "spin1500", "spin30"], // "won": two stages
    ]);
    strictEqual(a.chosen, 0, `${a.ms}`);
    strictEqual(a.ms[2], Infinity, "never tried");
    strictEqual(b.chosen, 2, `${b.ms}`);
    ok(b.ms.every(Number.isFinite), `${b.ms}`);
    ok(a.compileMs >= 0 && b.compileMs >= 0);
  },
});

const info = (shape: number[], strides = [shape[1], 1]): ArgInfo => ({
  shape,
  strides,
  offset: 0,
  dtype: "f32",
});
const software: DeviceTraits = { isFallback: true, hasDot4I8: false };
const hardware: DeviceTraits = { isFallback: false, hasDot4I8: false };

/** The candidates and gates matmul offers for A [M, K] · B [K, N] (row-major) on `device`. */
function offered(M: number, N: number, K: number, device: DeviceTraits) {
  const launch = matmulOp.webgpu(
    [info([M, K]), info([K, N])],
    [info([M, N])],
    { batch: 1, M, N, K },
    device,
  ) as TunableLaunch;
  const tune = launch.tune!;
  const names = tune.names.map((x) => x.slice(7, -1));
  return { names, after: tune.after!.map((i) => (i < 0 ? "" : names[i])) };
}

Deno.test("matmul candidates: big blocks gated; tiled ones on hardware only; tex where they fit", () => {
  deepStrictEqual(offered(256, 256, 256, software), {
    names: ["reg4x4", "reg8x16", "reg16x32", "reg32x32"],
    after: ["", "", "reg8x16", "reg8x16"],
  });
  deepStrictEqual(offered(256, 256, 256, hardware), {
    names: ["reg4x4", "reg8x16", "reg16x32", "reg32x32", "tile64", "tile128"],
    after: ["", "", "reg8x16", "reg8x16", "", ""],
  });
  // Read-only storage textures: the texture-staged blocks, each gated on the next smaller one;
  // not where a staged texture's side would pass the device's limit.
  const textures = { side: 16384, layers: 2048 };
  const withTextures = { ...software, textures };
  deepStrictEqual(offered(256, 256, 256, withTextures), {
    names: ["reg4x4", "reg8x16", "reg16x32", "reg32x32", "tex8x16", "tex16x32", "tex32x32"],
    after: ["", "", "reg8x16", "reg8x16", "", "tex8x16", "tex16x32"],
  });
  // The fill reads any layout, so scalar-load layouts keep every texture-staged block.
  deepStrictEqual(offered(256, 256, 257, withTextures).names, [
    ...["reg4x4", "reg8x16"],
    ...["tex8x16", "tex16x32", "tex32x32"],
  ]);
  deepStrictEqual(
    offered(20000, 256, 256, withTextures).names,
    offered(20000, 256, 256, software).names,
  );
  // K odd: A is read with scalar loads, where blocks past 8×16 would only rerun 8×16's kernel.
  deepStrictEqual(offered(256, 256, 257, software), {
    names: ["reg4x4", "reg8x16"],
    after: ["", ""],
  });
});
