// Unary elementwise ops: y = f(x), same shape, one invocation per element (elementwise.ts).
// Each op's backward sits under its forward as a one-line derivative. round is half-to-even on
// every backend (WGSL's round, wasm's f32x4.nearest); sign and round pass no gradient.
// wasm: each op's f32x4 code in the strided SIMD loop of wasm.ts, output ranges split over the
// threads from 2^20 elements × cost. Memory-bound (~18 µs for 98,304 elements on one thread),
// except exp, log, tanh, sigmoid and fractional pow: their vector polynomials (wasm_math.ts, 8
// vectors interleaved) make them compute-bound (exp of 393,216: ~0.4 ms a thread; cost 8-20,
// so from ~50,000-130,000 elements they use both threads). pow bakes an integer exponent
// (|p| ≤ 64) into its module as repeated squaring (p < 0: one division), 1/2 as sqrt; other p
// use exp(p·log x) (relative error about (1 + |p·ln x|)·1.2e-7: 4.4e-7 for x^1.5 at x = 88.5).

import type { Tensor } from "../../engine/tensor.ts";
import type { V, VecMath } from "./wasm_math.ts";
import { apply, type KernelOp } from "../../engine/op.ts";
import { elementwiseOp } from "./elementwise.ts";
import { div, mul, sub } from "./binary.ts";
import { type EwBody, vexpr } from "./wasm.ts";

/** Scalar parameters of the unary kernels (`u.f.x`, `u.f.y` in WGSL); unused ones are 0. */
export type UnaryScalars = { a: number; b: number };
const NONE: UnaryScalars = { a: 0, b: 0 };

function unary(
  name: string,
  wgsl: string,
  wasm: EwBody | ((p: UnaryScalars) => EwBody),
  cpu: (x: ArrayLike<number>, y: { [i: number]: number; length: number }, p: UnaryScalars) => void,
  backward?: (dy: Tensor, x: Tensor, y: Tensor, p: UnaryScalars) => Tensor | null,
  helpers = "",
): KernelOp<UnaryScalars> {
  return elementwiseOp<UnaryScalars>({
    name,
    wgsl,
    wasm,
    helpers,
    cpu: ([x], y, p) => cpu(x, y, p),
    scalars: (p) => [p.a, p.b],
    backward: backward && ((dy, { inputs: [x], out, params }) => [backward(dy, x, out, params)]),
  });
}

/** y = op(x) for a one-operand f32x4 instruction. */
const vop = (op: "neg" | "abs" | "sqrt" | "nearest"): EwBody => vexpr(({ m }, x) => m.un(op, x));

/** x^k for an integer k ≥ 1 by repeated squaring (the exponent is baked in). */
function powInt(m: VecMath, x: V, k: number): V {
  let base = x;
  let acc: V | null = null;
  for (let bit = k; bit > 0; bit >>= 1) {
    if (bit & 1) acc = acc ? m.op("mul", acc, base) : base;
    if (bit > 1) base = m.op("mul", base, base);
  }
  return acc!;
}

/**
 * pow's wasm body for exponent p: 1 for p = 0, repeated squaring for integers up to 64 (then
 * 1/r for p < 0), sqrt for 1/2, else exp(p·log x) with Math.pow's −∞ base (∞ or 0).
 */
function powBody({ a: p }: UnaryScalars): EwBody {
  if (p === 0) return vexpr(({ m }) => m.k(1), { variant: "zero" });
  const k = Math.abs(p);
  if (Number.isInteger(k) && k <= 64) {
    return vexpr(({ m }, x) => {
      const r = powInt(m, x, k);
      return p > 0 ? r : m.op("div", m.k(1), r);
    }, { variant: `int${p}`, cost: 2 });
  }
  if (p === 0.5) return vop("sqrt");
  return vexpr(({ m, scalars: [ps] }, x) => {
    const y = m.exp(m.op("mul", m.log(x), ps));
    return m.select(m.op("eq", x, m.k(-Infinity)), m.k(p > 0 ? Infinity : 0), y);
  }, { variant: `real${p > 0 ? "+" : "-"}`, cost: 20, width: 8 });
}

/** Round half to even, as WGSL's round() does. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The kernel of `neg`: y = -x. */
export const negOp: KernelOp<UnaryScalars> = unary("neg", "-a", vop("neg"), (x, y) => {
  for (let i = 0; i < y.length; i++) y[i] = -x[i];
}, (dy) => neg(dy)); // d(-x) = -1

/** The kernel of `exp`: y = e^x. */
export const expOp: KernelOp<UnaryScalars> = unary(
  "exp",
  "exp(a)",
  vexpr(({ m }, x) => m.exp(x), { cost: 8, width: 8 }),
  (x, y) => {
    for (let i = 0; i < y.length; i++) y[i] = Math.exp(x[i]);
  },
  (dy, _x, y) => mul(dy, y),
); // d exp(x) = exp(x)

