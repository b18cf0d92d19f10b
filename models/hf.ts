// Reading weights named by others: nanoGPT-named files without our metadata and Hugging Face
// GPT-2 files (`transformers` GPT2Model / GPT2LMHeadModel). HF names lack the `transformer.`
// prefix in GPT2Model files, keep the causal mask as `h.{i}.attn.bias` / `.attn.masked_bias`
// buffers, and store c_attn, c_proj and c_fc as Conv1D weights [in, out]: transposed here to
// PyTorch Linear's [out, in]. HF GPT-2 computes its MLP with the tanh GELU (`gelu_new`), nanoGPT
// with the exact one. The config comes from the shapes, except the head count: a GPT's shapes
// do not record it (see `headReadings`), so it is given, or read from an HF config.json
// (`configFromHf`), or known because the shapes are those of a published GPT-2.

import type { NamedArray } from "../nn/safetensors.ts";
import type { HostArray } from "../nn/module.ts";
import { type Activation, ConfigError, type GPTConfig, validateConfig } from "./config.ts";

// The Conv1D weights of an HF GPT-2 block, by name suffix.
const CONV1D = [
  ".attn.c_attn.weight",
  ".attn.c_proj.weight",
  ".mlp.c_fc.weight",
  ".mlp.c_proj.weight",
];

/**
 * The published GPT-2 models (gpt2, -medium, -large, -xl, distilgpt2): width, layers and heads
 * (64 wide each). Their vocabulary (50257) and context (1024) come with them; a file with all
 * these shapes is read as the model its shapes name.
 */
