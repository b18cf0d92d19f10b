// BitGPT's packed inference weights, as bytes (the CLI keeps them in ckpt.ternary.safetensors
// beside each checkpoint): every BitLinear packed once (kernels/ternary/linear.ts:
// `<name>.weight_packed` U32, `.weight_scale` F32, `.norm.weight` F32, `.bias`), the iteration and
// SHA-256 of the checkpoint they were packed from (bytes for another checkpoint are refused), and
// format metadata; the other parameters (embeddings, ln_f, lm_head) come from the checkpoint.
// Contents are checked before use (finite values, valid 2-bit codes, exactly the model's
// layers). `prepareInference` chooses how a loaded model runs: packed weights from such bytes,
// packed at load, or the fake-quantised latent weights.

import type { Tensor } from "../engine/tensor.ts";
import {
  packBitLinear,
  type PackedBitLinear,
  packedFromSafetensors,
  packedToSafetensors,
} from "../kernels/ternary/linear.ts";
import type { BitLinear } from "../nn/bitlinear.ts";
import { type NamedArray, readSafetensors, writeSafetensors } from "../nn/safetensors.ts";
import { BitGPT } from "./bitgpt.ts";
import type { LanguageModel } from "./model.ts";

/** The metadata `format` of packed weights. */
export const TERNARY_FORMAT = "bitgpt-ternary";
const TERNARY_VERSION = "2"; // 2: bound to the checkpoint's SHA-256

/** The checkpoint packed weights belong to. */
export interface PackedSourceId {
  /** Its iteration. */
  iteration: number;
  /** SHA-256 (hex) of its bytes. */
  sha256: string;
}

/** The packed weights of a model's BitLinears as safetensors bytes; null without BitLinears. */
export async function packTernary(
  model: LanguageModel,
  source: PackedSourceId,
): Promise<Uint8Array | null> {
  if (!(model instanceof BitGPT)) return null;
  const tensors: Record<string, NamedArray> = {};
  for (const [name, layer] of model.bitLinears()) {
    const packed = await packBitLinear(layer.weight, layer.norm.weight, layer.bias);
    try {
      Object.assign(tensors, await packedToSafetensors(packed, name));
    } finally {
      packed.dispose();
    }
  }
  return writeSafetensors(tensors, {
    format: TERNARY_FORMAT,
    format_version: TERNARY_VERSION,
    config: JSON.stringify(model.config),
    iteration: String(source.iteration),
    source_sha256: source.sha256,
  });
}

/** Packed weights in use, or why none are. */
export interface TernaryUse {
  /** True when the model's BitLinears run on the packed weights. */
  used: boolean;
  /** Why they were not used (damaged, stale, unreadable, not a BitGPT), when they were not. */
  reason?: string;
  /** Back to the latent weights; frees the packed layers' device memory. */
  dispose(): void;
}

/**
 * Run the BitLinears of `model` (loaded from the checkpoint `source`) on the packed weights in
 * `bytes` (named `name` in reasons), when they were packed from that checkpoint and hold valid
 * contents.
 */
export function usePackedBytes(
  model: LanguageModel,
  bytes: Uint8Array,
  source: PackedSourceId,
  name = "the packed weights",
): TernaryUse {
  const none = (reason: string): TernaryUse => ({ used: false, reason, dispose() {} });
  if (!(model instanceof BitGPT)) return none("not a BitGPT");
  let layers: [BitLinear, PackedBitLinear][] = [];
  try {
    const { tensors, metadata } = readSafetensors(bytes);
    if (metadata.format !== TERNARY_FORMAT || metadata.format_version !== TERNARY_VERSION) {
      return none(`${name} is not a version ${TERNARY_VERSION} ${TERNARY_FORMAT} file`);
    }
    if (
      metadata.source_sha256 !== source.sha256 || Number(metadata.iteration) !== source.iteration
    ) {
      return none(`${name} was packed from another checkpoint`);
    }
    if (metadata.config !== JSON.stringify(model.config)) {
      return none(`${name} is for another model config`);
    }
    const problem = checkPacked(tensors, model.bitLinears().map(([n]) => n));
    if (problem) return none(`${name} is damaged (${problem})`);
    const backend = model.parameters()[0].backend;
    for (const [n, layer] of model.bitLinears()) {
      layers.push([layer, packedFromSafetensors(tensors, n, { backend })]);
    }
  } catch (e) {
    for (const [, p] of layers) p.dispose();
    layers = [];
    return none(`${name} is unreadable (${(e as Error).message.split("\n")[0]})`);
  }
  for (const [layer, packed] of layers) {
    layer.setInference((x: Tensor) => packed.forward(x));
  }
  return {
    used: true,
    dispose() {
      for (const [layer, packed] of layers) {
        layer.setInference(null);
        packed.dispose();
      }
    },
  };
}