/** The kernel of `log`: y = ln x. */
export const logOp: KernelOp<UnaryScalars> = unary(
  "log",
  "log(a)",
  vexpr(({ m }, x) => m.log(x), { cost: 10, width: 8 }),
  (x, y) => {
    for (let i = 0; i < y.length; i++) y[i] = Math.log(x[i]);
  },
  (dy, x) => div(dy, x),
); // d log(x) = 1/x

/** The kernel of `sqrt`: y = sqrt(x). */
export const sqrtOp: KernelOp<UnaryScalars> = unary("sqrt", "sqrt(a)", vop("sqrt"), (x, y) => {
  for (let i = 0; i < y.length; i++) y[i] = Math.sqrt(x[i]);
}, (dy, _x, y) => div(scale(dy, 0.5), y)); // d sqrt(x) = 1/(2 sqrt(x))

/** The kernel of `rsqrt`: y = 1 / sqrt(x). */
export const rsqrtOp: KernelOp<UnaryScalars> = unary(
  "rsqrt",
  "inverseSqrt(a)",
  vexpr(
    ({ m }, x) => m.op("div", m.k(1), m.un("sqrt", x)),
    { cost: 2 },
  ),
  (x, y) => {
    for (let i = 0; i < y.length; i++) y[i] = 1 / Math.sqrt(x[i]);
  },
  (dy, _x, y) => mul(dy, scale(pow(y, 3), -0.5)),
); // d x^-1/2 = -x^-3/2 / 2

/** The kernel of `pow`: y = x^p for the scalar p (`a`). */
export const powOp: KernelOp<UnaryScalars> = unary(
  "pow",
  "pow_s(a, u.f.x)",
  powBody,
  (x, y, { a: p }) => {
    for (let i = 0; i < y.length; i++) y[i] = Math.pow(x[i], p);
  },
  (dy, x, _y, { a: p }) => mul(dy, scale(pow(x, p - 1), p)), // d x^p = p x^(p-1)
  // WGSL pow is undefined for negative bases; integer exponents keep the sign like Math.pow.
  `fn pow_s(x: f32, p: f32) -> f32 {
  if (p == 0.0) { return 1.0; }
  if (p == round(p)) {
    let m = pow(abs(x), p);
    return select(m, -m, x < 0.0 && (i32(p) & 1) == 1);
  }
  return pow(x, p);
}`,
);

/** The kernel of `abs`: y = |x|. */
export const absOp: KernelOp<UnaryScalars> = unary(
  "abs",
  "abs(a)",
  // The sign bit cleared with a hoisted mask (V8's f32x4.abs rebuilds its mask every vector).
  vexpr(({ m }, x) => m.bit("and", x, m.ki(0x7fffffff))),
  (x, y) => {
    for (let i = 0; i < y.length; i++) y[i] = Math.abs(x[i]);
  },
  (dy, x) => mul(dy, sign(x)),
); // d|x| = sign(x)

/** The kernel of `sign`: y = -1, 0 or 1 (no gradient). */
export const signOp: KernelOp<UnaryScalars> = unary(
  "sign",
  "sign(a)",
  vexpr(({ m }, x) => {
    // 1 above 0, −1 below, else x itself (±0 and NaN, as Math.sign)
    const below = m.select(m.op("lt", x, m.k(0)), m.k(-1), x);
    return m.select(m.op("gt", x, m.k(0)), m.k(1), below);
  }),
  (x, y) => {
    for (let i = 0; i < y.length; i++) y[i] = Math.sign(x[i]);
  },
);

/** The kernel of `round`: half to even (no gradient). */
export const roundOp: KernelOp<UnaryScalars> = unary(
  "round",
  "round(a)",
  vop("nearest"),
  (x, y) => {
    for (let i = 0; i < y.length; i++) y[i] = roundHalfEven(x[i]);
  },
);

/** The kernel of `clamp`: y = min(max(x, lo), hi) with lo = `a`, hi = `b`. */
export const clampOp: KernelOp<UnaryScalars> = unary(
  "clamp",
  "clamp(a, u.f.x, u.f.y)",
  vexpr(({ m, scalars: [lo, hi] }, x) => m.op("min", m.op("max", x, lo), hi)),
  (x, y, { a: lo, b: hi }) => {
    for (let i = 0; i < y.length; i++) y[i] = Math.min(Math.max(x[i], lo), hi);
  },
  (dy, x, _y, p) => apply(clampBackwardOp, [dy, x], p), // 1 inside [lo, hi], else 0
);

/** dx = dy where lo <= x <= hi, else 0. */
export const clampBackwardOp: KernelOp<UnaryScalars> = elementwiseOp<UnaryScalars>({
  name: "clamp_backward",
  wgsl: "select(0.0, a, b >= u.f.x && b <= u.f.y)",
  wasm: vexpr(({ m, scalars: [lo, hi] }, dy, x) =>
    m.bit("and", dy, m.bit("and", m.op("ge", x, lo), m.op("le", x, hi)))
  ),
  scalars: (p) => [p.a, p.b],
  cpu([dy, x], y, { a: lo, b: hi }) {
    for (let i = 0; i < y.length; i++) y[i] = x[i] >= lo && x[i] <= hi ? dy[i] : 0;
  },
});

