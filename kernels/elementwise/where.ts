// Selection by a condition: where(cond, a, b) (cond ≠ 0 → a, else b; NumPy broadcasting over all
// three) and maskedFill(x, mask, value) (mask ≠ 0 → value, else x). Elementwise (elementwise.ts):
// one invocation per output element, workgroup 256, inputs read through their strides, so
// broadcast operands (stride 0) are never copied. cond and mask may be any dtype; NaN counts as
// nonzero. Gradients: a gets dy where cond ≠ 0, b where cond = 0, x where mask = 0; cond and
// mask get none. maskedFill needs a float x (value goes through an f32 uniform on WebGPU).
// wasm: the condition becomes a lane mask (f32x4.ne or i32x4.ne against 0, by its dtype) and
// v128.bitselect picks the lanes, so a and b may be of any dtype (bits are moved, not converted);
// in the strided loop of wasm.ts, memory-bound (one thread under 2^20 elements).

import type { Tensor } from "../../engine/tensor.ts";
import { full } from "../../engine/creation.ts";
import { isFloat } from "../../engine/dtype.ts";
import { fmtShape, ShapeError } from "../../engine/errors.ts";
import { apply, type KernelOp } from "../../engine/op.ts";
import { broadcastShapes, sameShape } from "../../engine/shape.ts";
import { elementwiseOp } from "./elementwise.ts";
import { expand } from "../shape/view.ts";
import type { DType } from "../../engine/dtype.ts";
import type { V, VecMath } from "./wasm_math.ts";
import { vexpr } from "./wasm.ts";

/** The lane mask of x ≠ 0 (NaN counts as nonzero, −0 as zero) for x's dtype. */
function nonzero(m: VecMath, x: V, dtype: DType): V {
  return dtype === "f32" ? m.op("ne", x, m.k(0)) : m.iop("ne", x, m.ki(0));
}

const anyDtype = () => true;
const floatFirst = (dtypes: DType[]) => dtypes[0] === "f32" && dtypes.at(-1) === "f32";

/** y = a where cond ≠ 0, else b (inputs in that order, already broadcast). */
export const whereOp: KernelOp<void> = elementwiseOp<void>({
  name: "where",
  wgsl: "select(c, b, a != 0)",
  wasm: vexpr(({ m, dtypes }, cond, a, b) => m.select(nonzero(m, cond, dtypes[0]), a, b)),
  wasmDtypes: anyDtype,
  dtype: (inputs) => inputs[1].dtype,
  cpu([cond, a, b], y) {
    for (let i = 0; i < y.length; i++) y[i] = cond[i] !== 0 ? a[i] : b[i];
  },
  // Gradients at the broadcast shape; expand's backward sums them back to a's and b's shapes.
  backward: (dy, { inputs: [cond] }) => [null, maskGrad(dy, cond, true), maskGrad(dy, cond, false)],
});

/** dy where (mask ≠ 0) equals `keepNonzero`, else 0. */
export const maskGradOp: KernelOp<{ keepNonzero: boolean }> = elementwiseOp<
  { keepNonzero: boolean }
>({
  name: "mask_grad",
  wgsl: "select(0.0, a, (b != 0) == (u.f.x != 0.0))",
  wasm: ({ keepNonzero }) =>
    vexpr(
      ({ m, dtypes }, dy, mask) =>
        m.bit(keepNonzero ? "and" : "andnot", dy, nonzero(m, mask, dtypes[1])),
      { variant: keepNonzero ? "keep-nonzero" : "keep-zero" },
    ),
  wasmDtypes: floatFirst,
  scalars: ({ keepNonzero }) => [keepNonzero ? 1 : 0],
  cpu([dy, mask], y, { keepNonzero }) {
    for (let i = 0; i < y.length; i++) y[i] = (mask[i] !== 0) === keepNonzero ? dy[i] : 0;
  },
});

function maskGrad(dy: Tensor, mask: Tensor, keepNonzero: boolean): Tensor {
  return apply(maskGradOp, [dy, expand(mask, dy.shape)], { keepNonzero });
}

/** y = value where mask ≠ 0, else x (mask already broadcast to x). */
export const maskedFillOp: KernelOp<{ value: number }> = elementwiseOp<{ value: number }>({
  name: "masked_fill",
  wgsl: "select(a, u.f.x, b != 0)",
  wasm: vexpr(({ m, dtypes, scalars: [value] }, x, mask) =>
    m.select(nonzero(m, mask, dtypes[1]), value, x)
  ),
  wasmDtypes: floatFirst,
  scalars: ({ value }) => [value],
  cpu([x, mask], y, { value }) {
    for (let i = 0; i < y.length; i++) y[i] = mask[i] !== 0 ? value : x[i];
  },
  backward: (dy, { inputs: [_x, mask] }) => [maskGrad(dy, mask, false), null], // filled: 0
});

function scalarLike(v: Tensor | number, like: Tensor): Tensor {
  if (typeof v !== "number") return v;
  return full([], v, { dtype: like.dtype, backend: like.backend });
}

/**
 * Elementwise choice: `a` where `cond` is nonzero, else `b` (broadcasting all three; a number
 * stands for a scalar of the other operand's dtype). Gradients flow to a and b, masked.
 */
export function where(cond: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === "number" && typeof b === "number") {
    a = full([], a, { backend: cond.backend });
  }
  const ta = scalarLike(a, b as Tensor);
  const tb = scalarLike(b, ta);
  if (ta.dtype !== tb.dtype) {
    throw new TypeError(
      `where: a is ${ta.dtype} ${fmtShape(ta.shape)}, b is ${tb.dtype} ${fmtShape(tb.shape)}`,
    );
  }
  const shape = broadcastShapes("where", broadcastShapes("where", cond.shape, ta.shape), tb.shape);
  return apply(whereOp, [expand(cond, shape), expand(ta, shape), expand(tb, shape)], undefined);
}

/** `value` where `mask` (broadcast to x's shape) is nonzero, else x; x must be float. */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  if (!isFloat(x.dtype)) throw new TypeError(`maskedFill: x must be float, got ${x.dtype}`);
  const shape = broadcastShapes("maskedFill", x.shape, mask.shape);
  if (!sameShape(shape, x.shape)) {
    throw new ShapeError(
      `maskedFill: mask ${fmtShape(mask.shape)} does not broadcast to x ${fmtShape(x.shape)}`,
    );
  }
  return apply(maskedFillOp, [x, expand(mask, x.shape)], { value });
}
