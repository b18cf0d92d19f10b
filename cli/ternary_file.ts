// The packed inference file of a BitGPT run: `train` writes ckpt.ternary.safetensors beside
// each ckpt.safetensors it saves, and `generate` prefers it. It holds every BitLinear packed once
// (kernels/ternary_linear.ts: `<name>.weight_packed` U32, `.weight_scale` F32, `.norm.weight`
// F32, `.bias`), the iteration of the checkpoint it was packed from (a stale file is ignored),
// and format metadata. The other parameters (embeddings, ln_f, lm_head) come from the checkpoint.

import type { Tensor } from "../engine/tensor.ts";
import {
  packBitLinear,
  type PackedBitLinear,
  packedFromSafetensors,
  packedToSafetensors,
} from "../kernels/ternary/linear.ts";
import { type NamedArray, readSafetensors, writeSafetensors } from "../nn/safetensors.ts";
import type { BitLinear } from "../nn/bitlinear.ts";
import { BitGPT } from "../models/bitgpt.ts";
import type { LanguageModel } from "../models/model.ts";
import { fileExists, writeFileAtomic } from "./files.ts";

/** The metadata `format` of the packed file. */
export const TERNARY_FORMAT = "bitgpt-ternary";
const TERNARY_VERSION = "1";

/** `ckpt.safetensors` → `ckpt.ternary.safetensors`. */
export function ternaryPathOf(ckptPath: string): string {
  return ckptPath.replace(/(\.safetensors)?$/, ".ternary.safetensors");
}

/**
 * Write the packed ternary weights of a BitGPT (at `iteration`) beside `ckptPath`, atomically;
 * returns the file's path, or null for a model without BitLinears.
 */
export async function writeTernaryFile(
  model: LanguageModel,
  ckptPath: string,
  iteration: number,
): Promise<string | null> {
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
  const path = ternaryPathOf(ckptPath);
  await writeFileAtomic(
    path,
    writeSafetensors(tensors, {
      format: TERNARY_FORMAT,
      format_version: TERNARY_VERSION,
      config: JSON.stringify(model.config),
      iteration: String(iteration),
    }),
  );
  return path;
}

/** What `useTernaryFile` did. */
export interface TernaryUse {
  /** The packed file in use, or null when the model runs on its full-precision weights. */
  path: string | null;
  /** Why the file was not used (absent, stale, unreadable), when it was not. */
  reason?: string;
  /** Free the packed layers' device memory. */
  dispose(): void;
}

/**
 * Switch the BitLinears of a BitGPT loaded from `ckptPath` (at `iteration`) to the packed
 * ternary × int8 path from the file beside it, when that file exists and matches.
 */
export async function useTernaryFile(
  model: LanguageModel,
  ckptPath: string,
  iteration: number,
): Promise<TernaryUse> {
  const none = (reason: string): TernaryUse => ({ path: null, reason, dispose() {} });
  if (!(model instanceof BitGPT)) return none("not a BitGPT");
  const path = ternaryPathOf(ckptPath);
  if (!(await fileExists(path))) return none(`no ${path}`);
  let layers: [BitLinear, PackedBitLinear][] = [];
  try {
    const { tensors, metadata } = readSafetensors(await Deno.readFile(path));
    if (metadata.format !== TERNARY_FORMAT || metadata.format_version !== TERNARY_VERSION) {
      return none(`${path} is not a version ${TERNARY_VERSION} ${TERNARY_FORMAT} file`);
    }
    if (Number(metadata.iteration) !== iteration) {
      return none(`${path} is from iteration ${metadata.iteration}, the checkpoint ${iteration}`);
    }
    const backend = model.parameters()[0].backend;
    for (const [name, layer] of model.bitLinears()) {
      layers.push([layer, packedFromSafetensors(tensors, name, { backend })]);
    }
  } catch (e) {
    for (const [, p] of layers) p.dispose();
    layers = [];
    return none(`${path} is unreadable (${(e as Error).message.split("\n")[0]})`);
  }
  for (const [layer, packed] of layers) {
    layer.setInference((x: Tensor) => packed.forward(x));
  }
  return {
    path,
    dispose() {
      for (const [layer, packed] of layers) {
        layer.setInference(null);
        packed.dispose();
      }
    },
  };
}
