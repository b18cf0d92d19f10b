// BitGPT, the original project's architecture (a nanoGPT-style GPT after BitNet b1.58, arXiv
// 2402.17764): token + position embeddings, blocks of attention (BitLinear q_proj, k_proj, v_proj,
// heads batched, BitLinear c_proj) and MLP (BitLinear c_fc -> ReLU -> BitLinear c_proj) joined by
// residual adds with no LayerNorm inside the blocks (each BitLinear RMS-normalises its own input),
// a final LayerNorm `ln_f`, and a full-precision lm_head with bias. Names follow nanoGPT's
// scheme: transformer.h.{i}.attn.q_proj.weight, .attn.q_proj.norm.weight, …, .mlp.c_fc.weight.

import type { Tensor } from "../engine/tensor.ts";
import { add } from "../kernels/mod.ts";
import { packBitLinear, type PackedBitLinear } from "../kernels/ternary/linear.ts";
import { attend } from "../nn/attention.ts";
import { BitLinear } from "../nn/bitlinear.ts";
import { Dropout, Linear } from "../nn/layers.ts";
import { Module } from "../nn/module.ts";
import type { Activation, GPTConfig } from "./config.ts";
import { activate, type BlockLike, type BlockOptions, GPT, type ModelOptions } from "./gpt.ts";

/** Attention with BitLinear q_proj, k_proj, v_proj and c_proj, all heads batched. */
export class BitSelfAttention extends Module {
  /** Query projection [C, C]. */
  readonly q_proj: BitLinear;
  /** Key projection [C, C]. */
  readonly k_proj: BitLinear;
  /** Value projection [C, C]. */
  readonly v_proj: BitLinear;
  /** Output projection [C, C]. */
  readonly c_proj: BitLinear;
  /** Dropout on the attention weights. */
  readonly attn_dropout: Dropout;
  /** Dropout on the output. */
  readonly resid_dropout: Dropout;
  /** Projections for `c`; `residStd` is c_proj's init std. */
  constructor(readonly c: GPTConfig, residStd: number, o: ModelOptions) {
    super();
    const init = { ...o, std: 0.02 };
    this.q_proj = this.addModule("q_proj", new BitLinear(c.nEmbd, c.nEmbd, init));
    this.k_proj = this.addModule("k_proj", new BitLinear(c.nEmbd, c.nEmbd, init));
    this.v_proj = this.addModule("v_proj", new BitLinear(c.nEmbd, c.nEmbd, init));
    this.c_proj = this.addModule(
      "c_proj",
      new BitLinear(c.nEmbd, c.nEmbd, { ...init, std: residStd }),
    );
    this.attn_dropout = this.addModule("attn_dropout", new Dropout(c.dropout));
    this.resid_dropout = this.addModule("resid_dropout", new Dropout(c.dropout));
  }
  /** (B, T, C) -> (B, T, C). */
  forward(x: Tensor, o: BlockOptions = {}): Tensor {
    const [q, k, v] = [this.q_proj, this.k_proj, this.v_proj].map((p) => p.forward(x)); // (B, T, C)
    const y = attend(q, k, v, this.c.nHead, { ...o, dropout: this.attn_dropout });
    return this.resid_dropout.forward(this.c_proj.forward(y));
  }
}

/**
 * The MLP: BitLinear C -> 4C, the activation (default ReLU), BitLinear 4C -> C, dropout (the
 * original's FeedForward).
 */
export class BitMLP extends Module {
  /** Expansion [4C, C]. */
  readonly c_fc: BitLinear;
  /** Projection back [C, 4C]. */
  readonly c_proj: BitLinear;
  /** Dropout on the output. */
  readonly dropout: Dropout;
  /** The activation between the two projections. */
  readonly activation: Activation;
  /** Layers for `c`; `residStd` is c_proj's init std. */
  constructor(c: GPTConfig, residStd: number, o: ModelOptions) {
    super();
    this.activation = c.activation ?? "relu";
    const init = { ...o, std: 0.02 };
    this.c_fc = this.addModule("c_fc", new BitLinear(c.nEmbd, 4 * c.nEmbd, init));
    this.c_proj = this.addModule(
      "c_proj",
      new BitLinear(4 * c.nEmbd, c.nEmbd, { ...init, std: residStd }),
    );
    this.dropout = this.addModule("dropout", new Dropout(c.dropout));
  }
  /** (B, T, C) -> (B, T, C). */
  forward(x: Tensor): Tensor {
    const h = activate(this.c_fc.forward(x), this.activation); // (B, T, 4C)
    return this.dropout.forward(this.c_proj.forward(h));
  }
}

/** x + attn(x), then + mlp(x): no LayerNorm, each BitLinear normalises its own input. */
export class BitBlock extends Module {
  /** Attention with BitLinear projections. */
  readonly attn: BitSelfAttention;
  /** The BitLinear MLP. */
  readonly mlp: BitMLP;
  /** A block for `c`; `residStd` is the residual projections' init std. */
  constructor(c: GPTConfig, residStd: number, o: ModelOptions) {
    super();
    this.attn = this.addModule("attn", new BitSelfAttention(c, residStd, o));
    this.mlp = this.addModule("mlp", new BitMLP(c, residStd, o));
  }
  /** (B, T, C) -> (B, T, C). */
  forward(x: Tensor, o: BlockOptions = {}): Tensor {
    x = add(x, this.attn.forward(x, o));
    return add(x, this.mlp.forward(x));
  }
}

/** The original BitGPT: GPT with BitBlocks, no embedding dropout, an untied lm_head with bias. */
export class BitGPT extends GPT {
  /** Always "bitgpt". */
  override get kind(): string {
    return "bitgpt";
  }

  protected override block(c: GPTConfig, residStd: number, o: ModelOptions): BlockLike {
    return new BitBlock(c, residStd, o);
  }

  protected override embeddingDropout(): number {
    return 0; // the original applies none after the embeddings
  }

  protected override finalNormBias(): boolean {
    return true; // nn.LayerNorm's default, as the original's out_norm
  }

  protected override head(c: GPTConfig, o: ModelOptions): Linear {
    return new Linear(c.nEmbd, c.vocabSize, { bias: true, std: 0.02, ...o });
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
