// Reading weights named by others: nanoGPT-named files without our metadata and Hugging Face
// GPT-2 files (`transformers` GPT2Model / GPT2LMHeadModel). HF names lack the `transformer.`
// prefix in GPT2Model files, keep the causal mask as `h.{i}.attn.bias` / `.attn.masked_bias`
// buffers, and store c_attn, c_proj and c_fc as Conv1D weights [in, out]: transposed here to
// PyTorch Linear's [out, in]. The config is inferred from shapes (GPT-2 heads are 64 wide).

import type { NamedArray } from "../nn/safetensors.ts";
import type { HostArray } from "../nn/module.ts";
import { ConfigError, type GPTConfig, validateConfig } from "./config.ts";

// The Conv1D weights of an HF GPT-2 block, by name suffix.
const CONV1D = [
  ".attn.c_attn.weight",
  ".attn.c_proj.weight",
  ".mlp.c_fc.weight",
  ".mlp.c_proj.weight",
];

/** Row-major transpose of a [rows, cols] array. */
export function transpose2d(a: HostArray): HostArray {
  const [rows, cols] = a.shape;
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = a.data[r * cols + c];
  }
  return { shape: [cols, rows], data: out };
}

/** HF/nanoGPT names to ours, the layout found, and the config the shapes imply. */
export function foreignToNanoGpt(
  tensors: Record<string, NamedArray>,
  overrides: Partial<GPTConfig>,
): { weights: Record<string, HostArray>; source: "nanogpt" | "hf-gpt2"; config: GPTConfig } {
  const named: Record<string, HostArray> = {};
  for (const [k, t] of Object.entries(tensors)) {
    const name = k.startsWith("transformer.") || k === "lm_head.weight" || k === "lm_head.bias"
      ? k
      : `transformer.${k}`;
    if (/\.attn\.(bias|masked_bias)$/.test(name)) continue; // HF's causal-mask buffers
    named[name] = t;
  }
  const wte = named["transformer.wte.weight"];
  if (!wte || wte.shape.length !== 2) {
    throw new ConfigError(
      "checkpoint: no 2-D transformer.wte.weight (or wte.weight): not a GPT-2 or nanoGPT file",
    );
  }
  const [vocabSize, C] = wte.shape;
  const cAttn = named["transformer.h.0.attn.c_attn.weight"];
  const hf = cAttn !== undefined && cAttn.shape[0] === C && cAttn.shape[1] === 3 * C;
  if (hf) {
    for (const k of Object.keys(named)) {
      if (CONV1D.some((s) => k.endsWith(s)) && named[k].shape.length === 2) {
        named[k] = transpose2d(named[k]);
      }
    }
  }
  let nLayer = 0;
  for (const k of Object.keys(named)) {
    const m = /^transformer\.h\.(\d+)\./.exec(k);
    if (m) nLayer = Math.max(nLayer, Number(m[1]) + 1);
  }
  const wpe = named["transformer.wpe.weight"];
  const nHead = overrides.nHead ?? (C % 64 === 0 ? C / 64 : undefined);
  if (nHead === undefined) {
    throw new ConfigError(`checkpoint: cannot infer nHead for width ${C}; pass config.nHead`);
  }
  if (!wpe && overrides.blockSize === undefined) {
    throw new ConfigError("checkpoint: no wpe (rotary positions?); pass config.blockSize");
  }
  const config = validateConfig({
    vocabSize,
    nEmbd: C,
    nLayer,
    nHead,
    blockSize: overrides.blockSize ?? wpe!.shape[0],
    dropout: overrides.dropout ?? 0,
    bias: Object.hasOwn(named, "transformer.ln_f.bias"),
    pos: wpe ? "learned" : "rope",
  });
  return { weights: named, source: hf ? "hf-gpt2" : "nanogpt", config };
}
