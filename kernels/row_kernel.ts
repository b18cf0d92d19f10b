// Shared machinery of the fused row kernels (softmax, norms, cross-entropy, embedding backward):
// WGSL workgroup reductions for "one workgroup per row" kernels, and running a kernel with
// several outputs (y plus saved per-row statistics) and attaching its tape node by hand, since
// apply() makes one output. Row kernels take their dims from a uniform block, not baked into the
// source, so a row length that changes every step (attention over a growing KV cache) reuses
// one pipeline.

import type { Kernel } from "../engine/backend.ts";
import type { DType } from "../engine/dtype.ts";
import { isFloat } from "../engine/dtype.ts";
import { isGradEnabled } from "../engine/autograd.ts";
import { copyOf, empty, launch } from "../engine/op.ts";
import { sizeOf } from "../engine/shape.ts";
import type { Tensor } from "../engine/tensor.ts";
import { grid1d } from "../engine/webgpu/codegen.ts";

/** Invocations per workgroup of row kernels (one workgroup per row). */
export const ROW_WG = 64;

/** Grid of `rows` workgroups (rows past 65,535 spill into the second grid dimension). */
export function rowGrid(rows: number): [number, number, number] {
  return grid1d(rows, 1);
}

/**
 * WGSL: `row_of(wid)` (the row a workgroup owns) and tree reductions over the workgroup,
 * `wg_sum`, `wg_max`, `wg_sum2` (two sums at once). Each must be called by every invocation
 * of the workgroup (uniform control flow) and returns the result to all of them.
 */
export const ROW_WGSL = /* wgsl */ `
const WG = ${ROW_WG}u;
var<workgroup> red: array<vec2<f32>, ${ROW_WG}>;
fn row_of(wid: vec3<u32>) -> u32 { return wid.x + wid.y * 65535u; }
fn wg_reduce(v: vec2<f32>, lid: u32, isMax: bool) -> vec2<f32> {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let o = red[lid + s];
      red[lid] = select(red[lid] + o, max(red[lid], o), isMax);
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wg_sum(v: f32, lid: u32) -> f32 { return wg_reduce(vec2<f32>(v, 0.0), lid, false).x; }
fn wg_max(v: f32, lid: u32) -> f32 { return wg_reduce(vec2<f32>(v, 0.0), lid, true).x; }
fn wg_sum2(v: vec2<f32>, lid: u32) -> vec2<f32> { return wg_reduce(v, lid, false); }
`;

/** Shape and dtype of one output of a multi-output kernel. */
export interface OutSpec {
  shape: readonly number[];
  dtype?: DType;
}

/**
 * Run `kernel` on row-major copies of `inputs` (views are copied once) into fresh outputs.
 * No tape node: callers attach one with `withGrad`.
 */
export function runKernel<P>(
  kernel: Kernel<P>,
  inputs: Tensor[],
  outs: OutSpec[],
  params: P,
): Tensor[] {
  const like = inputs[0];
  for (const x of inputs) {
    x.assertAlive(kernel.name);
    if (x.backend !== like.backend) {
      throw new Error(
        `${kernel.name}: inputs live on different backends ` +
          `(${like.backend.name} and ${x.backend.name})`,
      );
    }
  }
  const args = inputs.map((x) => (x.isContiguous() && x.offset === 0 ? x : copyOf(x)));
  const outputs = outs.map((o) => empty(like, o.shape, o.dtype ?? like.dtype));
  if (outputs.some((o) => o.size > 0)) launch(kernel, args, outputs, params);
  args.forEach((a, i) => a !== inputs[i] && a.dispose());
  return outputs;
}

/**
 * Record `out` on the tape as made from `inputs` (as apply() does) when a gradient can flow;
 * `backward` maps the output's gradient to one gradient (or null) per input.
 */
export function withGrad(
  out: Tensor,
  name: string,
  inputs: Tensor[],
  backward: (dy: Tensor) => (Tensor | null)[],
): Tensor {
  if (isGradEnabled() && isFloat(out.dtype) && inputs.some((x) => x.requiresGrad)) {
    out.requiresGrad = true;
    out.node = { name, inputs, backward };
  }
  return out;
}

/** Rows and row length of a tensor reduced over its last dim. */
export function rowsOf(shape: readonly number[]): [number, number] {
  const len = shape.length === 0 ? 1 : shape[shape.length - 1];
  return [len === 0 ? 0 : sizeOf(shape) / len, len];
}
