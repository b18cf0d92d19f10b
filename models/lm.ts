// The decoder-only language model both GPT and BitGPT are: token (+ learned position) embeddings,
// a stack of blocks, a final LayerNorm and lm_head, with nanoGPT's module names (`transformer.wte`,
// `transformer.wpe`, `transformer.h.{i}`, `transformer.ln_f`, `lm_head`). Subclasses supply the
// block and the head. Dims: B batch, T time, C nEmbd, V vocabSize. Logits larger than
// `maxLogitsBytes` are never made whole for a loss: with targets, lm_head and the cross-entropy
// run fused over blocks of tokens (linearCrossEntropy) and `logits` comes back null.

import { byteSize, type TypedArray } from "../engine/dtype.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import type { Generator } from "../engine/random.ts";
import type { Tensor } from "../engine/tensor.ts";
import { add, crossEntropy, linearCrossEntropy, narrow, reshape } from "../kernels/mod.ts";
import type { KVCache, LayerCache } from "../nn/attention.ts";
import { KVCache as Cache } from "../nn/attention.ts";
import { Dropout, Embedding, type InitOptions, LayerNorm, type Linear } from "../nn/layers.ts";
import { Module, ModuleList } from "../nn/module.ts";
import { Rope } from "../nn/rope.ts";
import { type GPTConfig, type ModelKind, validateConfig } from "./config.ts";

/** A transformer block: (B, T, C) -> (B, T, C), with an optional KV cache and rotary tables. */
export interface BlockLike extends Module {
  /** (B, T, C) -> (B, T, C); `cache` holds this layer's keys/values, `rope` the rotary tables. */
  forward(x: Tensor, o: { cache?: LayerCache; rope?: Rope }): Tensor;
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

/** What `forward` returns with targets: the loss, and the logits unless it was computed in blocks. */
export interface LossResult {
  /**
   * (B, T, V); null when the logits would have taken more than the model's `maxLogitsBytes`
   * (default: one storage binding): the loss was then computed over row blocks whose logits
   * never existed together, so there are none to return. A caller that needs logits forwards
   * without targets (at most a binding's worth of B·T) or with `lastOnly`.
   */
  logits: Tensor | null;
  /** Mean cross-entropy over the targets that are not -1, shape []. */
  loss: Tensor;
}

/** Logits and, when targets were given, the mean cross-entropy. */
export type ForwardResult = LogitsResult | LossResult;

/** Options of model construction. */
export interface ModelOptions extends Omit<InitOptions, "std"> {
  /**
   * With targets, compute the loss fused over blocks of tokens when the logits [B·T, V] would
   * take more than this many bytes (default: one storage binding of the backend, unlimited on
   * the CPU). Settable later as the model's `maxLogitsBytes`.
   */
  maxLogitsBytes?: number;
}

/** Host data of one parameter as `readState` returns it. */
export interface HostParam {
  /** Its (whole) shape. */
  shape: number[];
  /** Its elements, row-major. */
  data: TypedArray;
}

/** What a subclass decides: its blocks, ln_f's bias, and dropout after the embeddings. */
export interface ModelParts {
  /** The transformer blocks, in order. */
  blocks: BlockLike[];
  /** Whether ln_f learns a bias. */
  lnBias: boolean;
  /** Whether dropout follows the embeddings. */
  embDropout: boolean;
}

/** The container of embeddings, blocks and the final norm (nanoGPT's `transformer` dict). */
export class Transformer extends Module {
  /** Token embedding [V, C]. */
  readonly wte: Embedding;
  /** Learned position embedding [blockSize, C], or null with RoPE. */
  readonly wpe: Embedding | null;
  /** Dropout after the embeddings. */
  readonly drop: Dropout;
  /** The blocks (`transformer.h.{i}`). */
  readonly h: ModuleList<BlockLike>;
  /** The final LayerNorm. */
  readonly ln_f: LayerNorm;
  /** Build the embeddings and the final norm around `blocks`. */
  constructor(c: GPTConfig, blocks: BlockLike[], p: ModelParts, o: ModelOptions) {
    super();
    const init = { ...o, std: 0.02 };
    this.wte = this.addModule("wte", new Embedding(c.vocabSize, c.nEmbd, init));
    this.wpe = c.pos === "learned"
      ? this.addModule("wpe", new Embedding(c.blockSize, c.nEmbd, init))
      : null;
    this.drop = this.addModule("drop", new Dropout(p.embDropout ? c.dropout : 0));
    this.h = this.addModule("h", new ModuleList(blocks));
    this.ln_f = this.addModule("ln_f", new LayerNorm(c.nEmbd, { bias: p.lnBias, ...o }));
  }
}

/** A GPT-style language model; subclasses build the blocks and lm_head. */
export abstract class LanguageModel extends Module {
  /** "gpt" or "bitgpt". */
  abstract readonly kind: ModelKind;
  /** The architecture (validated). */
  readonly config: GPTConfig;
  /** Embeddings, blocks and the final norm. */
  readonly transformer: Transformer;
  /** The output projection C -> V. */
  readonly lm_head: Linear;
  /** Rotary tables when `config.pos` is "rope", else null. */
  readonly rope: Rope | null;
  /**
   * A forward with targets whose logits [B·T, V] would take more bytes than this computes the
   * loss fused over blocks of tokens of at most this many bytes of logits each (and returns
   * null logits). Default: one storage binding of the backend; lower it to save memory.
   */
  maxLogitsBytes: number | undefined;

