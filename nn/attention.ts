// Causal multi-head self-attention with every head in one batched matmul (nanoGPT's
// CausalSelfAttention): q, k, v [B, T, C] are viewed as [B, nHead, T, headSize], optionally
// rotated (RoPE), appended to a KV cache during generation, and combined as
// softmax(q·kᵀ / sqrt(headSize) + causal mask) · v. GPT projects q, k, v with one fused Linear
// (`c_attn`); BitGPT with three BitLinears (`q_proj`, `k_proj`, `v_proj`). Dims: B, T, C, nHead.

import { keep } from "../engine/scope.ts";
import type { Tensor } from "../engine/tensor.ts";
import {
  cat,
  causalFill,
  contiguous,
  matmul,
  narrow,
  permute,
  reshape,
  scale,
  softmax,
  transpose,
} from "../kernels/mod.ts";
import { BitLinear } from "./bitlinear.ts";
import { Dropout, type InitOptions, Linear } from "./layers.ts";
import { Module } from "./module.ts";
import type { Rope } from "./rope.ts";

/** What attention needs of a model config. */
export interface AttentionConfig {
  /** Embedding width C. */
  nEmbd: number;
  /** Number of heads; C must be divisible by it. */
  nHead: number;
  /** Longest sequence the model attends over. */
  blockSize: number;
  /** Dropout probability on attention weights and the residual output. */
  dropout: number;
  /** Whether the linear projections learn a bias. */
  bias: boolean;
}

/** Cached keys and values of one layer: [B, nHead, length, headSize] each. */
export class LayerCache {
  /** Cached keys (B, nHead, length, headSize), or null when empty. */
  k: Tensor | null = null;
  /** Cached values (B, nHead, length, headSize), or null when empty. */
  v: Tensor | null = null;
  /** Positions held. */
  get length(): number {
    return this.k ? this.k.shape[2] : 0;
  }
  /** Append new keys/values (B, nHead, T, hs); returns the whole cache (kept until reset). */
  append(k: Tensor, v: Tensor): [Tensor, Tensor] {
    const nk = keep(this.k ? cat([this.k, k], 2) : contiguous(k));
    const nv = keep(this.v ? cat([this.v, v], 2) : contiguous(v));
    this.reset();
    this.k = nk;
    this.v = nv;
    return [nk, nv];
  }
  /** Drop the cached tensors. */
  reset(): void {
    this.k?.dispose();
    this.v?.dispose();
    this.k = null;
    this.v = null;
  }
}

/** A KV cache for every layer of a model; `length` positions are cached. */
export class KVCache {
  /** One cache per layer. */
  readonly layers: LayerCache[];
  /** An empty cache for `nLayer` layers. */
  constructor(nLayer: number) {
    this.layers = Array.from({ length: nLayer }, () => new LayerCache());
  }
  /** Positions cached (the next token's position). */
  get length(): number {
    return this.layers[0]?.length ?? 0;
  }
  /** Drop every cached tensor. */
  reset(): void {
    for (const l of this.layers) l.reset();
  }
}

/** Per-call attention inputs: the layer's cache and the rotary tables, both optional. */
export interface AttendOptions {
  /** This layer's KV cache: new keys/values are appended and attention covers all cached ones. */
  cache?: LayerCache;
  /** Rotary tables; when given, queries and keys are rotated by position. */
  rope?: Rope;
  /** Dropout on the attention weights (nanoGPT's attn_dropout). */
  dropout?: Dropout;
}

/** (B, T, C) -> (B, nHead, T, headSize), a view. */
function heads(x: Tensor, nHead: number): Tensor {
  const [B, T, C] = x.shape;
  return permute(reshape(x, [B, T, nHead, C / nHead]), [0, 2, 1, 3]);
}

/**
 * Causal attention over projected q, k, v (B, T, C) with `nHead` heads -> (B, T, C). With a
 * cache, the T new positions follow the cached ones and attend to all of them.
 */
export function attend(
  q: Tensor,
  k: Tensor,
  v: Tensor,
  nHead: number,
  o: AttendOptions = {},
): Tensor {
  const [B, T, C] = q.shape;
  const hs = C / nHead;
  const offset = o.cache?.length ?? 0;
  let qh = heads(q, nHead); // (B, nh, T, hs)
  let kh = heads(k, nHead);
  let vh = heads(v, nHead);
  if (o.rope) {
    qh = o.rope.apply(qh, offset);
    kh = o.rope.apply(kh, offset);
  }
  if (o.cache) [kh, vh] = o.cache.append(kh, vh); // (B, nh, offset + T, hs)
  let att = scale(matmul(qh, transpose(kh)), 1 / Math.sqrt(hs)); // (B, nh, T, offset + T)
  if (T > 1) att = causalFill(att, -Infinity, offset); // query i sees keys <= offset + i
  att = softmax(att, -1);
  if (o.dropout) att = o.dropout.forward(att);
  const y = matmul(att, vh); // (B, nh, T, hs)
  return reshape(permute(y, [0, 2, 1, 3]), [B, T, C]); // re-assemble heads side by side
}

