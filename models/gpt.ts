// GPT as nanoGPT's model.py (Radford et al. 2019, "Language Models are Unsupervised Multitask
// Learners"), top to bottom: causal self-attention with all heads in one batched matmul (and a
// KV cache for generation), the MLP (exact GELU, or the activation the config names), the
// pre-LayerNorm block, and the model: token and
// learned position embeddings (or rotary positions), the blocks, a final LayerNorm, lm_head
// tied to the token embedding. Init N(0, 0.02), residual projections N(0, 0.02/√(2·nLayer)).
// Parameter names are nanoGPT's, so checkpoints load in PyTorch: transformer.wte.weight,
// transformer.wpe.weight, transformer.h.{i}.ln_1.*, .attn.c_attn.*, .attn.c_proj.*, .ln_2.*,
// .mlp.c_fc.*, .mlp.c_proj.*, transformer.ln_f.*, lm_head.weight (the same tensor as wte).
// BitGPT (bitgpt.ts) is this model with other parts. Dims: B batch, T time, C nEmbd, V vocab.

import { byteSize, type TypedArray } from "../engine/dtype.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import type { Generator } from "../engine/random.ts";
import type { Tensor } from "../engine/tensor.ts";
import {
  add,
  crossEntropy,
  gelu,
  geluTanh,
  linearCrossEntropy,
  narrow,
  relu,
  reshape,
  split,
} from "../kernels/mod.ts";
import { attend, KVCache, type LayerCache } from "../nn/attention.ts";
import { Dropout, Embedding, type InitOptions, LayerNorm, Linear } from "../nn/layers.ts";
import { Module, ModuleList } from "../nn/module.ts";
import { Rope } from "../nn/rope.ts";
import { type Activation, type GPTConfig, validateConfig } from "./config.ts";

/** Options of model construction: where parameters live, how they are drawn, loss blocks. */
export interface ModelOptions extends Omit<InitOptions, "std"> {
  /**
   * With targets, compute the loss fused over blocks of tokens when the logits [B·T, V] would
   * take more than this many bytes (default: one storage binding of the backend).
   */
  maxLogitsBytes?: number;
}

/** What a block's forward receives besides x: its layer's KV cache and the rotary tables. */
export interface BlockOptions {
  /** This layer's keys and values: new ones are appended, attention covers them all. */
  cache?: LayerCache;
  /** Rotary tables, when positions are rotary. */
  rope?: Rope;
}

/** Causal self-attention: fused q, k, v projection (c_attn), heads, output projection. */
export class CausalSelfAttention extends Module {
  /** q, k, v for all heads at once [3C, C]. */
  readonly c_attn: Linear;
  /** Output projection [C, C]. */
  readonly c_proj: Linear;
  /** Dropout on the attention weights and on the output. */
  readonly attn_dropout: Dropout;
  readonly resid_dropout: Dropout;
  /** Layers for `c`; `residStd` is c_proj's init std. */
  constructor(readonly c: GPTConfig, residStd: number, o: ModelOptions) {
    super();
    const init = { ...o, bias: c.bias, std: 0.02 };
    this.c_attn = this.addModule("c_attn", new Linear(c.nEmbd, 3 * c.nEmbd, init));
    this.c_proj = this.addModule(
      "c_proj",
      new Linear(c.nEmbd, c.nEmbd, { ...init, std: residStd }),
    );
    this.attn_dropout = this.addModule("attn_dropout", new Dropout(c.dropout));
    this.resid_dropout = this.addModule("resid_dropout", new Dropout(c.dropout));
  }
  /** (B, T, C) -> (B, T, C). */
  forward(x: Tensor, o: BlockOptions = {}): Tensor {
    const C = this.c.nEmbd;
    const qkv = this.c_attn.forward(x); // (B, T, 3C)
    const [q, k, v] = split(qkv, [C, C, C], 2); // (B, T, C) views
    const y = attend(q, k, v, this.c.nHead, { ...o, dropout: this.attn_dropout }); // (B, T, C)
    return this.resid_dropout.forward(this.c_proj.forward(y));
  }
}

