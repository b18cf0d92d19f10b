// Basic layers as in torch.nn: Linear (weight [out, in] as PyTorch stores it, optional bias),
// Embedding, LayerNorm (optional bias), RMSNorm, Dropout. Each composes kernels/ ops, so
// autograd comes with them. Initialisation draws from the engine's seeded generator. A weight
// larger than one binding of the device is the engine's business (engine/op.ts), not theirs.

import type { Backend } from "../engine/backend.ts";
import { full, rand, randn, zeros } from "../engine/creation.ts";
import type { DType } from "../engine/dtype.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import type { Generator } from "../engine/random.ts";
import type { Tensor } from "../engine/tensor.ts";
import {
  add,
  dropout,
  embedding,
  layerNorm,
  matmul,
  narrow,
  rmsNorm,
  transpose,
} from "../kernels/mod.ts";
import { Module, type Parameter } from "./module.ts";

/** Where parameters are created and how they are initialised. */
export interface InitOptions {
  /** Std of the N(0, std) weight init (default: PyTorch's per-layer default). */
  std?: number;
  /** Random stream for the init (default: the engine's global generator). */
  generator?: Generator;
  /** Backend for the parameters (default: the current backend). */
  backend?: Backend;
  /** Parameter dtype (default f32; f64 only on the cpu backend). */
  dtype?: DType;
  /** Allocate zeros instead of drawing (the values are about to be loaded from a file). */
  skipInit?: boolean;
}

/** A [..shape] weight drawn N(0, std) from the options' generator, or zeros with skipInit. */
export function normalInit(shape: number[], std: number, o: InitOptions): Tensor {
  const { generator, backend, dtype } = o;
  return o.skipInit
    ? zeros(shape, { backend, dtype })
    : randn(shape, { std, generator, backend, dtype });
}

/** y = x·Wᵀ + b for x [..., in], W [out, in], b [out] (functional form of Linear). */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const inF = weight.shape[1];
  if (x.shape[x.ndim - 1] !== inF) {
    throw new ShapeError(
      `linear: input is ${fmtShape(x.shape)}, weight is ${fmtShape(weight.shape)} ([out, in])`,
    );
  }
  const y = matmul(x, transpose(weight)); // (..., in) · (in, out) -> (..., out)
  return bias ? add(y, bias) : y;
}

/** Options of Linear. */
export interface LinearOptions extends InitOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
  /** Use this existing weight (weight tying, e.g. lm_head ← wte). */
  weight?: Parameter;
}

/** A fully connected layer; weight [out, in], bias [out]. */
export class Linear extends Module {
  /** A layer from `inFeatures` to `outFeatures`; weight U(±1/sqrt(in)) or N(0, `std`), bias 0. */
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    const { generator, backend, dtype } = opts;
    if (opts.weight) {
      const [out, inF] = opts.weight.shape;
      if (out !== outFeatures || inF !== inFeatures) {
        throw new ShapeError(
          `Linear: tied weight is ${
            fmtShape(opts.weight.shape)
          }, expected [${outFeatures}, ${inFeatures}]`,
        );
      }
      this.addParameter("weight", opts.weight);
    } else if (opts.std !== undefined || opts.skipInit) {
      this.addParameter("weight", normalInit([outFeatures, inFeatures], opts.std ?? 0, opts));
    } else {
      // PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)).
      const k = 1 / Math.sqrt(inFeatures);
      const w = rand([outFeatures, inFeatures], { low: -k, high: k, generator, backend, dtype });
      this.addParameter("weight", w);
    }
    if (opts.bias ?? true) this.addParameter("bias", zeros([outFeatures], { backend, dtype }));
  }
  /** The weight [out, in]. */
  get weight(): Parameter {
    return this.param("weight");
  }
  /** The bias [out], or null. */
  get bias(): Parameter | null {
    return this.maybeParam("bias");
  }
  /** x [..., in] -> [..., out]. */
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/** A lookup table of `num` vectors of size `dim`, initialised N(0, std=1 by default). */
export class Embedding extends Module {
  /** A table of `num` rows of width `dim`. */
  constructor(readonly num: number, readonly dim: number, opts: InitOptions = {}) {
    super();
    this.addParameter("weight", normalInit([num, dim], opts.std ?? 1, opts));
  }
  /** The table [num, dim]. */
  get weight(): Parameter {
    return this.param("weight");
  }
  /** Rows [start, start + len) of the table, [len, dim] (differentiable; e.g. positions). */
  rows(start: number, len: number): Tensor {
    return narrow(this.weight, 0, start, len);
  }
  /** ids (i32) [...] -> [..., dim]. */
  forward(ids: Tensor): Tensor {
    return embedding(this.weight, ids);
  }
}

/** Options of LayerNorm. */
export interface NormOptions {
  /** Guard inside the square root (LayerNorm default 1e-5, RMSNorm 1e-6). */
  eps?: number;
  /** Learn a bias (LayerNorm only, default true). */
  bias?: boolean;
  /** Backend to create the parameters on (default: the current one). */
  backend?: Backend;
  /** Parameter dtype (default "f32"). */
  dtype?: DType;
}

/** Layer normalisation over the last dim: (x − mean) / sqrt(var + eps) · weight + bias. */
export class LayerNorm extends Module {
  /** Guard inside the square root. */
  readonly eps: number;
  /** A LayerNorm over rows of width `dim`; weight ones, bias zeros. */
  constructor(readonly dim: number, opts: NormOptions = {}) {
    super();
    const { backend, dtype } = opts;
    this.eps = opts.eps ?? 1e-5;
    this.addParameter("weight", full([dim], 1, { backend, dtype }));
    if (opts.bias ?? true) this.addParameter("bias", zeros([dim], { backend, dtype }));
  }
  /** Scale [dim]. */
  get weight(): Parameter {
    return this.param("weight");
  }
  /** Shift [dim], or null. */
  get bias(): Parameter | null {
    return this.maybeParam("bias");
  }
  /** x [..., dim] -> same shape. */
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** RMS normalisation over the last dim: x / sqrt(mean(x²) + eps) · weight. */
export class RMSNorm extends Module {
  /** Guard inside the square root. */
  readonly eps: number;
  /** An RMSNorm over rows of width `dim`; weight ones. */
  constructor(readonly dim: number, opts: Omit<NormOptions, "bias"> = {}) {
    super();
    this.eps = opts.eps ?? 1e-6;
    this.addParameter("weight", full([dim], 1, { backend: opts.backend, dtype: opts.dtype }));
  }
  /** Scale [dim]. */
  get weight(): Parameter {
    return this.param("weight");
  }
  /** x [..., dim] -> same shape. */
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

/** Inverted dropout: zeroes elements with probability p in training, scales the rest by 1/(1−p). */
export class Dropout extends Module {
  /** Random stream for the masks (null: the engine's global generator). */
  generator: Generator | null = null;
  /** Dropout with probability `p` in [0, 1). */
  constructor(readonly p: number) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`Dropout: p must be in [0, 1), got ${p}`);
  }
  /** Identity in eval mode or when p is 0. */
  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    return dropout(x, this.p, { training: true, generator: this.generator ?? undefined });
  }
}