/** Check that heads divide the width. */
function checkHeads(c: AttentionConfig): void {
  if (c.nEmbd % c.nHead !== 0) {
    throw new RangeError(`attention: nEmbd ${c.nEmbd} is not divisible by nHead ${c.nHead}`);
  }
}

/** Init options for the residual projection: N(0, residStd). */
export interface AttentionInit extends InitOptions {
  /** Std of c_proj's weight (nanoGPT: 0.02 / sqrt(2 · nLayer)). */
  residStd?: number;
}

/** GPT's attention: fused `c_attn` [3C, C], `c_proj` [C, C], attention and residual dropout. */
export class CausalSelfAttention extends Module {
  /** Fused query/key/value projection [3C, C]. */
  readonly c_attn: Linear;
  /** Output projection [C, C]. */
  readonly c_proj: Linear;
  /** Dropout on the attention weights. */
  readonly attn_dropout: Dropout;
  /** Dropout on the output. */
  readonly resid_dropout: Dropout;
  /** Build the projections for `config`; `init` sets the weights' N(0, std). */
  constructor(readonly config: AttentionConfig, init: AttentionInit = {}) {
    super();
    checkHeads(config);
    const C = config.nEmbd;
    const o = { ...init, bias: config.bias, std: init.std ?? 0.02 };
    this.c_attn = this.addModule("c_attn", new Linear(C, 3 * C, o));
    this.c_proj = this.addModule("c_proj", new Linear(C, C, { ...o, std: init.residStd ?? o.std }));
    this.attn_dropout = this.addModule("attn_dropout", new Dropout(config.dropout));
    this.resid_dropout = this.addModule("resid_dropout", new Dropout(config.dropout));
  }
  /** x (B, T, C) -> (B, T, C). */
  forward(x: Tensor, o: Omit<AttendOptions, "dropout"> = {}): Tensor {
    const C = this.config.nEmbd;
    const qkv = this.c_attn.forward(x); // (B, T, 3C)
    const q = narrow(qkv, 2, 0, C);
    const k = narrow(qkv, 2, C, C);
    const v = narrow(qkv, 2, 2 * C, C);
    const y = attend(q, k, v, this.config.nHead, { ...o, dropout: this.attn_dropout });
    return this.resid_dropout.forward(this.c_proj.forward(y));
  }
}

/** BitGPT's attention: BitLinear `q_proj`, `k_proj`, `v_proj`, `c_proj`, heads batched. */
export class BitSelfAttention extends Module {
  /** Query projection (BitLinear [C, C]). */
  readonly q_proj: BitLinear;
  /** Key projection (BitLinear [C, C]). */
  readonly k_proj: BitLinear;
  /** Value projection (BitLinear [C, C]). */
  readonly v_proj: BitLinear;
  /** Output projection (BitLinear [C, C]). */
  readonly c_proj: BitLinear;
  /** Dropout on the attention weights. */
  readonly attn_dropout: Dropout;
  /** Dropout on the output. */
  readonly resid_dropout: Dropout;
  /** Build the projections for `config`; `init` sets the weights' N(0, std). */
  constructor(readonly config: AttentionConfig, init: AttentionInit = {}) {
    super();
    checkHeads(config);
    const C = config.nEmbd;
    const o = { ...init, std: init.std ?? 0.02 };
    this.q_proj = this.addModule("q_proj", new BitLinear(C, C, o));
    this.k_proj = this.addModule("k_proj", new BitLinear(C, C, o));
    this.v_proj = this.addModule("v_proj", new BitLinear(C, C, o));
    this.c_proj = this.addModule(
      "c_proj",
      new BitLinear(C, C, { ...o, std: init.residStd ?? o.std }),
    );
    this.attn_dropout = this.addModule("attn_dropout", new Dropout(config.dropout));
    this.resid_dropout = this.addModule("resid_dropout", new Dropout(config.dropout));
  }
  /** x (B, T, C) -> (B, T, C). */
  forward(x: Tensor, o: Omit<AttendOptions, "dropout"> = {}): Tensor {
    const q = this.q_proj.forward(x);
    const k = this.k_proj.forward(x);
    const v = this.v_proj.forward(x);
    const y = attend(q, k, v, this.config.nHead, { ...o, dropout: this.attn_dropout });
    return this.resid_dropout.forward(this.c_proj.forward(y));
  }
}