const PUBLISHED_GPT2: readonly { name: string; nEmbd: number; nLayer: number; nHead: number }[] = [
  { name: "gpt2", nEmbd: 768, nLayer: 12, nHead: 12 },
  { name: "gpt2-medium", nEmbd: 1024, nLayer: 24, nHead: 16 },
  { name: "gpt2-large", nEmbd: 1280, nLayer: 36, nHead: 20 },
  { name: "gpt2-xl", nEmbd: 1600, nLayer: 48, nHead: 25 },
  { name: "distilgpt2", nEmbd: 768, nLayer: 6, nHead: 12 },
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

/**
 * Every head count a GPT of width `C` could have. The heads only cut the q, k, v projections'
 * C outputs into equal parts (c_attn is [3C, C] whatever their number; HF's mask buffers are
 * [1, 1, T, T]), so every divisor of C fits; rotary positions also need an even head size. The
 * shapes decide alone only at C = 1, or C = 2 with rotary positions.
 */
export function headReadings(C: number, pos: GPTConfig["pos"]): number[] {
  const out: number[] = [];
  for (let h = 1; h <= C; h++) {
    if (C % h === 0 && (pos === "learned" || (C / h) % 2 === 0)) out.push(h);
  }
  return out;
}

/** Shapes that settle a foreign file's head count. */
interface FileShapes {
  vocabSize: number;
  blockSize: number | null;
  nLayer: number;
  nEmbd: number;
  pos: GPTConfig["pos"];
}

/** The head count of a file that does not record it, or a ConfigError saying what to give. */
function inferHeads(s: FileShapes, source: "nanogpt" | "hf-gpt2"): number {
  const published = PUBLISHED_GPT2.find((p) =>
    p.nEmbd === s.nEmbd && p.nLayer === s.nLayer && s.vocabSize === 50257 && s.blockSize === 1024
  );
  if (published) return published.nHead;
  const readings = headReadings(s.nEmbd, s.pos);
  if (readings.length === 1) return readings[0];
  const shown = readings.length > 12
    ? [...readings.slice(0, 6), "…", ...readings.slice(-3)].join(", ")
    : readings.join(", ");
  const file = source === "hf-gpt2" ? "Hugging Face GPT-2" : "nanoGPT-named";
  throw new ConfigError(
    `checkpoint: this ${file} file does not record its number of attention heads, and its ` +
      `width ${s.nEmbd} fits ${readings.length} (nHead ${shown}); give it: --n-head on the ` +
      `command line, or config.nHead in loadCheckpoint's options` +
      (source === "hf-gpt2" ? ` (the model's config.json has it as n_head)` : ""),
  );
}

/** HF names to nanoGPT's: the `transformer.` prefix, without the causal-mask buffers. */
function nanoGptNames(tensors: Record<string, NamedArray>): Record<string, HostArray> {
  const named: Record<string, HostArray> = {};
  for (const [k, t] of Object.entries(tensors)) {
    const name = k.startsWith("transformer.") || k === "lm_head.weight" || k === "lm_head.bias"
      ? k
      : `transformer.${k}`;
    if (/\.attn\.(bias|masked_bias)$/.test(name)) continue; // HF's causal-mask buffers
    named[name] = t;
  }
  return named;
}

/**
 * HF/nanoGPT names to ours, the layout found, and the config the shapes imply; `overrides` give
 * what the shapes cannot tell (nHead, blockSize with rotary positions, dropout, activation).
 */
export function foreignToNanoGpt(
  tensors: Record<string, NamedArray>,
  overrides: Partial<GPTConfig>,
): { weights: Record<string, HostArray>; source: "nanogpt" | "hf-gpt2"; config: GPTConfig } {
  const named = nanoGptNames(tensors);
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
  const source = hf ? "hf-gpt2" : "nanogpt";
  let nLayer = 0;
  for (const k of Object.keys(named)) {
    const m = /^transformer\.h\.(\d+)\./.exec(k);
    if (m) nLayer = Math.max(nLayer, Number(m[1]) + 1);
  }
  const wpe = named["transformer.wpe.weight"];
  if (!wpe && overrides.blockSize === undefined) {
    throw new ConfigError("checkpoint: no wpe (rotary positions?); pass config.blockSize");
  }
  const pos = wpe ? "learned" : "rope";
  const shapes = { vocabSize, nLayer, nEmbd: C, pos, blockSize: wpe?.shape[0] ?? null } as const;
  const config: GPTConfig = {
    vocabSize,
    nEmbd: C,
    nLayer,
    nHead: overrides.nHead ?? inferHeads(shapes, source),
    blockSize: overrides.blockSize ?? wpe!.shape[0],
    dropout: overrides.dropout ?? 0,
    bias: Object.hasOwn(named, "transformer.ln_f.bias"),
    pos,
  };
  // GPT-2's MLP uses the tanh GELU; nanoGPT's the exact one (the model's default).
  const activation = overrides.activation ?? (hf ? "gelu_tanh" : undefined);
  if (activation !== undefined) config.activation = activation;
  return { weights: named, source, config: validateConfig(config) };
}

// transformers' activation_function names (ACT2FN) and ours; gelu_new, gelu_fast and
// gelu_pytorch_tanh are one function, 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
const HF_ACTIVATIONS: Record<string, Activation> = {
  gelu_new: "gelu_tanh",
  gelu_fast: "gelu_tanh",
  gelu_pytorch_tanh: "gelu_tanh",
  gelu: "gelu",
  relu: "relu",
};

/**
 * The config fields a Hugging Face GPT-2 `config.json` gives that a weights file cannot: the
 * head count and the MLP activation, to pass as loadCheckpoint's `config`. Settings this model
 * cannot compute (another activation, LayerNorm epsilon, attention scaling, MLP width) are
 * refused, so a file never loads into a model that computes something else.
 */
export function configFromHf(json: Record<string, unknown>): Partial<GPTConfig> {
  if (json.model_type !== undefined && json.model_type !== "gpt2") {
    bad(`model_type is ${JSON.stringify(json.model_type)}, not "gpt2"`);
  }
  const fn = String(json.activation_function ?? "gelu_new");
  const activation = HF_ACTIVATIONS[fn];
  if (!activation) bad(`activation_function "${fn}" (known: ${Object.keys(HF_ACTIVATIONS)})`);
  if ((json.layer_norm_epsilon ?? 1e-5) !== 1e-5) {
    bad(`layer_norm_epsilon is ${json.layer_norm_epsilon}, ours is 1e-5`);
  }
  if (json.scale_attn_weights === false) bad("scale_attn_weights is false (no 1/√d scaling)");
  if (json.scale_attn_by_inverse_layer_idx === true) bad("scale_attn_by_inverse_layer_idx is true");
  const nInner = json.n_inner;
  if (nInner !== undefined && nInner !== null && nInner !== 4 * Number(json.n_embd)) {
    bad(`n_inner is ${nInner}, not 4·n_embd`);
  }
  const nHead = Number(json.n_head);
  if (!Number.isInteger(nHead) || nHead < 1) bad(`n_head is ${json.n_head}, not a head count`);
  return { nHead, activation };
}

function bad(what: string): never {
  throw new ConfigError(`config.json: ${what}; this model cannot compute it`);
}