/** An MLP activation applied elementwise: exact GELU, tanh-approximate GELU, or ReLU. */
export function activate(x: Tensor, kind: Activation): Tensor {
  switch (kind) {
    case "gelu":
      return gelu(x);
    case "gelu_tanh":
      return geluTanh(x);
    case "relu":
      return relu(x);
    default:
      return kind satisfies never;
  }
}

/**
 * The MLP: C -> 4C, the activation (default GELU in its exact erf form, as nn.GELU()), 4C -> C,
 * dropout.
 */
export class MLP extends Module {
  /** Expansion [4C, C]. */
  readonly c_fc: Linear;
  /** Projection back [C, 4C]. */
  readonly c_proj: Linear;
  /** Dropout on the output. */
  readonly dropout: Dropout;
  /** The activation between the two projections. */
  readonly activation: Activation;
  /** Layers for `c`; `residStd` is c_proj's init std. */
  constructor(c: GPTConfig, residStd: number, o: ModelOptions) {
    super();
    this.activation = c.activation ?? "gelu";
    const init = { ...o, bias: c.bias, std: 0.02 };
    this.c_fc = this.addModule("c_fc", new Linear(c.nEmbd, 4 * c.nEmbd, init));
    this.c_proj = this.addModule(
      "c_proj",
      new Linear(4 * c.nEmbd, c.nEmbd, { ...init, std: residStd }),
    );
    this.dropout = this.addModule("dropout", new Dropout(c.dropout));
  }
  /** (B, T, C) -> (B, T, C). */
  forward(x: Tensor): Tensor {
    const h = activate(this.c_fc.forward(x), this.activation); // (B, T, 4C)
    return this.dropout.forward(this.c_proj.forward(h));
  }
}

/** A transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x)). */
export class Block extends Module {
  readonly ln_1: LayerNorm;
  readonly attn: CausalSelfAttention;
  readonly ln_2: LayerNorm;
  readonly mlp: MLP;
  /** A block for `c`; `residStd` is the residual projections' init std. */
  constructor(c: GPTConfig, residStd: number, o: ModelOptions) {
    super();
    const norm = { bias: c.bias, backend: o.backend, dtype: o.dtype };
    this.ln_1 = this.addModule("ln_1", new LayerNorm(c.nEmbd, norm));
    this.attn = this.addModule("attn", new CausalSelfAttention(c, residStd, o));
    this.ln_2 = this.addModule("ln_2", new LayerNorm(c.nEmbd, norm));
    this.mlp = this.addModule("mlp", new MLP(c, residStd, o));
  }
  /** (B, T, C) -> (B, T, C). */
  forward(x: Tensor, o: BlockOptions = {}): Tensor {
    x = add(x, this.attn.forward(this.ln_1.forward(x), o));
    return add(x, this.mlp.forward(this.ln_2.forward(x)));
  }
}

/** A block of either model: (B, T, C) -> (B, T, C). */
export interface BlockLike extends Module {
  /** (B, T, C) -> (B, T, C) with this layer's cache and the rotary tables. */
  forward(x: Tensor, o: BlockOptions): Tensor;
}

/** nanoGPT's `transformer` dict: embeddings, dropout, blocks, final norm. */
export class Transformer extends Module {
  /** Token embedding [V, C]. */
  readonly wte: Embedding;
  /** Learned position embedding [blockSize, C], or null with rotary positions. */
  readonly wpe: Embedding | null;
  readonly drop: Dropout;
  /** The blocks (`transformer.h.{i}`). */
  readonly h: ModuleList<BlockLike>;
  /** The final LayerNorm. */
  readonly ln_f: LayerNorm;
  /** Embeddings and the final norm around `blocks`. */
  constructor(
    c: GPTConfig,
    blocks: BlockLike[],
    p: { drop: number; lnBias: boolean },
    o: ModelOptions,
  ) {
    super();
    const init = { ...o, std: 0.02 };
    this.wte = this.addModule("wte", new Embedding(c.vocabSize, c.nEmbd, init));
    this.wpe = c.pos === "learned"
      ? this.addModule("wpe", new Embedding(c.blockSize, c.nEmbd, init))
      : null;
    this.drop = this.addModule("drop", new Dropout(p.drop));
    this.h = this.addModule("h", new ModuleList(blocks));
    this.ln_f = this.addModule("ln_f", new LayerNorm(c.nEmbd, { bias: p.lnBias, ...o }));
  }
}

