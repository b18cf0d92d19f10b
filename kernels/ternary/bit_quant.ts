// BitLinear's quantisers (BitNet b1.58, arXiv 2402.17764) as exact autograd ops, so training
// runs on the very integers the packed inference path multiplies:
//   activationLevels(x, g): RMSNorm(x)·g quantised per token to int8 levels q [..., K] (floats
//     holding integers in [-128, 127]) and s_x [..., 1]; the ternary quantiser's own kernel
//     (quant.ts, "levels" output), so the levels are the bytes inference packs.
//   ternaryLevels(w): q = clamp(round(w·s_w), -1, 1) with s_w = 1 / max(mean|w|, 1e-5) [].
//   dequantize(acc, s_x, s_w): y = acc · (1 / (s_w · s_x)), the packed GEMM's last step verbatim.
// BitLinear computes y = dequantize(q_x · q_wᵀ, s_x, s_w): the float matmul of integer levels
// is exact (|Σ| ≤ 128·K < 2^24), so y is bit-identical to the packed kernels' on one backend,
// and equal to the textbook linear(q_x/s_x, q_w/s_w) up to f32 rounding.
// Gradients are the straight-through estimator's (x_q = x + detach(q(x) − x)): the scales are
// constants, d q_x = d x_q / s_x, so the backward multiplies by s_x (then through RMSNorm's
// backward to x and g), and d w = d q_w · s_w.
// Layouts: row-major; s_x one per row of x (its last axis is K); s_w 0-d. Launch shapes are the
// underlying kernels': the quantiser's (quant.ts), elementwise 1-D grids for the rest.
// wasm (bit_quant_wasm.ts): the three elementwise kernels over ranges of elements or rows split
// by thread, bit-identical to the CPU (ternary levels from the float64 product).

import type { Tensor } from "../../engine/tensor.ts";
import { apply, applyAll, defineOp, type KernelOp } from "../../engine/op.ts";
import { fmtShape, ShapeError } from "../../engine/errors.ts";
import { noGrad } from "../../engine/autograd.ts";
import { elementwiseOp } from "../elementwise/elementwise.ts";
import { normGrads, type NormParams } from "../rows/norm.ts";
import { rowsOf } from "../rows/rows.ts";
import { activationLevelsKernel, type QuantParams } from "./quant.ts";
import { TERNARY_NORM_EPS, TERNARY_WEIGHT_EPS } from "./format.ts";
import { abs, clamp, roundHalfEven } from "../elementwise/unary.ts";
import { mean } from "../reduce.ts";
import { mul } from "../elementwise/binary.ts";
import { expand, reshape } from "../shape/view.ts";
import { dequantizeWasm, reciprocalWasm, ternaryLevelsWasm } from "./bit_quant_wasm.ts";
import { vexpr } from "../elementwise/wasm.ts";

const F32_MAX = 3.4e38;

/** Quantised values with their scale: value = q / scale. */
export interface Levels {
  /** Integer levels stored as floats. */
  q: Tensor;
  /** The scale (per row [..., 1] for activations, 0-d for weights); no gradient. */
  scale: Tensor;
}

/**
 * RMSNorm x [..., K] with weight g [K] (eps 1e-6 unless given), then absmax int8 levels per
 * token: q [..., K] and s_x [..., 1] = 127 / max(max|RMSNorm(x)·g|, 1e-5). The gradient of q is
 * the straight-through one: x and g get RMSNorm's gradients of (dq · s_x).
 */
export function activationLevels(x: Tensor, g: Tensor, eps = TERNARY_NORM_EPS): Levels {
  const K = x.ndim === 0 ? 0 : x.shape[x.ndim - 1];
  if (x.ndim < 1 || g.ndim !== 1 || g.shape[0] !== K) {
    throw new ShapeError(
      `activationLevels: x is ${fmtShape(x.shape)}, g is ${fmtShape(g.shape)}; expected x ` +
        `[..., K] and g [K]`,
    );
  }
  if (g.dtype !== x.dtype) {
    throw new TypeError(`activationLevels: g is ${g.dtype}, x is ${x.dtype}`);
  }
  const [rows] = rowsOf(x.shape);
  const p = { tokens: rows, inFeatures: K, eps };
  const [q, s] = applyAll(activationLevelsOp, [reshape(x, [rows, K]), g], p);
  return { q: reshape(q, x.shape), scale: reshape(s, [...x.shape.slice(0, -1), 1]) };
}

/**
 * The quantiser of ternary/quant.ts writing levels: q [T, K] (differentiable, straight through),
 * s_x [T] (a constant) and the RMSNorm factor rstd [T] (saved). Backward: x and g get
 * RMSNorm's gradients of dq·s_x.
 */
