// View ops: new shapes, strides and offsets over the same storage, no copy (reshape copies only
// when the layout makes a view impossible). Their backward maps the gradient back the same way;
// expand's backward sums over the broadcast dimensions.

import type { Tensor } from "../../engine/tensor.ts";
import { fmtShape, ShapeError } from "../../engine/errors.ts";
import { apply, defineOp, type Layout, type ViewOp } from "../../engine/op.ts";
import { contiguousStrides, normAxis, sizeOf } from "../../engine/shape.ts";
import { contiguous } from "../elementwise/copy.ts";
import { padAxis } from "./concat.ts";
import { sum } from "../reduce.ts";

/** A view of `x` with `layout`, by `op` (whose backward maps the view's gradient back). */
function viewOf(op: ViewOp<Layout>, x: Tensor, layout: Layout): Tensor {
  return apply(op, [x], layout);
}

const asLayout = (_x: Tensor, l: Layout): Layout => l;

/** reshape's view: dx = dy in x's shape. */
const reshapeOp = defineOp<Layout>({
  name: "reshape",
  view: asLayout,
  backward: (dy, { inputs: [x] }) => [reshape(dy, x.shape)],
});

/** permute's view: dx = dy with the inverse permutation (recovered from the strides). */
const permuteOp = defineOp<Layout & { perm: number[] }>({
  name: "permute",
  view: asLayout,
  backward: (dy, { params: { perm } }) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((a, i) => (inv[a] = i));
    return [permute(dy, inv)];
  },
});

/** narrow's view: dx = dy placed at [start, start + len) of zeros along the axis. */
const narrowOp = defineOp<Layout & { axis: number; start: number }>({
  name: "narrow",
  view: asLayout,
  backward: (dy, { inputs: [x], params: { axis, start } }) => [
    padAxis(dy, axis, start, x.shape[axis]),
  ],
});

/** expand's view (stride 0 on broadcast dims): dx = dy summed back to x's shape. */
const expandOp = defineOp<Layout>({
  name: "expand",
  view: asLayout,
  backward: (dy, { inputs: [x] }) => [sumTo(dy, x.shape)],
});

/** detach's view: the same elements, no gradient. */
const detachOp = defineOp<Layout>({ name: "detach", view: asLayout });

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
  x.assertAlive("reshape");
  const s = resolveShape("reshape", x, shape);
  const strides = viewStrides(x, s);
  if (strides) return viewOf(reshapeOp, x, { shape: s, strides, offset: x.offset });
  return viewOf(reshapeOp, contiguous(x), { shape: s, strides: contiguousStrides(s), offset: 0 });
}

/** Alias of reshape. */
export const view = reshape;

/** Reorder dimensions: output dim i is input dim `perm[i]`. */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  const p = perm.map((a) => normAxis("permute", a, x.ndim));
  if (p.length !== x.ndim || new Set(p).size !== p.length) {
    throw new ShapeError(`permute: [${perm.join(", ")}] is not a permutation of ${x.ndim} dims`);
  }
  return apply(permuteOp, [x], {
    shape: p.map((a) => x.shape[a]),
    strides: p.map((a) => x.strides[a]),
    offset: x.offset,
    perm: p,
  });
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
  return apply(narrowOp, [x], {
    shape,
    strides: x.strides,
    offset: x.offset + start * x.strides[a],
    axis: a,
    start,
  });
}

/** Python-style slice `[start, end)` along `axis` (negative indices count from the end). */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const a = normAxis("slice", axis, x.ndim);
  const n = x.shape[a];
  const s = Math.min(Math.max(start < 0 ? start + n : start, 0), n);
  const e = Math.min(Math.max(end === undefined ? n : end < 0 ? end + n : end, s), n);
  return narrow(x, a, s, e - s);
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
  return viewOf(expandOp, x, { shape: [...shape], strides, offset: x.offset });
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

/** The same elements without autograd history (a view sharing storage, as in PyTorch). */
export function detach(x: Tensor): Tensor {
  return viewOf(detachOp, x, { shape: x.shape, strides: x.strides, offset: x.offset });
}
