// View ops: new shapes, strides and offsets over the same storage, no copy (reshape copies only
// when the layout makes a view impossible). Their backward maps the gradient back the same way;
// expand's backward sums over the broadcast dimensions.

import type { Tensor } from "../engine/tensor.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import { isGradEnabled } from "../engine/autograd.ts";
import { copyOf } from "../engine/op.ts";
import { contiguousStrides, normAxis, sizeOf } from "../engine/shape.ts";
import { sum } from "./reduce.ts";

/** Attach a view's autograd link: `back` maps the view's gradient to the source's. */
function viewOf(
  name: string,
  x: Tensor,
  shape: readonly number[],
  strides: readonly number[],
  offset: number,
  back: (dy: Tensor) => Tensor,
): Tensor {
  x.assertAlive(name); // name the view op, not `view`, in the error
  const v = x.withLayout(shape, strides, offset);
  if (x.requiresGrad && isGradEnabled()) {
    v.requiresGrad = true;
    v.node = { name, inputs: [x], backward: (dy) => [back(dy)] };
  }
  return v;
}

/** Resolve one `-1` in a target shape. */
function resolveShape(op: string, x: Tensor, shape: readonly number[]): number[] {
  const out = [...shape];
  const neg = out.indexOf(-1);
  if (neg >= 0) {
    const rest = sizeOf(out.filter((_, i) => i !== neg));
    out[neg] = rest === 0 ? 0 : x.size / rest;
  }
  if (!out.every((d) => Number.isInteger(d) && d >= 0) || sizeOf(out) !== x.size) {
    throw new ShapeError(`${op}: cannot view ${fmtShape(x.shape)} as ${fmtShape(shape)}`);
  }
  return out;
}

/** Strides for viewing `x` as `shape` without a copy, or null when impossible (PyTorch's rule:
 * each run of old dims that is contiguous among itself may be split or merged freely). */
function viewStrides(x: Tensor, shape: number[]): number[] | null {
  if (x.isContiguous() || x.size === 0) return contiguousStrides(shape);
  const old = x.shape;
  const st = x.strides;
  const strides = new Array<number>(shape.length).fill(1);
  let viewD = shape.length - 1;
  let chunkBase = st[st.length - 1];
  let tensorNumel = 1;
  let viewNumel = 1;
  for (let d = old.length - 1; d >= 0; d--) {
    tensorNumel *= old[d];
    const runEnds = d === 0 || (old[d - 1] !== 1 && st[d - 1] !== tensorNumel * chunkBase);
    if (!runEnds) continue;
    while (viewD >= 0 && (viewNumel < tensorNumel || shape[viewD] === 1)) {
      strides[viewD] = viewNumel * chunkBase;
      viewNumel *= shape[viewD];
      viewD--;
    }
    if (viewNumel !== tensorNumel) return null;
    if (d > 0) {
      chunkBase = st[d - 1];
      tensorNumel = 1;
      viewNumel = 1;
    }
  }
  return viewD === -1 ? strides : null;
}

/** The same elements in a new shape (one dim may be -1); a view when the layout allows. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const s = resolveShape("reshape", x, shape);
  const strides = viewStrides(x, s);
  const back = (dy: Tensor) => reshape(dy, x.shape);
  if (strides) return viewOf("reshape", x, s, strides, x.offset, back);
  return viewOf("reshape", contiguous(x), s, contiguousStrides(s), 0, back);
}

/** Alias of reshape. */
export const view = reshape;

/** Reorder dimensions: output dim i is input dim `perm[i]`. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const p = perm.map((a) => normAxis("permute", a, x.ndim));
  if (p.length !== x.ndim || new Set(p).size !== p.length) {
    throw new ShapeError(`permute: [${perm.join(", ")}] is not a permutation of ${x.ndim} dims`);
  }
  const inv = new Array<number>(p.length);
  p.forEach((a, i) => (inv[a] = i));
  return viewOf(
    "permute",
    x,
    p.map((a) => x.shape[a]),
    p.map((a) => x.strides[a]),
    x.offset,
    (dy) => permute(dy, inv),
  );
}

/** Swap two dimensions (default: the last two). */
export function transpose(x: Tensor, d0 = -2, d1 = -1): Tensor {
  const a = normAxis("transpose", d0, x.ndim);
  const b = normAxis("transpose", d1, x.ndim);
  const perm = x.shape.map((_, i) => i);
  [perm[a], perm[b]] = [perm[b], perm[a]];
  return permute(x, perm);
}