/** Options of a forward pass. */
export interface ForwardOptions {
  /** Append this call's keys/values to the cache; positions continue after its length. */
  cache?: KVCache;
  /** Compute logits for the last position only (generation). */
  lastOnly?: boolean;
}

/** What `forward` returns without targets: the logits. */
export interface LogitsResult {
  /** (B, T, V), or (B, 1, V) with lastOnly. */
  logits: Tensor;
  /** Always null: no targets, no loss. */
  loss: null;
}

/** What `forward` returns with targets: the loss, and the logits unless made in blocks. */
export interface LossResult {
  /** (B, T, V); null when the loss was fused over blocks of tokens (over maxLogitsBytes). */
  logits: Tensor | null;
  /** Mean cross-entropy over the targets that are not -1, shape []. */
  loss: Tensor;
}

/** Logits and, when targets were given, the mean cross-entropy. */
export type ForwardResult = LogitsResult | LossResult;

/** Host data of one parameter as `readState` returns it. */
export interface HostParam {
  /** Its shape. */
  shape: number[];
  /** Its elements, row-major. */
  data: TypedArray;
}

/** nanoGPT's GPT; BitGPT (bitgpt.ts) overrides its parts. */
export class GPT extends Module {
  /** The architecture (validated). */
  readonly config: GPTConfig;
  /** Embeddings, blocks and the final norm. */
  readonly transformer: Transformer;
  /** The output projection C -> V. */
  readonly lm_head: Linear;
  /** Rotary tables when `config.pos` is "rope", else null. */
  readonly rope: Rope | null;
  /**
   * A forward with targets whose logits [B·T, V] would take more bytes than this fuses lm_head
   * and the loss over blocks of tokens (and returns null logits). Default: one binding.
   */
  maxLogitsBytes: number | undefined;

  /** A randomly initialised model for `config` (see `makeConfig`, `PRESETS`). */
  constructor(config: GPTConfig, o: ModelOptions = {}) {
    super();
    const c = this.config = validateConfig({ ...config });
    this.maxLogitsBytes = o.maxLogitsBytes;
    const residStd = 0.02 / Math.sqrt(2 * c.nLayer); // nanoGPT's scaled residual init
    const blocks = Array.from({ length: c.nLayer }, () => this.block(c, residStd, o));
    const parts = { drop: this.embeddingDropout(c), lnBias: this.finalNormBias(c) };
    this.transformer = this.addModule("transformer", new Transformer(c, blocks, parts, o));
    this.lm_head = this.addModule("lm_head", this.head(c, o));
    this.rope = c.pos === "rope"
      ? this.addModule("rope", new Rope(c.blockSize, c.nEmbd / c.nHead, 10000, o))
      : null;
  }

  /** Which model this is: its name in the registry (models/model.ts). */
  get kind(): string {
    return "gpt";
  }

  /** One block. */
  protected block(c: GPTConfig, residStd: number, o: ModelOptions): BlockLike {
    return new Block(c, residStd, o);
  }

  /** Dropout after the embeddings. */
  protected embeddingDropout(c: GPTConfig): number {
    return c.dropout;
  }

  /** Whether the final LayerNorm learns a bias. */
  protected finalNormBias(c: GPTConfig): boolean {
    return c.bias;
  }

  /** lm_head, tied to the token embedding (Press & Wolf 2017): the same Parameter. */
  protected head(c: GPTConfig, _o: ModelOptions): Linear {
    return new Linear(c.nEmbd, c.vocabSize, { bias: false, weight: this.transformer.wte.weight });
  }

  /** A fresh KV cache for this model. */
  newCache(): KVCache {
    return new KVCache(this.config.nLayer);
  }

  /** Parameter count; nanoGPT's convention leaves out position embeddings (non-embedding). */
  countParameters(nonEmbedding = true): number {
    const wpe = this.transformer.wpe;
    return this.numParameters() - (nonEmbedding && wpe ? wpe.num * wpe.dim : 0);
  }

