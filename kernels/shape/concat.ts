// Concatenation and its inverses: cat (join along an axis), split (views, one op) and padAxis
// (zeros with a block placed along an axis; narrow's backward). cat allocates the output once and
// runs one strided copy per input into that input's slot: thread i reads input element i through
// the input's own strides (views need no copy) and writes it through the slot's strides (grid1d
// over the input's elements, workgroup 256). Backward: narrow views of dy.
// wasm: the slot copy is the strided copy of elementwise/wasm_copy.ts writing through the slot's
// strides; pad_axis is two zero fills (the blocks before and after x, as strided views of y) and
// one such copy, three launches of the elementwise loop (each on one thread under 2^20 elements,
// else split over the threads); memory-bound ([12, 64, 128] into 384: ~38 µs).

import type { ArgInfo, Kernel, LaunchPiece, WgslLaunch } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { apply, applyAll, defineOp, empty, type KernelOp, launch } from "../../engine/op.ts";
import { cpuContiguous } from "../../engine/tensor.ts";
import { wgslType } from "../../engine/dtype.ts";
import { normAxis, sizeOf } from "../../engine/shape.ts";
import { fmtShape, ShapeError } from "../../engine/errors.ts";
import { splitRows } from "../../engine/split.ts";
import {
  grid1d,
  linearIndex,
  stridedRank,
  stridedStruct,
  stridedUniforms,
  WORKGROUP_SIZE,
} from "../../engine/webgpu/codegen.ts";
import { narrow } from "./view.ts";
import type { WasmArg } from "../../engine/wasm/context.ts";
import { runElementwise, vexpr } from "../elementwise/wasm.ts";
import { runCopy } from "../elementwise/wasm_copy.ts";

/** y = 0 (zero bits: any dtype). */
const ZERO = vexpr(({ m }) => m.ki(0));

/** outer/len/inner split of a shape around `axis`. */
function around(shape: readonly number[], axis: number): [number, number, number] {
  return [sizeOf(shape.slice(0, axis)), shape[axis], sizeOf(shape.slice(axis + 1))];
}

/**
 * y = x into a view: the output argument is the slot itself (x's shape, the joined tensor's
 * strides and offset), written through its strides; x is read through its own. Larger than
 * one binding, it runs over boxes of x and the slot alike (splitRows).
 */
export const copyIntoSlotKernel: Kernel<void> = {
  name: "cat_copy",
  cpu([x], [y]) {
    y.set(cpuContiguous(x)); // the CPU backend scatters a strided output into place
  },
  webgpu([x], [slot]): WgslLaunch {
    const t = wgslType(x.dtype);
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
  wasm: ([x], [slot], _p, ctx) => runCopy(ctx, "cat_copy", x, slot),
  split: (inputs, outputs, p, limits) =>
    splitRows(inputs, outputs, p, limits, { cut: () => true, anyStart: true }),
};

/** Where each input goes along the joined axis. */
interface CatParams {
  /** The axis inputs are joined along. */
  axis: number;
  /** Each input's first index along `axis` in the output. */
  starts: number[];
  /** The output's length along `axis`. */
  total: number;
}

/** cat: one strided slot copy per input into the output; backward: narrow views of dy. */
const catOp = defineOp<CatParams>({
  name: "cat",
  strided: true, // the slot copies read every input through its strides
  shape([first], { axis, total }) {
    const shape = [...first.shape];
    shape[axis] = total;
    return shape;
  },
  compute(inputs, { axis, starts, total }) {
    const shape = [...inputs[0].shape];
    shape[axis] = total;
    const out = empty(inputs[0], shape);
    inputs.forEach((t, k) => {
      if (t.size === 0) return;
      const slot = out.withLayout(t.shape, out.strides, starts[k] * out.strides[axis]);
      launch(copyIntoSlotKernel, [t], [slot], undefined);
      slot.dispose();
    });
    return [out];
  },
  // d cat / d x_k = the slot of x_k: a narrow view of dy.
  backward: (dy, { inputs, params: { axis, starts } }) =>
    inputs.map((t, k) => narrow(dy, axis, starts[k], t.shape[axis])),
});

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
  }
  const starts: number[] = [];
  let total = 0;
  for (const t of tensors) {
    starts.push(total);
    total += t.shape[a];
  }
  return apply(catOp, [...tensors], { axis: a, starts, total });
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
  return applyAll(splitOp, [x], { axis: a, sizes: parts });
}

/**
 * split's op: the pieces are views of x, outputs of one op, so the backward is one cat of their
 * gradients (zeros where none reached a piece), not a zero-padded gradient per piece summed.
 */
