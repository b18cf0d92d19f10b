// BitGPT, the original project's architecture (a nanoGPT-style GPT after BitNet b1.58, arXiv
// 2402.17764): token + position embeddings, blocks of attention (BitLinear q_proj, k_proj, v_proj,
// heads batched, BitLinear c_proj) and MLP (BitLinear c_fc -> ReLU -> BitLinear c_proj) joined by
// residual adds with no LayerNorm inside the blocks (each BitLinear RMS-normalises its own input),
// a final LayerNorm `ln_f`, and a full-precision lm_head with bias. Names follow nanoGPT's
// scheme: transformer.h.{i}.attn.q_proj.weight, .attn.q_proj.norm.weight, …, .mlp.c_fc.weight.

import type { Tensor } from "../engine/tensor.ts";
import { add } from "../kernels/mod.ts";
import { packBitLinear, type PackedBitLinear } from "../kernels/ternary/linear.ts";
import { BitLinear } from "../nn/bitlinear.ts";
import { BitSelfAttention, type LayerCache } from "../nn/attention.ts";
import { Linear } from "../nn/layers.ts";
import { BitMLP } from "../nn/mlp.ts";
import { Module } from "../nn/module.ts";
import type { Rope } from "../nn/rope.ts";
import type { GPTConfig, ModelKind } from "./config.ts";
import { LanguageModel, type ModelOptions } from "./lm.ts";

/** x + attn(x), then + mlp(x); the BitLinears normalise their inputs. */
export class BitBlock extends Module {
  /** Causal self-attention with BitLinear projections. */
  readonly attn: BitSelfAttention;
  /** The BitLinear MLP. */
  readonly mlp: BitMLP;
  /** A block for `c`; `residStd` is the init std of the residual projections. */
  constructor(c: GPTConfig, residStd: number, o: ModelOptions) {
    super();
    this.attn = this.addModule("attn", new BitSelfAttention(c, { ...o, residStd }));
    this.mlp = this.addModule("mlp", new BitMLP(c, { ...o, residStd }));
  }
  /** (B, T, C) -> (B, T, C). */
  forward(x: Tensor, o: { cache?: LayerCache; rope?: Rope } = {}): Tensor {
    x = add(x, this.attn.forward(x, o));
    return add(x, this.mlp.forward(x));
  }
}

/** The original BitGPT language model. */
export class BitGPT extends LanguageModel {
  /** Always "bitgpt". */
  readonly kind: ModelKind = "bitgpt";
  /** A randomly initialised BitGPT for `config` (see `makeConfig`, `PRESETS`). */
  constructor(config: GPTConfig, o: ModelOptions = {}) {
    super(
      "bitgpt",
      config,
      (c, residStd) => ({
        blocks: Array.from({ length: c.nLayer }, () => new BitBlock(c, residStd, o)),
        lnBias: true, // nn.LayerNorm's default, as the original's out_norm
        embDropout: false, // the original applies none after the embeddings
      }),
      () => new Linear(config.nEmbd, config.vocabSize, { bias: true, std: 0.02, ...o }),
      o,
    );
  }

  /** Every BitLinear of the model with its dotted name (for packing the inference weights). */
  bitLinears(): [string, BitLinear][] {
    return this.namedModules().filter((e): e is [string, BitLinear] => e[1] instanceof BitLinear);
  }

  #packed: PackedBitLinear[] = [];

  /**
   * Switch to the packed inference path: every BitLinear's weight is quantised once (absmean,
   * as in training) and packed 16 per u32, and eval-mode forwards run the ternary × int8
   * kernels. Call again after further training to repack; `dequantize()` switches back.
   */
  async quantize(): Promise<void> {
    this.dequantize();
    for (const [, layer] of this.bitLinears()) {
      const packed = await packBitLinear(layer.weight, layer.norm.weight, layer.bias);
      this.#packed.push(packed);
      layer.setInference((x: Tensor) => packed.forward(x));
    }
    this.eval();
  }

  /** Use packed layers made elsewhere (e.g. read from a `.ternary.safetensors` file). */
  usePacked(layers: PackedBitLinear[]): void {
    const bl = this.bitLinears();
    if (layers.length !== bl.length) {
      throw new Error(`usePacked: ${layers.length} packed layers for ${bl.length} BitLinears`);
    }
    this.dequantize();
    bl.forEach(([, layer], i) => layer.setInference((x: Tensor) => layers[i].forward(x)));
    this.#packed = [...layers];
  }

  /** Is the packed inference path installed? */
  get quantized(): boolean {
    return this.#packed.length > 0;
  }

  /** Back to the fake-quantised float path; frees the packed weights. */
  dequantize(): void {
    for (const [, layer] of this.bitLinears()) layer.setInference(null);
    for (const p of this.#packed) p.dispose();
    this.#packed = [];
  }

  /** Free parameters and any packed inference weights. */
  override dispose(): void {
    this.dequantize();
    super.dispose();
  }
}