/** The kernel of `relu`: y = max(x, 0). */
export const reluOp: KernelOp<UnaryScalars> = unary(
  "relu",
  "max(a, 0.0)",
  // x where x > 0, else +0 (NaN and −0 included, as the CPU loop)
  vexpr(({ m }, x) => m.bit("and", x, m.op("gt", x, m.k(0)))),
  (x, y) => {
    for (let i = 0; i < y.length; i++) y[i] = x[i] > 0 ? x[i] : 0;
  },
  (dy, x) => apply(reluBackwardOp, [dy, x], NONE),
); // 1 where x > 0

/** dx = dy where x > 0, else 0. */
export const reluBackwardOp: KernelOp<UnaryScalars> = elementwiseOp<UnaryScalars>({
  name: "relu_backward",
  wgsl: "select(0.0, a, b > 0.0)",
  wasm: vexpr(({ m }, dy, x) => m.bit("and", dy, m.op("gt", x, m.k(0)))),
  cpu([dy, x], y) {
    for (let i = 0; i < y.length; i++) y[i] = x[i] > 0 ? dy[i] : 0;
  },
});

/** The kernel of `tanh`. */
export const tanhOp: KernelOp<UnaryScalars> = unary(
  "tanh",
  "tanh(clamp(a, -15.0, 15.0))",
  vexpr(({ m }, x) => m.tanh(x), { cost: 8, width: 8 }),
  (x, y) => {
    for (let i = 0; i < y.length; i++) y[i] = Math.tanh(x[i]);
  },
  (dy, _x, y) => mul(dy, sub(1, mul(y, y))),
); // d tanh = 1 - tanh^2

/** The kernel of `sigmoid`: y = 1 / (1 + e^-x). */
export const sigmoidOp: KernelOp<UnaryScalars> = unary(
  "sigmoid",
  "1.0 / (1.0 + exp(-a))",
  vexpr(({ m }, x) => m.sigmoid(x), { cost: 8, width: 8 }),
  (x, y) => {
    for (let i = 0; i < y.length; i++) y[i] = 1 / (1 + Math.exp(-x[i]));
  },
  (dy, _x, y) => mul(dy, mul(y, sub(1, y))),
); // d sigmoid = s (1 - s)

/** y = a·x + b (scalars); the scalar forms of mul and add route here. */
export const affineOp: KernelOp<UnaryScalars> = unary(
  "affine",
  "a * u.f.x + u.f.y",
  vexpr(({ m, scalars: [a, b] }, x) => m.madd(x, a, b)),
  (x, y, { a, b }) => {
    for (let i = 0; i < y.length; i++) y[i] = a * x[i] + b;
  },
  (dy, _x, _y, { a }) => scale(dy, a), // d(ax + b) = a
);

/** -x */
export const neg = (x: Tensor): Tensor => apply(negOp, [x], NONE);
/** e^x */
export const exp = (x: Tensor): Tensor => apply(expOp, [x], NONE);
/** Natural logarithm. */
export const log = (x: Tensor): Tensor => apply(logOp, [x], NONE);
/** Square root. */
export const sqrt = (x: Tensor): Tensor => apply(sqrtOp, [x], NONE);
/** 1 / sqrt(x). */
export const rsqrt = (x: Tensor): Tensor => apply(rsqrtOp, [x], NONE);
/** x^p for a scalar exponent p. */
export const pow = (x: Tensor, p: number): Tensor => apply(powOp, [x], { a: p, b: 0 });
/** |x| */
export const abs = (x: Tensor): Tensor => apply(absOp, [x], NONE);
/** -1, 0 or 1 (no gradient). */
export const sign = (x: Tensor): Tensor => apply(signOp, [x], NONE);
/** Round half to even (no gradient; use the straight-through pattern to train through it). */
export const round = (x: Tensor): Tensor => apply(roundOp, [x], NONE);
/** Clamp into [lo, hi]. */
export const clamp = (x: Tensor, lo: number, hi: number): Tensor =>
  apply(clampOp, [x], { a: lo, b: hi });
/** max(x, 0) */
export const relu = (x: Tensor): Tensor => apply(reluOp, [x], NONE);
/** Hyperbolic tangent. */
export const tanh = (x: Tensor): Tensor => apply(tanhOp, [x], NONE);
/** Logistic sigmoid 1 / (1 + e^-x). */
export const sigmoid = (x: Tensor): Tensor => apply(sigmoidOp, [x], NONE);
/** s·x */
export const scale = (x: Tensor, s: number): Tensor => apply(affineOp, [x], { a: s, b: 0 });
/** x + c */
export const shift = (x: Tensor, c: number): Tensor => apply(affineOp, [x], { a: 1, b: c });
