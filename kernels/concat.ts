// Concatenation and its inverses: cat (join along an axis), split (narrow views) and padAxis
// (zeros with a block placed along an axis; narrow's backward). cat allocates the output once and
// runs one strided copy per input into that input's slot: thread i reads input element i through
// the input's own strides (views need no copy) and writes it through the output's strides at
// the slot's offset (grid1d over the input's elements, workgroup 64). Backward: narrow views of dy.

import type { Kernel, WgslLaunch } from "../engine/backend.ts";
import type { Tensor } from "../engine/tensor.ts";
import { isGradEnabled } from "../engine/autograd.ts";
import { apply, cpuContiguous, defineOp, empty, launch, type OpDef } from "../engine/op.ts";
import { isFloat, wgslType } from "../engine/dtype.ts";
import { contiguousStrides, normAxis, sizeOf } from "../engine/shape.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import {
  grid1d,
  linearIndex,
  stridedRank,
  stridedStruct,
  stridedUniforms,
  WORKGROUP_SIZE,
} from "../engine/webgpu/codegen.ts";
import { narrow, registerPadAxis } from "./view.ts";

/** Where one input goes in the output: its first index along `axis`. */
export interface ConcatSlotParams {
  /** The axis inputs are joined along. */
  axis: number;
  /** This input's first index along `axis` in the output. */
  start: number;
  /** The output's length along `axis`. */
  total: number;
}

/** outer/len/inner split of a shape around `axis`. */
function around(shape: readonly number[], axis: number): [number, number, number] {
  return [sizeOf(shape.slice(0, axis)), shape[axis], sizeOf(shape.slice(axis + 1))];
}

/**
 * y[slot] = x: copies x (any strides) into the block [start, start + len) along `axis` of the
 * row-major output y, leaving the rest of y untouched.
 */
export const copyIntoSlotKernel: Kernel<ConcatSlotParams> = {
  name: "cat_copy",
  cpu([x], [y], { axis, start, total }) {
    const xs = cpuContiguous(x);
    const [outer, len, inner] = around(x.shape, axis);
    const block = len * inner;
    for (let o = 0; o < outer; o++) {
      y.set(xs.subarray(o * block, (o + 1) * block), (o * total + start) * inner);
    }
  },
  wgsl([x], [y], { axis, start }): WgslLaunch {
    const t = wgslType(x.dtype);
    const yStrides = contiguousStrides(y.shape);
    // The slot is a view of y with x's shape: y's strides, offset start · stride(axis).
    const slot = { ...x, strides: yStrides, offset: start * yStrides[axis] };
    return {
      source: `${stridedStruct(2, stridedRank(x.shape, [x, slot]))}
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read_write> y: array<${t}>;
@group(0) @binding(2) var<uniform> u: U;
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex()};
  if (i >= u.n) { return; }
  y[addr_1(i)] = x[addr_0(i)];
}`,
      grid: grid1d(sizeOf(x.shape)),
      uniforms: stridedUniforms(x.shape, [x, slot]),
    };
  },
};

/** Concatenate tensors along `axis` (default 0); all other dims must agree. */
export function cat(tensors: readonly Tensor[], axis = 0): Tensor {
  if (tensors.length === 0) throw new ShapeError("cat: needs at least one tensor");
  const first = tensors[0];
  const a = normAxis("cat", axis, first.ndim);
  for (const t of tensors) {
    const same = t.ndim === first.ndim && t.shape.every((d, i) => i === a || d === first.shape[i]);
    if (!same) {
      throw new ShapeError(
        `cat: shapes differ outside axis ${a}: ${fmtShape(first.shape)} and ${fmtShape(t.shape)}`,
      );
    }
    if (t.dtype !== first.dtype) {
      throw new TypeError(`cat: dtypes differ: ${first.dtype} and ${t.dtype}`);
    }
    if (t.backend !== first.backend) {
      throw new Error(
        `cat: inputs live on different backends (${first.backend.name} and ${t.backend.name})`,
      );
    }
  }
  const shape = [...first.shape];
  shape[a] = tensors.reduce((n, t) => n + t.shape[a], 0);
  const out = empty(first, shape);
  const starts: number[] = [];
  let start = 0;
  for (const t of tensors) {
    starts.push(start);
    if (t.size > 0) launch(copyIntoSlotKernel, [t], [out], { axis: a, start, total: shape[a] });
    start += t.shape[a];
  }
  const inputs = [...tensors];
  if (isGradEnabled() && isFloat(out.dtype) && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.node = {
      name: "cat",
      inputs,
      // d cat / d x_k = the slot of x_k: a narrow view of dy.
      backward: (dy) => inputs.map((t, k) => narrow(dy, a, starts[k], t.shape[a])),
    };
  }
  return out;
}