/** Elements `start` to `start + length` along `axis` (a view). */
export function narrow(x: Tensor, axis: number, start: number, length: number): Tensor {
  const a = normAxis("narrow", axis, x.ndim);
  if (start < 0) start += x.shape[a];
  if (!Number.isInteger(start) || start < 0 || length < 0 || start + length > x.shape[a]) {
    throw new ShapeError(
      `narrow: range [${start}, ${start + length}) out of bounds for dim ${a} of ${
        fmtShape(x.shape)
      }`,
    );
  }
  const shape = [...x.shape];
  shape[a] = length;
  return viewOf(
    "narrow",
    x,
    shape,
    x.strides,
    x.offset + start * x.strides[a],
    (dy) => padAxis(dy, a, start, x.shape[a]),
  );
}

/** Python-style slice `[start, end)` along `axis` (negative indices count from the end). */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const a = normAxis("slice", axis, x.ndim);
  const n = x.shape[a];
  const s = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
  const e = Math.min(Math.max(end === undefined ? n : end < 0 ? end + n : end, s), n);
  return narrow(x, a, s, e - s);
}

// dy placed at [start, start + len) of a zero tensor of length `total` along `axis`.
let padAxisImpl: ((dy: Tensor, axis: number, start: number, total: number) => Tensor) | null = null;

/** Register the padding used by narrow's backward (kernels/concat.ts provides it). */
export function registerPadAxis(
  f: (dy: Tensor, axis: number, start: number, total: number) => Tensor,
): void {
  padAxisImpl = f;
}

function padAxis(dy: Tensor, axis: number, start: number, total: number): Tensor {
  if (!padAxisImpl) throw new Error("narrow backward: kernels/concat.ts not loaded");
  return padAxisImpl(dy, axis, start, total);
}

/** Broadcast `x` to `shape` (NumPy rules) as a view with stride 0 on expanded dims. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (shape.length < x.ndim) {
    throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  }
  const lead = shape.length - x.ndim;
  const strides = shape.map((d, i) => {
    if (i < lead) return 0;
    const xd = x.shape[i - lead];
    if (xd === d) return x.strides[i - lead];
    if (xd === 1) return 0;
    throw new ShapeError(`expand: cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  });
  if (lead === 0 && shape.every((d, i) => d === x.shape[i])) return x;
  return viewOf("expand", x, [...shape], strides, x.offset, (dy) => sumTo(dy, x.shape));
}

/** Sum `x` down to `shape` (the inverse of broadcasting `shape` up to x's shape). */
export function sumTo(x: Tensor, shape: readonly number[]): Tensor {
  const lead = x.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < x.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && x.shape[i] !== 1)) axes.push(i);
  }
  if (axes.length === 0) return x;
  return reshape(sum(x, axes, true), shape);
}

/** Insert a size-1 dim at `axis`. */
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = axis < 0 ? axis + x.ndim + 1 : axis;
  if (!Number.isInteger(a) || a < 0 || a > x.ndim) {
    throw new ShapeError(
      `unsqueeze: axis ${axis} out of range for a tensor of rank ${x.ndim} (valid: ${
        -x.ndim - 1
      } to ${x.ndim})`,
    );
  }
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}

/** Drop size-1 dims (all, or the one at `axis`). */
export function squeeze(x: Tensor, axis?: number): Tensor {
  if (axis === undefined) return reshape(x, x.shape.filter((d) => d !== 1));
  const a = normAxis("squeeze", axis, x.ndim);
  if (x.shape[a] !== 1) throw new ShapeError(`squeeze: dim ${a} of ${fmtShape(x.shape)} is not 1`);
  return reshape(x, x.shape.filter((_, i) => i !== a));
}

/** A row-major copy when `x` is not already row-major at offset 0 (differentiable). */
export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous() && x.offset === 0) return x;
  const y = copyOf(x);
  if (x.requiresGrad && isGradEnabled()) {
    y.requiresGrad = true;
    y.node = { name: "contiguous", inputs: [x], backward: (dy) => [dy] };
  }
  return y;
}

/** The same elements without autograd history (a view sharing storage, as in PyTorch). */
export function detach(x: Tensor): Tensor {
  return x.withLayout(x.shape, x.strides, x.offset);
}