const splitOp = defineOp<{ axis: number; sizes: readonly number[] }>({
  name: "split",
  strided: true,
  outputs: ([x], { axis, sizes }) =>
    sizes.map((n) => ({ shape: x.shape.map((d, i) => (i === axis ? n : d)) })),
  compute([x], { axis, sizes }) {
    let start = 0;
    return sizes.map((n) => {
      const shape = x.shape.map((d, i) => (i === axis ? n : d));
      const piece = x.withLayout(shape, x.strides, x.offset + start * x.strides[axis]);
      start += n;
      return piece;
    });
  },
  backward: (_dy, { dys, params: { axis } }) => [cat(dys, axis)],
});

/** Parameters of `padAxisOp`: the axis, where x starts along it, the padded length. */
export interface PadAxisParams {
  /** The padded axis. */
  axis: number;
  /** Where x starts along `axis` in the output. */
  start: number;
  /** The output's length along `axis`. */
  total: number;
}

/**
 * y = zeros with x at [start, start + len) along `axis`; one invocation per output element,
 * x and y addressed from their offsets (pieces of a split launch start anywhere).
 */
export const padAxisOp: KernelOp<PadAxisParams> = defineOp<PadAxisParams>({
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
    const [, len, inner] = around(x.shape, axis);
    for (let i = 0; i < y.length; i++) {
      const c = Math.floor(i / inner) % total;
      const outer = Math.floor(i / (inner * total));
      const ok = c >= start && c < start + len;
      y[i] = ok ? xs[(outer * len + c - start) * inner + (i % inner)] : 0;
    }
  },
  webgpu([x], [y], { axis, start, total }): WgslLaunch {
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
    v = x[${x.offset}u + (outer * ${len}u + c - ${start}u) * ${inner}u + inner];
  }
  y[${y.offset}u + i] = v;
}`,
      grid: grid1d(n),
    };
  },
  wasm([x], [y], { axis, start, total }, ctx) {
    const [outer, len, inner] = around(x.shape, axis);
    // y as [outer, total, inner]: the rows [from, from + count) along the axis.
    const rows = (from: number, count: number): WasmArg => ({
      ...y,
      shape: [outer, count, inner],
      strides: [total * inner, inner, 1],
      offset: y.offset + from * inner,
    });
    const after = total - start - len;
    if (start > 0) runElementwise(ctx, "pad_axis", [{ arg: rows(0, start), role: "out" }], ZERO);
    if (after > 0) {
      runElementwise(ctx, "pad_axis", [{ arg: rows(start + len, after), role: "out" }], ZERO);
    }
    const block = { ...x, shape: [outer, len, inner], strides: [len * inner, inner, 1] };
    runCopy(ctx, "pad_axis", block, rows(start, len));
  },
  split: padPieces,
  // d pad / dx = the block we placed: a narrow view of dy.
  backward: (dy, { inputs: [x], params: { axis, start } }) => [
    narrow(dy, axis, start, x.shape[axis]),
  ],
});

/** pad_axis' pieces, each a pad of its own: boxes of y with the box of x they hold. */
function padPieces(
  [x]: ArgInfo[],
  [y]: ArgInfo[],
  p: PadAxisParams,
  limits: { maxBytes: number; align: number },
): LaunchPiece<PadAxisParams>[] | null {
  const a = p.axis;
  const len = x.shape[a];
  const boxes = splitRows([], [y], p, limits, { anyStart: true });
  if (!boxes) return null;
  return boxes.map(({ outputs: [yb] }) => {
    // The box's first index along each dim, recovered from its offset (y is row-major).
    let rest = yb.offset - y.offset;
    const at = y.shape.map((_, d) => {
      const i = Math.floor(rest / y.strides[d]);
      rest -= i * y.strides[d];
      return i;
    });
    // The box is cut at the last dim it does not span whole: before the axis, x is cut alike;
    // at the axis (or deeper, one index along it), y's rows [r0, r0 + n) hold x's rows that
    // fall in [start, start + len), shifted (none: zeros).
    const cut = y.shape.map((n, d) => yb.shape[d] !== n).lastIndexOf(true);
    const xb = { ...x, shape: [...yb.shape], offset: x.offset };
    for (let d = 0; d < y.shape.length; d++) {
      if (d !== a) xb.offset += at[d] * x.strides[d];
    }
    if (cut >= a) {
      const r0 = at[a];
      const lo = Math.max(r0, p.start);
      const hi = Math.min(r0 + yb.shape[a], p.start + len);
      xb.shape[a] = Math.max(0, hi - lo);
      xb.offset += Math.max(0, lo - p.start) * x.strides[a];
      return {
        inputs: [xb],
        outputs: [yb],
        params: { axis: a, start: Math.max(0, p.start - r0), total: yb.shape[a] },
      };
    }
    xb.shape[a] = len; // cut before the axis (or not at all): x alike
    return { inputs: [xb], outputs: [yb], params: p };
  });
}

/** Zeros of length `total` along `axis` with `x` placed at [start, start + len) (differentiable). */
export function padAxis(x: Tensor, axis: number, start: number, total: number): Tensor {
  const a = normAxis("padAxis", axis, x.ndim);
  return apply(padAxisOp, [x], { axis: a, start, total });
}
