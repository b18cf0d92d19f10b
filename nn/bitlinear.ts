// BitLinear of BitNet b1.58 (arXiv 2402.17764), as the original BitGPT's training path: RMSNorm
// the input (eps 1e-6, learnable weight `norm.weight`), fake-quantise activations to int8 per
// token (scale 127 / max(|x|, 1e-5), round half to even, clamp [-128, 127], divide back) and the
// weight to {-1, 0, +1} per tensor (scale 1 / max(mean|w|, 1e-5), round, clamp [-1, 1], divide
// back), both through the straight-through estimator x + detach(q(x) − x); y = x_q·w_qᵀ.
// Computed as y = (q_x·q_wᵀ) · (1 / (s_w·s_x)) on the integer levels
// (kernels/ternary/bit_quant.ts): the same value up to f32 rounding, with the same gradients, but
// bit-identical to the packed inference kernels, so a model's logits do not move when it is packed.
// `activationQuant`, `weightQuant` and `ste` are the textbook formulation, kept as references.
// Inference seam: `setInference(fn)` replaces the forward (the packed ternary × int8 path).

import { noGrad } from "../engine/autograd.ts";
import { zeros } from "../engine/creation.ts";
import type { Tensor } from "../engine/tensor.ts";
import { activationLevels, dequantize, ternaryLevels } from "../kernels/ternary/bit_quant.ts";
import {
  abs,
  add,
  clamp,
  detach,
  div,
  max,
  mean,
  mul,
  pow,
  round,
  scale,
  sub,
} from "../kernels/mod.ts";
import type { InitOptions } from "./layers.ts";
import { linear, normalInit, RMSNorm } from "./layers.ts";
import type { Parameter } from "./module.ts";
import { Module } from "./module.ts";

/** Clamp floor of both quantisers' denominators. */
export const QUANT_EPS = 1e-5;
/** RMSNorm eps inside BitLinear. */
export const BITLINEAR_NORM_EPS = 1e-6;
const BIG = 3.4e38;

/** Per-token absmax int8 fake-quantisation of x [..., C] (values only; no gradient). */
export function activationQuant(x: Tensor): Tensor {
  return noGrad(() => {
    const s = scale(pow(clamp(max(abs(x), -1, true), QUANT_EPS, BIG), -1), 127); // (..., 1)
    return div(clamp(round(mul(x, s)), -128, 127), s);
  });
}

/** Per-tensor absmean ternary fake-quantisation of w (values only; no gradient). */
export function weightQuant(w: Tensor): Tensor {
  return noGrad(() => {
    const s = pow(clamp(mean(abs(w)), QUANT_EPS, BIG), -1); // ()
    return div(clamp(round(mul(w, s)), -1, 1), s);
  });
}

/** Straight-through estimator: forward value q, gradient of the identity to x. */
export function ste(x: Tensor, q: Tensor): Tensor {
  return add(x, detach(sub(q, x)));
}

/** A replacement forward for inference, e.g. the packed ternary × int8 GEMM. */
export type BitLinearInference = (x: Tensor, layer: BitLinear) => Tensor;

/** Options of BitLinear. */
export interface BitLinearOptions extends InitOptions {
  /** Learn an additive bias (default false, as the original). */
  bias?: boolean;
}

/** A linear layer with ternary weights and int8 activations, trained through the STE. */
export class BitLinear extends Module {
  /** The RMSNorm applied to the input before activation quantisation. */
  readonly norm: RMSNorm;
  #inference: BitLinearInference | null = null;

  /** A BitLinear from `inFeatures` to `outFeatures`; weight N(0, std = 0.02 by default). */
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: BitLinearOptions = {},
  ) {
    super();
    const { backend, dtype } = opts;
    this.addParameter("weight", normalInit([outFeatures, inFeatures], opts.std ?? 0.02, opts));
    if (opts.bias) this.addParameter("bias", zeros([outFeatures], { backend, dtype }));
    this.norm = this.addModule(
      "norm",
      new RMSNorm(inFeatures, { eps: BITLINEAR_NORM_EPS, backend, dtype }),
    );
  }

  /** The latent full-precision weight [out, in]. */
  get weight(): Parameter {
    return this.param("weight");
  }
  /** The bias [out], or null. */
  get bias(): Parameter | null {
    return this.maybeParam("bias");
  }

  /** Install (or with null remove) the inference forward; training mode ignores it. */
  setInference(fn: BitLinearInference | null): void {
    this.#inference = fn;
  }

  /** The installed inference forward, if any. */
  get inference(): BitLinearInference | null {
    return this.#inference;
  }

  /** x [..., in] -> [..., out]; the packed path when installed and not training. */
  forward(x: Tensor): Tensor {
    if (this.#inference && !this.training) return this.#inference(x, this);
    const a = activationLevels(x, this.norm.weight, this.norm.eps);
    const w = ternaryLevels(this.weight);
    const acc = linear(a.q, w.q);
    const y = dequantize(acc, a.scale, w.scale);
    const bias = this.bias;
    return bias ? add(y, bias) : y;
  }
}
