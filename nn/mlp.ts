// The transformer MLP: c_fc (C -> 4C), a nonlinearity, c_proj (4C -> C), dropout. GPT uses Linear
// layers and GELU (nanoGPT's MLP); BitGPT uses BitLinear layers and ReLU (the original's
// FeedForward). Dims: B, T, C.

import type { Tensor } from "../engine/tensor.ts";
import { gelu, relu } from "../kernels/mod.ts";
import { BitLinear } from "./bitlinear.ts";
import { Dropout, type InitOptions, Linear } from "./layers.ts";
import { Module } from "./module.ts";

/** What the MLP needs of a model config. */
export interface MLPConfig {
  /** Embedding width C (the hidden width is 4C). */
  nEmbd: number;
  /** Dropout probability on the output. */
  dropout: number;
  /** Whether the linear layers learn a bias. */
  bias: boolean;
}

/** Init options: N(0, std) for c_fc, N(0, residStd) for c_proj. */
export interface MLPInit extends InitOptions {
  /** Std of c_proj's weight (nanoGPT: 0.02 / sqrt(2 · nLayer)). */
  residStd?: number;
}

/** GPT's MLP: Linear c_fc, GELU (exact erf form, as nanoGPT's nn.GELU), Linear c_proj, dropout. */
export class MLP extends Module {
  /** Expansion C -> 4C. */
  readonly c_fc: Linear;
  /** Projection 4C -> C. */
  readonly c_proj: Linear;
  /** Dropout on the output. */
  readonly dropout: Dropout;
  /** Build the layers for `config`; `init` sets the weights' N(0, std). */
  constructor(config: MLPConfig, init: MLPInit = {}) {
    super();
    const C = config.nEmbd;
    const o = { ...init, bias: config.bias, std: init.std ?? 0.02 };
    this.c_fc = this.addModule("c_fc", new Linear(C, 4 * C, o));
    this.c_proj = this.addModule(
      "c_proj",
      new Linear(4 * C, C, { ...o, std: init.residStd ?? o.std }),
    );
    this.dropout = this.addModule("dropout", new Dropout(config.dropout));
  }
  /** x (B, T, C) -> (B, T, C). */
  forward(x: Tensor): Tensor {
    const h = gelu(this.c_fc.forward(x)); // (B, T, 4C)
    return this.dropout.forward(this.c_proj.forward(h));
  }
}

/** BitGPT's MLP: BitLinear c_fc, ReLU, BitLinear c_proj, dropout. */
export class BitMLP extends Module {
  /** Expansion C -> 4C (BitLinear). */
  readonly c_fc: BitLinear;
  /** Projection 4C -> C (BitLinear). */
  readonly c_proj: BitLinear;
  /** Dropout on the output. */
  readonly dropout: Dropout;
  /** Build the layers for `config`; `init` sets the weights' N(0, std). */
  constructor(config: MLPConfig, init: MLPInit = {}) {
    super();
    const C = config.nEmbd;
    const o = { ...init, std: init.std ?? 0.02 };
    this.c_fc = this.addModule("c_fc", new BitLinear(C, 4 * C, o));
    this.c_proj = this.addModule(
      "c_proj",
      new BitLinear(4 * C, C, { ...o, std: init.residStd ?? o.std }),
    );
    this.dropout = this.addModule("dropout", new Dropout(config.dropout));
  }
  /** x (B, T, C) -> (B, T, C). */
  forward(x: Tensor): Tensor {
    const h = relu(this.c_fc.forward(x)); // (B, T, 4C)
    return this.dropout.forward(this.c_proj.forward(h));
  }
}
