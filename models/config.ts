// Model configuration: nanoGPT's GPTConfig fields in camelCase plus the position scheme, the MLP
// activation, the model kind (GPT or BitGPT), and validation with one-line errors naming the bad
// field.

import { ConfigError } from "../engine/errors.ts";

export { ConfigError };
export type { ModelKind } from "./model.ts";

/** Architecture hyperparameters of both models (nanoGPT's GPTConfig). */
export interface GPTConfig {
  /** Tokens in the vocabulary (GPT-2: 50257, padded to 50304 for efficiency). */
  vocabSize: number;
  /** Longest context (positions). */
  blockSize: number;
  /** Transformer blocks. */
  nLayer: number;
  /** Attention heads per block (must divide nEmbd). */
  nHead: number;
  /** Embedding width C. */
  nEmbd: number;
  /** Dropout probability in training (0 for pretraining, 0.1+ for finetuning). */
  dropout: number;
  /** Biases in Linear layers and LayerNorms (GPT; BitGPT's BitLinears have none). */
  bias: boolean;
  /** Position scheme: learned embeddings (`wpe`) or rotary (no `wpe`). */
  pos: "learned" | "rope";
  /**
   * The MLP's activation; absent: the model's own, exact "gelu" for GPT (nanoGPT's nn.GELU()),
   * "relu" for BitGPT (the original's FeedForward). Hugging Face GPT-2 files load with
   * "gelu_tanh" (their `gelu_new`). Left out of configs that do not set it, so checkpoints
   * written before the field existed, and those of runs that keep the default, are unchanged.
   */
  activation?: Activation;
}

/** MLP activations: GELU exact (erf) or tanh-approximate (GPT-2's), or ReLU. */
export type Activation = "gelu" | "gelu_tanh" | "relu";

/** The activations, for validation and messages. */
export const ACTIVATIONS: readonly Activation[] = ["gelu", "gelu_tanh", "relu"];

/** Defaults of GPTConfig: GPT-2 small (124M) as nanoGPT. */
export const DEFAULT_CONFIG: GPTConfig = {
  vocabSize: 50304,
  blockSize: 1024,
  nLayer: 12,
  nHead: 12,
  nEmbd: 768,
  dropout: 0,
  bias: true,
  pos: "learned",
};

/** Throw ConfigError for the first bad field of `c`; return it when valid. */
export function validateConfig(c: GPTConfig): GPTConfig {
  for (const k of ["vocabSize", "blockSize", "nLayer", "nHead", "nEmbd"] as const) {
    if (!Number.isInteger(c[k]) || c[k] < 1) {
      throw new ConfigError(`config: ${k} must be a positive integer, got ${c[k]}`);
    }
  }
  if (c.nEmbd % c.nHead !== 0) {
    throw new ConfigError(`config: nEmbd (${c.nEmbd}) must be divisible by nHead (${c.nHead})`);
  }
  if (!(c.dropout >= 0 && c.dropout < 1)) {
    throw new ConfigError(`config: dropout must be in [0, 1), got ${c.dropout}`);
  }
  if (typeof c.bias !== "boolean") throw new ConfigError(`config: bias must be a boolean`);
  if (c.pos !== "learned" && c.pos !== "rope") {
    throw new ConfigError(`config: pos must be "learned" or "rope", got ${JSON.stringify(c.pos)}`);
  }
  if (c.pos === "rope" && (c.nEmbd / c.nHead) % 2 !== 0) {
    throw new ConfigError(
      `config: rope needs an even head size, got nEmbd / nHead = ${c.nEmbd / c.nHead}`,
    );
  }
  if (c.activation !== undefined && !ACTIVATIONS.includes(c.activation)) {
    throw new ConfigError(
      `config: activation must be one of ${ACTIVATIONS.map((a) => `"${a}"`).join(", ")}, got ` +
        JSON.stringify(c.activation),
    );
  }
  return c;
}

/** Every GPTConfig key: those with a default, then the optional ones. */
const CONFIG_KEYS: readonly string[] = [...Object.keys(DEFAULT_CONFIG), "activation"];