/** How a loaded model runs inference. */
export interface Inference {
  /**
   * "full": a model without ternary layers; "latent": fake-quantised latent weights (ternary off);
   * "packed": packed weights from the given bytes; "packed-at-load": packed from the latent
   * weights now (the same logits as the latent path: BitLinear trains on the same integer
   * levels), because no usable packed bytes were given (`reason` says why).
   */
  mode: "full" | "latent" | "packed" | "packed-at-load";
  /** Why given packed bytes were not used. */
  reason?: string;
  /** Back to the latent weights and free what was packed. */
  dispose(): void;
}

/**
 * Choose and set up a loaded model's inference path: for a BitGPT with `ternary` on, the packed
 * weights from `packed` (bytes read beside its checkpoint, or a reason there are none) when
 * they belong to `source`, else packed at load; with `ternary` off its latent weights.
 */
export async function prepareInference(
  model: LanguageModel,
  opts: {
    ternary: boolean;
    source: PackedSourceId;
    packed: { bytes: Uint8Array; name: string } | { reason: string };
  },
): Promise<Inference> {
  if (!(model instanceof BitGPT)) return { mode: "full", dispose() {} };
  if (!opts.ternary) return { mode: "latent", dispose() {} };
  const use = "bytes" in opts.packed
    ? usePackedBytes(model, opts.packed.bytes, opts.source, opts.packed.name)
    : { used: false, reason: opts.packed.reason, dispose() {} };
  if (use.used) return { mode: "packed", dispose: () => use.dispose() };
  await model.quantize();
  return { mode: "packed-at-load", reason: use.reason, dispose: () => model.dequantize() };
}

/**
 * What is wrong with the packed tensors of `layers`, or null: exactly their names, finite float
 * values, a positive weight scale, and 2-bit codes other than 0b11 (which encodes no value).
 */
function checkPacked(tensors: Record<string, NamedArray>, layers: string[]): string | null {
  const expected = new Set<string>();
  for (const l of layers) {
    for (const s of [".weight_packed", ".weight_scale", ".norm.weight"]) expected.add(l + s);
    if (Object.hasOwn(tensors, `${l}.bias`)) expected.add(`${l}.bias`);
  }
  for (const name of Object.keys(tensors)) {
    if (!expected.has(name)) return `unexpected tensor ${name}`;
  }
  for (const name of expected) {
    const t = tensors[name];
    if (!t) return `no ${name}`;
    const d = t.data;
    if (name.endsWith(".weight_packed")) {
      if (!(d instanceof Uint32Array)) return `${name} is not U32`;
      for (let i = 0; i < d.length; i++) {
        if ((d[i] & (d[i] >>> 1) & 0x55555555) !== 0) return `${name} holds the code 0b11`;
      }
      continue;
    }
    for (let i = 0; i < d.length; i++) {
      if (!Number.isFinite(d[i])) return `${name} holds ${d[i]} at index ${i}`;
    }
    if (name.endsWith(".weight_scale") && !(d[0] > 0)) return `${name} is ${d[0]}, not > 0`;
  }
  return null;
}
