// Errors are thrown at the call (ops are synchronous), typed, and name the op and the shapes.

import { ok, rejects, strictEqual, throws } from "node:assert/strict";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { CheckpointError, ConfigError, ShapeError } from "../../engine/errors.ts";
import { wasmBackend } from "../../engine/device.ts";
import { tokenBatches } from "../../data/sampler.ts";
import { packedFromSafetensors } from "../../kernels/ternary/linear.ts";
import { train } from "../../models/train.ts";
import { full, tensor, zeros } from "../../engine/creation.ts";
import { add, cat, expand, matmul, mean, reshape, sum, topk } from "../../kernels/mod.ts";
import { cpu, gpu, hasWebGPU } from "../util.ts";

/** `fn` throws a ShapeError whose message matches `re`. */
function shapeError(fn: () => unknown, re: RegExp): void {
  throws(fn, (e: unknown) => {
    ok(e instanceof ShapeError, `expected a ShapeError, got ${e}`);
    ok(re.test((e as Error).message), `message '${(e as Error).message}' does not match ${re}`);
    return true;
  });
}

Deno.test("shape errors name the op and both shapes", () => {
  const z = (...shape: number[]) => zeros(shape, { backend: cpu });
  shapeError(
    () => matmul(z(4, 8), z(7, 3)),
    /^matmul: inner dims differ: a is \[4, 8\], b is \[7, 3\]$/,
  );
  shapeError(() => add(z(2, 3), z(3, 2)), /^add: shapes \[2, 3\] and \[3, 2\] do not broadcast$/);
  shapeError(
    () => cat([z(2, 3), z(2, 4)]),
    /^cat: shapes differ outside axis 0: \[2, 3\] and \[2, 4\]$/,
  );
  shapeError(() => reshape(z(2, 3), [4]), /^reshape: cannot view \[2, 3\] as \[4\]$/);
  shapeError(() => expand(z(2, 3), [2, 2]), /^expand: cannot expand \[2, 3\] to \[2, 2\]$/);
  shapeError(() => sum(z(2, 3), -3), /^sum: axis -3 out of range for a tensor of rank 2$/);
  shapeError(() => mean(z(2), 1), /^mean: axis 1 out of range for a tensor of rank 1$/);
  shapeError(() => topk(z(2, 3), 4), /^topk: k = 4 out of range for dim 1 of \[2, 3\]$/);
  shapeError(() => tensor([1, 2, 3], [2, 2]), /^tensor: 3 values do not fill shape \[2, 2\]$/);
  shapeError(() => full([2, -1], 0), /^full: invalid shape \[2, -1\]$/);
});

Deno.test({
  name: "webgpu: shape errors are thrown at the call, before anything is dispatched",
  ignore: !hasWebGPU,
  async fn() {
    const g = await gpu() as WebGpuBackend;
    const a = zeros([4, 8], { backend: g });
    const b = zeros([7, 3], { backend: g });
    const dispatches = g.stats().dispatches;
    shapeError(() => matmul(a, b), /^matmul: inner dims differ: a is \[4, 8\], b is \[7, 3\]$/);
    strictEqual(g.stats().dispatches, dispatches);
    throws(() => add(a, zeros([4, 8], { backend: cpu })), /add: inputs live on different backends/);
  },
});

Deno.test("user errors of the library are typed by area (ConfigError, CheckpointError)", async () => {
  await rejects(
    () => train({ data: tokenBatches({ train: new Int32Array(9), val: new Int32Array(9) }) }),
    (e: unknown) => e instanceof ConfigError && /pass a model, a config or resume/.test(`${e}`),
  );
  throws(
    () => packedFromSafetensors({}, "h.0.q_proj"),
    (e: unknown) => e instanceof CheckpointError && /missing tensor 'h\.0\.q_proj\./.test(`${e}`),
  );
  const be = await wasmBackend();
  await rejects(
    () => wasmBackend({ threads: be.pool.threads + 1 }),
    (e: unknown) => e instanceof ConfigError && /already runs/.test(`${e}`),
  );
});