/** A full config from defaults plus overrides, validated; unknown keys are errors. */
export function makeConfig(overrides: Partial<GPTConfig> = {}): GPTConfig {
  for (const k of Object.keys(overrides)) {
    if (!CONFIG_KEYS.includes(k)) {
      throw new ConfigError(`config: unknown key '${k}' (known: ${CONFIG_KEYS.join(", ")})`);
    }
  }
  return validateConfig({ ...DEFAULT_CONFIG, ...overrides });
}

/** Training hyperparameters (the original's flags, camelCase); every field has a default. */
export interface TrainConfig {
  /** Sequences per batch (B). */
  batchSize: number;
  /** Iterations to run in total (a resumed run continues up to this). */
  maxIters: number;
  /** Batches per split averaged at each evaluation. */
  evalIters: number;
  /** Evaluate every this many iterations (and at the last one). */
  evalInterval: number;
  /** Peak learning rate. */
  learningRate: number;
  /** AdamW decoupled weight decay (≥ 2-dim parameters only). */
  weightDecay: number;
  /** AdamW β1. */
  beta1: number;
  /** AdamW β2. */
  beta2: number;
  /** Clip gradients to this global L2 norm (0: no clipping). */
  gradClip: number;
  /** Decay the learning rate with the schedule (false: constant learningRate). */
  decayLr: boolean;
  /** "cosine" (nanoGPT) or "bitnet" (BitNet b1.58 two-stage, weight decay 0.1 then 0). */
  schedule: "cosine" | "bitnet";
  /** Linear warmup iterations. */
  warmupIters: number;
  /** Cosine decay length (≈ maxIters). */
  lrDecayIters: number;
  /** Learning-rate floor (≈ learningRate / 10). */
  minLr: number;
  /** Seed of init, batches and dropout. */
  seed: number;
  /** Report the training loss every this many iterations (read back only then). */
  logInterval: number;
}

/** The original's defaults (its flag table). */
export const DEFAULT_TRAIN: TrainConfig = {
  batchSize: 64,
  maxIters: 500000,
  evalIters: 200,
  evalInterval: 2000,
  learningRate: 6e-4,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.95,
  gradClip: 1.0,
  decayLr: true,
  schedule: "cosine",
  warmupIters: 200,
  lrDecayIters: 500000,
  minLr: 6e-5,
  seed: 1337,
  logInterval: 100,
};

/** Throw ConfigError for the first bad training field; return it when valid. */
export function validateTrainConfig(t: TrainConfig): TrainConfig {
  const ints = ["batchSize", "maxIters", "evalIters", "evalInterval", "logInterval"] as const;
  for (const k of ints) {
    if (!Number.isInteger(t[k]) || t[k] < 1) {
      throw new ConfigError(`train: ${k} must be a positive integer, got ${t[k]}`);
    }
  }
  for (const k of ["warmupIters", "lrDecayIters", "seed"] as const) {
    if (!Number.isInteger(t[k]) || t[k] < 0) {
      throw new ConfigError(`train: ${k} must be a non-negative integer, got ${t[k]}`);
    }
  }
  for (const k of ["learningRate", "minLr", "weightDecay", "gradClip"] as const) {
    if (!(t[k] >= 0) || !Number.isFinite(t[k])) {
      throw new ConfigError(`train: ${k} must be a finite number >= 0, got ${t[k]}`);
    }
  }
  for (const k of ["beta1", "beta2"] as const) {
    if (!(t[k] >= 0 && t[k] < 1)) {
      throw new ConfigError(`train: ${k} must be in [0, 1), got ${t[k]}`);
    }
  }
  if (t.minLr > t.learningRate) {
    throw new ConfigError(
      `train: minLr (${t.minLr}) must not exceed learningRate (${t.learningRate})`,
    );
  }
  if (t.schedule === "cosine" && t.decayLr && t.lrDecayIters <= t.warmupIters) {
    throw new ConfigError(
      `train: lrDecayIters (${t.lrDecayIters}) must exceed warmupIters (${t.warmupIters})`,
    );
  }
  if (t.schedule !== "cosine" && t.schedule !== "bitnet") {
    throw new ConfigError(`train: schedule must be "cosine" or "bitnet", got ${t.schedule}`);
  }
  return t;
}
