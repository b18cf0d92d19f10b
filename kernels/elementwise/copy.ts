// The strided copy: out[i] = in[addr(i)] with the output row-major, so a view (any strides,
// stride 0 for broadcast) becomes a tensor of its own. What `contiguous` is, and what apply()
// uses (through the engine's registry) to hand rows to kernels that read rows. One invocation
// per element, workgroup 256, the input read through the uniform block of codegen.ts; larger
// than one binding, it runs over rows of the output (splitRows). Backward: the identity.
// wasm: wasm_copy.ts (the strided loop of wasm.ts moving bits, any dtype; transposes in 4×4
// register tiles); memory-bound, one thread under 2^20 elements.

import type { WgslLaunch } from "../../engine/backend.ts";
import { wgslType } from "../../engine/dtype.ts";
import { apply, defineOp, type KernelOp } from "../../engine/op.ts";
import { sizeOf } from "../../engine/shape.ts";
import { splitRows } from "../../engine/split.ts";
import { cpuContiguous, type Tensor } from "../../engine/tensor.ts";
import {
  grid1d,
  linearIndex,
  stridedRank,
  stridedStruct,
  stridedUniforms,
  WORKGROUP_SIZE,
} from "../../engine/webgpu/codegen.ts";
import { runCopy } from "./wasm_copy.ts";

/** y = x, row-major. */
export const copyOp: KernelOp<void> = defineOp<void>({
  name: "copy",
  strided: true,
  shape: ([x]) => [...x.shape],
  cpu([x], [y]) {
    y.set(cpuContiguous(x));
  },
  webgpu([x], [y]): WgslLaunch {
    const t = wgslType(x.dtype);
    return {
      source: `${stridedStruct(1, stridedRank(y.shape, [x]))}
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read_write> y: array<${t}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex()};
  if (i >= u.n) { return; }
  y[u.yo + i] = x[addr_0(i)];
}`,
      grid: grid1d(sizeOf(y.shape)),
      uniforms: stridedUniforms(y.shape, [x], [], y.offset),
    };
  },
  wasm: ([x], [y], _p, ctx) => runCopy(ctx, "copy", x, y),
  split: (inputs, outputs, params, limits) =>
    splitRows(inputs, outputs, params, limits, { anyStart: true }),
  backward: (dy) => [dy], // d copy(x) / dx = 1
});

/** A row-major copy when `x` is not already row-major at offset 0 (differentiable). */
export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous() && x.offset === 0) return x;
  return apply(copyOp, [x], undefined);
}
