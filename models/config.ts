// Model and training configuration: nanoGPT's GPTConfig fields in camelCase plus the position
// scheme, the MLP activation, the model kind (GPT or BitGPT); the training hyperparameters with
// the original's defaults; validation with one-line errors naming the bad field; and the settings
// tables (MODEL_SETTINGS, TRAIN_SETTINGS) that `train`'s flags, `--help` and `--verbose` listing
// are made from, so a setting is declared once, here.

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

/** How a setting's value is read and checked (the CLI's flags are made from these). */
export type SettingKind =
  | { type: "int"; min?: number; max?: number }
  | { type: "float"; min?: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean }
  | { type: "bool" }
  | { type: "string" }
  | { type: "choice"; choices: readonly string[] };

/** One setting of a config: its field, its `--name`, other spellings, type and help line. */
export interface Setting<C> {
  /** The config field it sets. */
  key: keyof C & string;
  /** The kebab-case flag name, without dashes. */
  name: string;
  /** Other spellings accepted (without dashes), e.g. the original's `eval_iters`. */
  aliases?: readonly string[];
  /** Type and range. */
  kind: SettingKind;
  /** One line for `--help`. */
  help: string;
  /** A tunable hyperparameter (listed by `--verbose 1`; level 2 lists every setting). */
  tunable?: boolean;
}

const POS_INT = { type: "int", min: 1 } as const;
const NON_NEG_INT = { type: "int", min: 0 } as const;
const UNIT = { type: "float", min: 0, max: 1, maxExclusive: true } as const;

/** The architecture fields a command line sets. */
export type ModelSettings = Pick<
  GPTConfig,
  "blockSize" | "nLayer" | "nHead" | "nEmbd" | "dropout" | "bias" | "pos"
>;

/**
 * The architecture settings a command line sets (vocabSize comes from the tokenizer and the
 * activation from the model kind, so neither is here).
 */
export const MODEL_SETTINGS: readonly Setting<ModelSettings>[] = [
  { key: "blockSize", name: "block-size", kind: POS_INT, help: "context length", tunable: true },
  { key: "nLayer", name: "n-layer", kind: POS_INT, help: "transformer blocks", tunable: true },
  { key: "nHead", name: "n-head", kind: POS_INT, help: "attention heads", tunable: true },
  { key: "nEmbd", name: "n-embd", kind: POS_INT, help: "embedding width", tunable: true },
  {
    key: "dropout",
    name: "dropout",
    aliases: ["d"],
    kind: UNIT,
    help: "dropout probability",
    tunable: true,
  },
  {
    key: "bias",
    name: "bias",
    kind: { type: "bool" },
    help: "biases in Linear layers and LayerNorms",
    tunable: true,
  },
  {
    key: "pos",
    name: "pos",
    kind: { type: "choice", choices: ["learned", "rope"] },
    help: "position encoding: learned embeddings or rotary",
    tunable: true,
  },
];

/** Every training setting (defaults in DEFAULT_TRAIN). */
export const TRAIN_SETTINGS: readonly Setting<TrainConfig>[] = [
  {
    key: "batchSize",
    name: "batch-size",
    kind: POS_INT,
    help: "sequences per step",
    tunable: true,
  },
  { key: "maxIters", name: "max-iters", kind: POS_INT, help: "training iterations", tunable: true },
  {
    key: "evalIters",
    name: "eval-iters",
    aliases: ["eval_iters"],
    kind: POS_INT,
    help: "batches per split to estimate the loss",
  },
  {
    key: "evalInterval",
    name: "eval-interval",
    aliases: ["eval_interval"],
    kind: POS_INT,
    help: "iterations between evaluations and checkpoints",
  },
  {
    key: "learningRate",
    name: "lr",
    kind: { type: "float", min: 0, minExclusive: true },
    help: "peak learning rate",
    tunable: true,
  },
  {
    key: "weightDecay",
    name: "weight-decay",
    aliases: ["wd"],
    kind: { type: "float", min: 0 },
    help: "AdamW weight decay",
    tunable: true,
  },
  { key: "beta1", name: "beta1", kind: UNIT, help: "AdamW beta1" },
  { key: "beta2", name: "beta2", kind: UNIT, help: "AdamW beta2" },
  {
    key: "gradClip",
    name: "grad-clip",
    kind: { type: "float", min: 0 },
    help: "clip gradients to this global norm; 0 = off",
    tunable: true,
  },
  {
    key: "decayLr",
    name: "decay-lr",
    kind: { type: "bool" },
    help: "cosine learning-rate decay after warmup",
    tunable: true,
  },
  {
    key: "schedule",
    name: "schedule",
    kind: { type: "choice", choices: ["cosine", "bitnet"] },
    help: "LR schedule: nanoGPT cosine, or BitNet b1.58 two-stage",
    tunable: true,
  },
  {
    key: "warmupIters",
    name: "warmup-iters",
    kind: NON_NEG_INT,
    help: "linear warmup iterations",
    tunable: true,
  },
  {
    key: "lrDecayIters",
    name: "lr-decay-iters",
    kind: NON_NEG_INT,
    help: "iteration where decay reaches min-lr",
    tunable: true,
  },
  {
    key: "minLr",
    name: "min-lr",
    kind: { type: "float", min: 0 },
    help: "learning-rate floor",
    tunable: true,
  },
  { key: "seed", name: "seed", kind: NON_NEG_INT, help: "random seed" },
  {
    key: "logInterval",
    name: "log-interval",
    kind: POS_INT,
    help: "iterations between progress lines and metrics records",
  },
];