/**
 * Split `x` along `axis` (default 0) into views: pieces of the given `sizes` (which must add up
 * to the dim), or of `chunkSize` each with a smaller last piece.
 */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const a = normAxis("split", axis, x.ndim);
  const n = x.shape[a];
  let parts: number[];
  if (typeof sizes === "number") {
    if (!Number.isInteger(sizes) || sizes <= 0) {
      throw new ShapeError(`split: chunk size must be a positive integer, got ${sizes}`);
    }
    parts = [];
    for (let s = 0; s < n; s += sizes) parts.push(Math.min(sizes, n - s));
  } else {
    parts = [...sizes];
    const total = parts.reduce((s, d) => s + d, 0);
    if (parts.some((d) => !Number.isInteger(d) || d < 0) || total !== n) {
      throw new ShapeError(
        `split: sizes [${parts.join(", ")}] do not add up to dim ${a} (${n}) of ${
          fmtShape(x.shape)
        }`,
      );
    }
  }
  let start = 0;
  return parts.map((len) => {
    const piece = narrow(x, a, start, len);
    start += len;
    return piece;
  });
}

/** Parameters of `padAxisOp`: the axis, where x starts along it, the padded length. */
export interface PadAxisParams {
  /** The padded axis. */
  axis: number;
  /** Where x starts along `axis` in the output. */
  start: number;
  /** The output's length along `axis`. */
  total: number;
}

/** y = zeros with x at [start, start + len) along `axis`; one invocation per output element. */
export const padAxisOp: OpDef<PadAxisParams> = defineOp<PadAxisParams>({
  name: "pad_axis",
  shape([x], { axis, start, total }) {
    if (start < 0 || start + x.shape[axis] > total) {
      throw new ShapeError(
        `padAxis: block [${start}, ${start + x.shape[axis]}) of ${
          fmtShape(x.shape)
        } does not fit length ${total} along axis ${axis}`,
      );
    }
    const shape = [...x.shape];
    shape[axis] = total;
    return shape;
  },
  cpu([x], [y], { axis, start, total }) {
    const xs = cpuContiguous(x);
    const [outer, len, inner] = around(x.shape, axis);
    y.fill(0);
    const block = len * inner;
    for (let o = 0; o < outer; o++) {
      y.set(xs.subarray(o * block, (o + 1) * block), (o * total + start) * inner);
    }
  },
  wgsl([x], [y], { axis, start, total }): WgslLaunch {
    const t = wgslType(x.dtype);
    const [, len, inner] = around(x.shape, axis);
    const n = sizeOf(y.shape);
    return {
      source: `
@group(0) @binding(0) var<storage, read> x: array<${t}>;
@group(0) @binding(1) var<storage, read_write> y: array<${t}>;
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex()};
  if (i >= ${n}u) { return; }
  let inner = i % ${inner}u;
  let c = (i / ${inner}u) % ${total}u;
  let outer = i / ${inner * total}u;
  var v = ${t}(0);
  if (c >= ${start}u && c < ${start + len}u) {
    v = x[(outer * ${len}u + c - ${start}u) * ${inner}u + inner];
  }
  y[i] = v;
}`,
      grid: grid1d(n),
    };
  },
  // d pad / dx = the block we placed: a narrow view of dy.
  backward: (dy, [x], _y, { axis, start }) => [narrow(dy, axis, start, x.shape[axis])],
});

/** Zeros of length `total` along `axis` with `x` placed at [start, start + len) (differentiable). */
export function padAxis(x: Tensor, axis: number, start: number, total: number): Tensor {
  const a = normAxis("padAxis", axis, x.ndim);
  return apply(padAxisOp, [x], { axis: a, start, total });
}

registerPadAxis(padAxis);
