// Binary elementwise ops with NumPy broadcasting: both inputs are expanded (stride-0 views, no
// copies) to the broadcast shape, and backward sums each gradient back to its input's shape.
// A number in place of a tensor goes to the scalar affine kernel instead of a new tensor.
// wasm: one f32x4 instruction per vector in the strided loop of wasm.ts (a broadcast operand is
// one splat per run, never copied; transposed inputs are copied row-major through 4×4 tiles
// first); memory-bound (add of [768, 128]: ~18 µs on one thread, which serves launches under
// 2^20 elements). Integer dtypes run the CPU loop on heap views (no model does it here).

import type { Tensor } from "../../engine/tensor.ts";
import { apply, type KernelOp } from "../../engine/op.ts";
import { broadcastShapes } from "../../engine/shape.ts";
import { fmtShape } from "../../engine/errors.ts";
import { elementwiseOp } from "./elementwise.ts";
import { expand, sumTo } from "../shape/view.ts";
import { neg, scale, shift } from "./unary.ts";
import { type EwBody, vexpr } from "./wasm.ts";

type Binary = (dy: Tensor, a: Tensor, b: Tensor) => [Tensor | null, Tensor | null];

/** y = a op b for a binary f32x4 instruction. */
const vbin = (op: "add" | "sub" | "mul" | "div" | "max"): EwBody =>
  vexpr(({ m }, a, b) => m.op(op, a, b));

/** 1.0 where the f32x4 comparison holds, else 0. */
const vcmp = (op: "ge" | "eq"): EwBody =>
  vexpr(({ m }, a, b) => m.bit("and", m.op(op, a, b), m.k(1)));

function binary(
  name: string,
  wgsl: string,
  wasm: EwBody,
  cpu: (
    a: ArrayLike<number>,
    b: ArrayLike<number>,
    y: { [i: number]: number; length: number },
  ) => void,
  backward: Binary,
): KernelOp<void> {
  return elementwiseOp<void>({
    name,
    wgsl,
    wasm,
    cpu: ([a, b], y) => cpu(a, b, y),
    // Gradients come back at the broadcast shape; reduce them to each input's own shape.
    backward: (dy, { inputs: [a, b] }) => backward(dy, a, b),
  });
}

/** The kernel of `add`: y = a + b. */
export const addOp: KernelOp<void> = binary("add", "a + b", vbin("add"), (a, b, y) => {
  for (let i = 0; i < y.length; i++) y[i] = a[i] + b[i];
}, (dy) => [dy, dy]);

/** The kernel of `sub`: y = a - b. */
export const subOp: KernelOp<void> = binary("sub", "a - b", vbin("sub"), (a, b, y) => {
  for (let i = 0; i < y.length; i++) y[i] = a[i] - b[i];
}, (dy) => [dy, neg(dy)]);

/** The kernel of `mul`: y = a * b. */
export const mulOp: KernelOp<void> = binary("mul", "a * b", vbin("mul"), (a, b, y) => {
  for (let i = 0; i < y.length; i++) y[i] = a[i] * b[i];
}, (dy, a, b) => [mul(dy, b), mul(dy, a)]);

/** The kernel of `div`: y = a / b. */
export const divOp: KernelOp<void> = binary("div", "a / b", vbin("div"), (a, b, y) => {
  for (let i = 0; i < y.length; i++) y[i] = a[i] / b[i];
}, (dy, a, b) => [div(dy, b), neg(div(mul(dy, a), mul(b, b)))]); // d(a/b)/db = -a/b^2

/** The kernel of `maximum`: y = max(a, b) (ties send the gradient to a). */
export const maximumOp: KernelOp<void> = binary("maximum", "max(a, b)", vbin("max"), (a, b, y) => {
  for (let i = 0; i < y.length; i++) y[i] = Math.max(a[i], b[i]);
}, (dy, a, b) => {
  const m = ge(a, b); // ties send the gradient to a
  return [mul(dy, m), mul(dy, sub(1, m))];
});

/** 1 where a >= b else 0 (float; no gradient). */
export const geOp: KernelOp<void> = binary(
  "ge",
  "select(0.0, 1.0, a >= b)",
  vcmp("ge"),
  (a, b, y) => {
    for (let i = 0; i < y.length; i++) y[i] = a[i] >= b[i] ? 1 : 0;
  },
  () => [null, null],
);

/** 1 where a == b else 0 (float; no gradient). */
export const eqOp: KernelOp<void> = binary(
  "eq",
  "select(0.0, 1.0, a == b)",
  vcmp("eq"),
  (a, b, y) => {
    for (let i = 0; i < y.length; i++) y[i] = a[i] === b[i] ? 1 : 0;
  },
  () => [null, null],
);

/** Broadcast, apply, and sum gradients back to each input's shape. */
function broadcastApply(op: ReturnType<typeof binary>, a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== b.dtype) {
    throw new TypeError(
      `${op.name}: dtypes differ: a is ${a.dtype} ${fmtShape(a.shape)}, b is ${b.dtype} ${
        fmtShape(b.shape)
      }`,
    );
  }
  const shape = broadcastShapes(op.name, a.shape, b.shape);
  const y = apply(op, [expand(a, shape), expand(b, shape)], undefined);
  return y;
}

/** a + b (broadcasting; b may be a number). */
export function add(a: Tensor, b: Tensor | number): Tensor {
  return typeof b === "number" ? shift(a, b) : broadcastApply(addOp, a, b);
}

/** a - b (broadcasting; either may be a number). */
export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  if (typeof a === "number") return shift(neg(b as Tensor), a);
  return typeof b === "number" ? shift(a, -b) : broadcastApply(subOp, a, b);
}

/** a * b (broadcasting; b may be a number). */
export function mul(a: Tensor, b: Tensor | number): Tensor {
  return typeof b === "number" ? scale(a, b) : broadcastApply(mulOp, a, b);
}

/** a / b (broadcasting; b may be a number). */
export function div(a: Tensor, b: Tensor | number): Tensor {
  return typeof b === "number" ? scale(a, 1 / b) : broadcastApply(divOp, a, b);
}

/** Elementwise max(a, b) (broadcasting). */
export function maximum(a: Tensor, b: Tensor): Tensor {
  return broadcastApply(maximumOp, a, b);
}

/** 1 where a >= b else 0 (broadcasting, no gradient). */
export function ge(a: Tensor, b: Tensor): Tensor {
  return broadcastApply(geOp, a, b);
}

/** 1 where a == b else 0 (broadcasting, no gradient). */
export function eq(a: Tensor, b: Tensor): Tensor {
  return broadcastApply(eqOp, a, b);
}

export { sumTo };
