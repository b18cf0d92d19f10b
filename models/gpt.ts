// GPT as nanoGPT's model.py (Radford et al. 2019, "Language Models are Unsupervised Multitask
// Learners"): pre-LayerNorm blocks of causal self-attention (fused c_attn) and a GELU MLP, a final
// LayerNorm, lm_head tied to the token embedding. Parameter names are nanoGPT's, so checkpoints
// load in PyTorch: transformer.wte.weight, transformer.wpe.weight, transformer.h.{i}.ln_1.*,
// .attn.c_attn.*, .attn.c_proj.*, .ln_2.*, .mlp.c_fc.*, .mlp.c_proj.*, transformer.ln_f.*,
// lm_head.weight (the same tensor as wte). Init N(0, 0.02), c_proj N(0, 0.02/√(2·nLayer)).

import type { Tensor } from "../engine/tensor.ts";
import { add } from "../kernels/mod.ts";
import { CausalSelfAttention, type LayerCache } from "../nn/attention.ts";
import { LayerNorm, Linear } from "../nn/layers.ts";
import { MLP } from "../nn/mlp.ts";
import { Module } from "../nn/module.ts";
import type { Rope } from "../nn/rope.ts";
import type { GPTConfig, ModelKind } from "./config.ts";
import { LanguageModel, type ModelOptions } from "./lm.ts";

/** x + attn(ln_1(x)), then + mlp(ln_2(x)). */
export class Block extends Module {
  /** LayerNorm before attention. */
  readonly ln_1: LayerNorm;
  /** Causal self-attention. */
  readonly attn: CausalSelfAttention;
  /** LayerNorm before the MLP. */
  readonly ln_2: LayerNorm;
  /** The GELU MLP. */
  readonly mlp: MLP;
  /** A block for `c`; `residStd` is the init std of the residual projections. */
  constructor(c: GPTConfig, residStd: number, o: ModelOptions) {
    super();
    const norm = { bias: c.bias, backend: o.backend, dtype: o.dtype };
    this.ln_1 = this.addModule("ln_1", new LayerNorm(c.nEmbd, norm));
    this.attn = this.addModule("attn", new CausalSelfAttention(c, { ...o, residStd }));
    this.ln_2 = this.addModule("ln_2", new LayerNorm(c.nEmbd, norm));
    this.mlp = this.addModule("mlp", new MLP(c, { ...o, residStd }));
  }
  /** (B, T, C) -> (B, T, C). */
  forward(x: Tensor, o: { cache?: LayerCache; rope?: Rope } = {}): Tensor {
    x = add(x, this.attn.forward(this.ln_1.forward(x), o));
    return add(x, this.mlp.forward(this.ln_2.forward(x)));
  }
}

/** nanoGPT's GPT. */
export class GPT extends LanguageModel {
  /** Always "gpt". */
  readonly kind: ModelKind = "gpt";
  /** A randomly initialised GPT for `config` (see `makeConfig`, `PRESETS`). */
  constructor(config: GPTConfig, o: ModelOptions = {}) {
    super(
      "gpt",
      config,
      (c, residStd) => ({
        blocks: Array.from({ length: c.nLayer }, () => new Block(c, residStd, o)),
        lnBias: c.bias,
        embDropout: true,
      }),
      // Weight tying (Press & Wolf 2017): lm_head.weight is transformer.wte.weight (the same
      // Parameter, or the same row chunks).
      (t) => new Linear(config.nEmbd, config.vocabSize, { bias: false, weight: t.wte.weight }),
      o,
    );
  }
}