  /** Every parameter read back to the host under its file name: what a checkpoint holds. */
  async readState(): Promise<Record<string, HostParam>> {
    const out: Record<string, HostParam> = {};
    for (const [n, p] of this.namedParameters()) {
      out[n] = { shape: [...p.shape], data: await p.data() };
    }
    return out;
  }

  /** Use `g` for every dropout mask in the model (null: the engine's global generator). */
  setDropoutGenerator(g: Generator | null): void {
    for (const [, m] of this.namedModules()) if (m instanceof Dropout) m.generator = g;
  }

  /**
   * ids (B, T) i32 -> logits (B, T, V); with targets (B, T) i32 also the mean cross-entropy
   * (targets of -1 are ignored). With a cache the T positions follow the cached ones.
   */
  forward(ids: Tensor, targets: Tensor, o?: ForwardOptions): LossResult;
  /** ids (B, T) i32 -> logits (B, T, V), or (B, 1, V) with lastOnly; no loss. */
  forward(ids: Tensor, targets?: null, o?: ForwardOptions): LogitsResult;
  /** Either of the above, as `targets` is given or not. */
  forward(ids: Tensor, targets?: Tensor | null, o?: ForwardOptions): ForwardResult;
  forward(ids: Tensor, targets?: Tensor | null, o: ForwardOptions = {}): ForwardResult {
    const { vocabSize: V, nEmbd: C } = this.config;
    if (ids.ndim !== 2 || ids.dtype !== "i32") {
      throw new ShapeError(
        `${this.kind}: ids must be i32 [B, T], got ${ids.dtype} ${fmtShape(ids.shape)}`,
      );
    }
    const [B, T] = ids.shape;
    if (
      targets &&
      (o.lastOnly || targets.ndim !== 2 || targets.shape[0] !== B || targets.shape[1] !== T)
    ) {
      throw new ShapeError(
        `${this.kind}: targets are ${fmtShape(targets.shape)} for ids ${fmtShape(ids.shape)}` +
          (o.lastOnly ? " (targets need every position's logits, not lastOnly)" : ""),
      );
    }
    const x = this.hidden(ids, o); // (B, T, C)
    const limit = this.maxLogitsBytes ?? ids.backend.traits.maxBindingBytes;
    if (targets && B * T * V * byteSize(x.dtype) > limit) {
      // lm_head and the loss fused over blocks of tokens: the logits never exist whole.
      const h = reshape(x, [B * T, C]); // (B·T, C)
      const { weight, bias } = this.lm_head;
      const loss = linearCrossEntropy(h, weight, bias, reshape(targets, [B * T]), {
        maxLogitsBytes: limit,
      });
      return { logits: null, loss };
    }
    const h = o.lastOnly ? narrow(x, 1, T - 1, 1) : x; // (B, 1, C) or (B, T, C)
    const logits = this.lm_head.forward(h); // (B, T, V)
    if (!targets) return { logits, loss: null };
    const loss = crossEntropy(reshape(logits, [B * T, V]), reshape(targets, [B * T]), -1);
    return { logits, loss };
  }

  /** ids (B, T) -> the final hidden state ln_f(blocks(embeddings)) (B, T, C). */
  private hidden(ids: Tensor, o: ForwardOptions): Tensor {
    const T = ids.shape[1];
    const offset = o.cache?.length ?? 0;
    if (offset + T > this.config.blockSize) {
      throw new ShapeError(
        `${this.kind}: cannot forward ${offset + T} positions (${offset} cached + ${T} new), ` +
          `block size is only ${this.config.blockSize}`,
      );
    }
    const tr = this.transformer;
    let x = tr.wte.forward(ids); // (B, T, C)
    if (tr.wpe) x = add(x, tr.wpe.rows(offset, T)); // + (T, C)
    x = tr.drop.forward(x);
    tr.h.items.forEach((block, i) => {
      x = block.forward(x, { cache: o.cache?.layers[i], rope: this.rope ?? undefined });
    });
    return tr.ln_f.forward(x);
  }
}