  /**
   * Validate `config` and build the parts; `parts` makes the blocks, `head` the lm_head.
   */
  constructor(
    _kind: ModelKind,
    config: GPTConfig,
    parts: (c: GPTConfig, residStd: number) => ModelParts,
    head: (t: Transformer) => Linear,
    o: ModelOptions,
  ) {
    super();
    this.config = validateConfig({ ...config });
    this.maxLogitsBytes = o.maxLogitsBytes;
    const residStd = 0.02 / Math.sqrt(2 * config.nLayer); // nanoGPT's scaled residual init
    const p = parts(this.config, residStd);
    this.transformer = this.addModule("transformer", new Transformer(this.config, p.blocks, p, o));
    this.lm_head = this.addModule("lm_head", head(this.transformer));
    this.rope = config.pos === "rope"
      ? this.addModule(
        "rope",
        new Rope(config.blockSize, config.nEmbd / config.nHead, 10000, o),
      )
      : null;
  }

  /** A fresh KV cache for this model. */
  newCache(): KVCache {
    return new Cache(this.config.nLayer);
  }

  /** Parameter count; nanoGPT's convention leaves out position embeddings (non-embedding). */
  countParameters(nonEmbedding = true): number {
    const n = this.numParameters();
    const wpe = this.transformer.wpe;
    return nonEmbedding && wpe ? n - wpe.num * wpe.dim : n;
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
   * (targets of -1 are ignored). With a cache the T positions follow the cached ones. When the
   * logits of B·T tokens exceed `maxLogitsBytes`, the loss is computed over blocks of tokens
   * (models/head_loss.ts: same value and gradients, memory of one block) and `logits` is null;
   * without targets such logits are refused with DeviceLimitError when over maxBindingBytes.
   */
  forward(ids: Tensor, targets: Tensor, o?: ForwardOptions): LossResult;
  /** ids (B, T) i32 -> logits (B, T, V), or (B, 1, V) with lastOnly; no loss. */
  forward(ids: Tensor, targets?: null, o?: ForwardOptions): LogitsResult;
  /** Either of the above, as `targets` is given or not. */
  forward(ids: Tensor, targets?: Tensor | null, o?: ForwardOptions): ForwardResult;
  forward(ids: Tensor, targets?: Tensor | null, o: ForwardOptions = {}): ForwardResult {
    const c = this.config;
    if (ids.ndim !== 2 || ids.dtype !== "i32") {
      throw new ShapeError(
        `${this.kind}: ids must be i32 [B, T], got ${ids.dtype} ${fmtShape(ids.shape)}`,
      );
    }
    const [B, T] = ids.shape;
    if (targets) {
      if (o.lastOnly) throw new ShapeError(`${this.kind}: targets need all positions' logits`);
      if (targets.shape.length !== 2 || targets.shape[0] !== B || targets.shape[1] !== T) {
        throw new ShapeError(
          `${this.kind}: targets are ${fmtShape(targets.shape)}, ids are ${fmtShape(ids.shape)}`,
        );
      }
    }
    const V = c.vocabSize;
    const x = this.hidden(ids, o); // (B, T, C)
    const limit = this.maxLogitsBytes ?? ids.backend.traits.maxBindingBytes;
    if (targets && B * T * V * byteSize(x.dtype) > limit) {
      // lm_head and the loss fused over blocks of tokens: the logits never exist whole.
      const h = reshape(x, [B * T, c.nEmbd]); // (B·T, C)
      const loss = linearCrossEntropy(
        h,
        this.lm_head.weight,
        this.lm_head.bias,
        reshape(targets, [B * T]),
        {
          maxLogitsBytes: limit,
        },
      );
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
    const c = this.config;
    const T = ids.shape[1];
    const offset = o.cache?.length ?? 0;
    if (offset + T > c.blockSize) {
      throw new ShapeError(
        `${this.kind}: cannot forward ${offset + T} positions (${offset} cached + ${T} new), ` +
          `block size is only ${c.blockSize}`,
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
