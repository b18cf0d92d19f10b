// Causal multi-head attention with every head in one batched matmul, as a function of projected
// q, k, v [B, T, C]: viewed as [B, nHead, T, headSize], optionally rotated (RoPE), appended to a
// KV cache during generation, and combined as softmax(q·kᵀ / sqrt(headSize) + causal mask) · v.
// The models' attention modules (models/gpt.ts, bitgpt.ts) project q, k, v and call `attend`.
// Dims: B, T, C, nHead.

import { keep, tidy } from "../engine/scope.ts";
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
import type { Dropout } from "./layers.ts";
import type { Rope } from "./rope.ts";

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
  /** Keep only the first `n` positions. */
  truncate(n: number): void {
    if (this.length <= n) return;
    if (n === 0) return this.reset();
    const [k, v] = tidy(
      () => [contiguous(narrow(this.k!, 2, 0, n)), contiguous(narrow(this.v!, 2, 0, n))],
    );
    this.reset();
    this.k = keep(k);
    this.v = keep(v);
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
  /** Keep only the first `n` cached positions (e.g. the tokens a conversation kept). */
  truncate(n: number): void {
    for (const l of this.layers) l.truncate(n);
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
