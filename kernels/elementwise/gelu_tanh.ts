// GELU in its tanh approximation (Hendrycks & Gimpel, arXiv 1606.08415, eq. for the fast form),
// as GPT-2 and Hugging Face's `gelu_new` compute it: 0.5·x·(1 + tanh(u)), u = √(2/π)·(x +
// 0.044715·x³); fused backward dx = dy·(s + x·s·(1 − s)·2u'), s = σ(2u), u' = √(2/π)·(1 +
// 3·0.044715·x²). Shapes: any, elementwise (elementwise.ts: one invocation per element, workgroup
// 256, inputs read through their strides; launches over one binding are cut into rows).
// 1 + tanh(u) is written 2·σ(2u), with σ(z) = 1/(1 + e^−z) for z ≥ 0 and e^z/(1 + e^z) below:
// the same function, but the negative tail keeps its relative accuracy instead of cancelling in
// 1 + tanh(u), and no exp overflows (every backend: CPU float64, WGSL and wasm float32).
// wasm: the same formulas on f32x4 vectors (exp of wasm_math.ts) in the strided loop of wasm.ts;
// compute-bound (one exp and one division per vector, 8 vectors interleaved: 768×512 in ~0.55 ms
// forward on one thread), so from ~100,000 elements a launch uses both threads.

import type { Tensor } from "../../engine/tensor.ts";
import { apply, type KernelOp } from "../../engine/op.ts";
import { elementwiseOp } from "./elementwise.ts";
import type { V, VecMath } from "./wasm_math.ts";
import { vexpr } from "./wasm.ts";

const SQRT_2_OVER_PI = 0.7978845608028654;
const CUBIC = 0.044715;

/** σ(z) = 1/(1 + e^−z) without overflow and with relative accuracy for z < 0 (float64). */
function sigmoid(z: number): number {
  const e = Math.exp(-Math.abs(z));
  return z >= 0 ? 1 / (1 + e) : e / (1 + e);
}

/** gelu_tanh(x) in float64: x·σ(2u), u = √(2/π)·(x + 0.044715·x³). */
export function geluTanh64(x: number): number {
  return x * sigmoid(2 * SQRT_2_OVER_PI * (x + CUBIC * x * x * x));
}

/** d gelu_tanh(x)/dx in float64: s + x·s·(1 − s)·2u', s = σ(2u). */
export function geluTanhGrad64(x: number): number {
  const s = sigmoid(2 * SQRT_2_OVER_PI * (x + CUBIC * x * x * x));
  const du = SQRT_2_OVER_PI * (1 + 3 * CUBIC * x * x);
  return s + x * s * (1 - s) * 2 * du;
}

const GELU_TANH_WGSL = /* wgsl */ `
fn sigmoid_2u(x: f32) -> f32 {
  let z = 2.0 * ${SQRT_2_OVER_PI} * (x + ${CUBIC} * x * x * x);
  let e = exp(-abs(z));
  return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
}
fn gelu_tanh_grad(x: f32) -> f32 {
  let s = sigmoid_2u(x);
  return s + x * s * (1.0 - s) * 2.0 * ${SQRT_2_OVER_PI} * (1.0 + ${3 * CUBIC} * x * x);
}`;

/**
 * σ(2u) and 1 − σ(2u) on f32x4 lanes (the WGSL's sigmoid_2u): with e = e^−|2u|, one is 1/(1 + e)
 * and the other e/(1 + e), so neither cancels; x2 = x².
 */
function sigmoid2u4(m: VecMath, x: V, x2: V): [V, V] {
  const z = m.op("mul", m.madd(m.op("mul", x, x2), m.k(CUBIC), x), m.k(2 * SQRT_2_OVER_PI));
  const e = m.exp(m.un("neg", m.un("abs", z)));
  const r = m.op("div", m.k(1), m.op("add", m.k(1), e));
  const er = m.op("mul", e, r);
  const positive = m.op("ge", z, m.k(0));
  return [m.select(positive, r, er), m.select(positive, er, r)];
}

/** y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))). */
export const geluTanhOp: KernelOp<void> = elementwiseOp<void>({
  name: "gelu_tanh",
  wgsl: "a * sigmoid_2u(a)",
  helpers: GELU_TANH_WGSL,
  wasm: vexpr(({ m }, x) => m.op("mul", x, sigmoid2u4(m, x, m.op("mul", x, x))[0]), {
    cost: 10,
    width: 8,
  }),
  cpu([x], y) {
    for (let i = 0; i < y.length; i++) y[i] = geluTanh64(x[i]);
  },
  backward: (dy, { inputs: [x] }) => [apply(geluTanhBackwardOp, [dy, x], undefined)],
});

/** dx = dy·gelu_tanh'(x). */
export const geluTanhBackwardOp: KernelOp<void> = elementwiseOp<void>({
  name: "gelu_tanh_backward",
  wgsl: "a * gelu_tanh_grad(b)",
  helpers: GELU_TANH_WGSL,
  wasm: vexpr(({ m }, dy, x) => {
    // dy·(s + x·s·(1 − s)·2u'), 2u' = 2·√(2/π)·(1 + 3·0.044715·x²)
    const x2 = m.op("mul", x, x);
    const [s, sc] = sigmoid2u4(m, x, x2);
    const du2 = m.op("mul", m.madd(x2, m.k(3 * CUBIC), m.k(1)), m.k(2 * SQRT_2_OVER_PI));
    const xs1s = m.op("mul", m.op("mul", x, s), sc);
    return m.op("mul", dy, m.madd(xs1s, du2, s));
  }, { cost: 12, width: 8 }),
  cpu([dy, x], dx) {
    for (let i = 0; i < dx.length; i++) dx[i] = dy[i] * geluTanhGrad64(x[i]);
  },
});

/**
 * GELU, tanh approximation (GPT-2's, Hugging Face's `gelu_new`, PyTorch's
 * nn.GELU(approximate="tanh")): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
 */
export function geluTanh(x: Tensor): Tensor {
  return apply(geluTanhOp, [x], undefined);
}