const activationLevelsOp = defineOp<QuantParams>({
  ...activationLevelsKernel,
  outputs: ([x], p) => [
    { shape: x.shape },
    { shape: [p.tokens], grad: false },
    { shape: [p.tokens], saved: true },
  ],
  backward(dq, { inputs: [x, g], outputs: [_q, scale], saved: [rstd], params: p }) {
    const np: NormParams = {
      kind: "rms",
      rows: p.tokens,
      len: p.inFeatures,
      eps: p.eps,
      hasBias: false,
    };
    const dxn = mul(dq, reshape(scale, [p.tokens, 1]));
    const grads = normGrads(dxn, x, g, null, rstd, np);
    dxn.dispose();
    return grads;
  },
});

/** The kernel of `ternaryLevels`: clamp(round(w·s), -1, 1) with s broadcast. */
export const ternaryLevelsOp: KernelOp<void> = {
  ...elementwiseOp<void>({
    name: "ternary_levels",
    wgsl: "clamp(round(a * b), -1.0, 1.0)",
    cpu: ([w, s], y) => {
      for (let i = 0; i < y.length; i++) {
        y[i] = Math.max(-1, Math.min(1, roundHalfEven(w[i] * s[i])));
      }
    },
    backward: (dy, { inputs: [_w, s] }) => [mul(dy, s), null],
  }),
  wasm: ternaryLevelsWasm(() => ternaryLevelsOp),
};

/** The kernel of 1/x (used for the scale, where WGSL's pow would lose precision). */
export const reciprocalOp: KernelOp<void> = {
  ...elementwiseOp<void>({
    name: "reciprocal",
    wgsl: "1.0 / a",
    cpu: ([a], y) => {
      for (let i = 0; i < y.length; i++) y[i] = 1 / a[i];
    },
  }),
  wasm: reciprocalWasm(() => reciprocalOp),
};

/** s_w = 1 / max(mean|w|, 1e-5) as a 0-d tensor on w's backend (no gradient). */
export function ternaryScale(w: Tensor): Tensor {
  return noGrad(() => {
    const m = clamp(mean(abs(w)), TERNARY_WEIGHT_EPS, F32_MAX);
    return apply(reciprocalOp, [m], undefined);
  });
}

/**
 * Absmean ternary levels of a weight: q = clamp(round(w·s_w), -1, 1) and s_w (0-d). The
 * gradient of q is the straight-through one: dw = dq · s_w.
 */
export function ternaryLevels(w: Tensor): Levels {
  const scale = ternaryScale(w);
  const q = apply(ternaryLevelsOp, [w, expand(scale, w.shape)], undefined);
  return { q, scale };
}

/**
 * `dequantize` on any layout: y = acc · (1 / (s_w · s_x)), all three broadcast (in f32 on wasm
 * as on the CPU: each step rounds to f32 there too, and the f64 division rounded to f32 is the
 * f32 division).
 */
const dequantizeAny: KernelOp<void> = elementwiseOp<void>({
  name: "dequantize",
  wgsl: "a * (1.0 / (c * b))",
  cpu: ([acc, sx, sw], y) => {
    const f = y instanceof Float32Array ? Math.fround : (v: number) => v;
    for (let i = 0; i < y.length; i++) y[i] = acc[i] * f(1 / f(sw[i] * sx[i]));
  },
  wasm: vexpr(({ m }, acc, sx, sw) => m.op("mul", acc, m.op("div", m.k(1), m.op("mul", sw, sx)))),
  // The scales are constants of the straight-through estimator: only acc gets a gradient.
  backward: (dy, { inputs: [_acc, sx, sw] }) => [
    apply(dequantizeOp, [dy, sx, sw], undefined),
    null,
    null,
  ],
});

/**
 * The kernel of `dequantize`: on wasm, a row kernel where acc is row-major with a scale per row
 * (the forward's layout), the strided elementwise loop for other layouts (a backward's dy).
 */
export const dequantizeOp: KernelOp<void> = {
  ...dequantizeAny,
  wasm: dequantizeWasm(() => dequantizeAny),
};

/**
 * acc [..., N] (integer sums of levels) -> acc · (1 / (s_w · s_x)) with s_x [..., 1] per row
 * and s_w 0-d: the packed GEMM's dequantising multiply, as a differentiable op in acc.
 */
export function dequantize(acc: Tensor, xScale: Tensor, wScale: Tensor): Tensor {
  if (wScale.size !== 1 || xScale.ndim !== acc.ndim || xScale.shape[xScale.ndim - 1] !== 1) {
    throw new ShapeError(
      `dequantize: acc ${fmtShape(acc.shape)}, x scale ${fmtShape(xScale.shape)}, w scale ` +
        `${fmtShape(wScale.shape)}; expected [..., N], [..., 1] and one value`,
    );
  }
  return apply(dequantizeOp, [
    acc,
    expand(xScale, acc.shape),
    expand(wScale.ndim === 0 ? wScale : reshape(wScale, []), acc.shape),
  ], undefined);
}
