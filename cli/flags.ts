// The typed configs of `train` and `generate`: every flag with its default and meaning. Names
// and defaults follow the original BitGPT's train.py / generate.py argparse tables (its
// underscore spellings and `--wd` are accepted as aliases); integers are integers and booleans
// really parse `false`. Cross-flag rules (n-embd divisible by n-head, min-lr <= lr, ...) are
// checked here, before any work starts.

import { configLines, FlagError, type FlagSpec, helpText, parseFlags, showValue } from "./args.ts";

export { FlagError };

/** Everything `train` needs; defaults in `TRAIN_DEFAULTS`. */
export interface TrainConfig {
  /** Independent sequences per step. */
  batchSize: number;
  /** Context length (tokens) of each sequence. */
  blockSize: number;
  /** Training iterations. */
  maxIters: number;
  /** Batches averaged per split when estimating the loss. */
  evalIters: number;
  /** Iterations between evaluations (and checkpoint saves). */
  evalInterval: number;
  /** Peak learning rate. */
  lr: number;
  /** Attention heads. */
  nHead: number;
  /** Transformer blocks. */
  nLayer: number;
  /** Embedding width. */
  nEmbd: number;
  /** Dropout probability during training. */
  dropout: number;
  /** AdamW decoupled weight decay (matrices only). */
  weightDecay: number;
  /** Cosine-decay the learning rate after warmup; false keeps it at --lr. */
  decayLr: boolean;
  /** Linear warmup iterations. */
  warmupIters: number;
  /** Iteration where the cosine decay reaches --min-lr (~ max-iters per Chinchilla). */
  lrDecayIters: number;
  /** Learning-rate floor (~ lr / 10). */
  minLr: number;
  /** Log metrics to Weights & Biases. */
  wandbLog: boolean;
  /** W&B project name. */
  wandbProject: string;
  /** Random seed: init, batches, dropout. */
  seed: number;
  /** Config printed at start: 0 none, 1 tunable parameters, 2 all. */
  verbose: number;
  /** Iterations between plain progress lines (and metrics.jsonl train records). */
  logInterval: number;
  /** Architecture: full-precision GPT or ternary BitGPT. */
  model: "gpt" | "bitgpt";
  /** A model preset by name; explicit flags override its values ("" = none). */
  preset: string;
  /** Tokenizer: GPT-2 BPE or characters of the dataset. */
  tokenizer: "gpt2" | "char";
  /** "shakespeare", "astro", or the path of a UTF-8 text file. */
  dataset: string;
  /** Embedding rows; 0 = what the tokenizer needs (50304 for gpt2, the charset size for char). */
  vocabSize: number;
  /** Where checkpoints, metrics.jsonl and loss.svg go. */
  outDir: string;
  /** Continue from the checkpoint in --out-dir (model, optimizer, iteration, RNG). */
  resume: boolean;
  /** Replace an earlier run in --out-dir (only the files train wrote); refused otherwise. */
  overwrite: boolean;
  /** Compute backend: webgpu, cpu, or auto (webgpu when an adapter exists). */
  backend: "auto" | "webgpu" | "wasm" | "cpu";
  /** Threads of the wasm backend, the calling thread included; 0 = the machine's cores. */
  threads: number;
  /** Clip gradients to this global norm; 0 turns clipping off. */
  gradClip: number;
  /** Biases in Linear layers and LayerNorms (GPT; BitLinears have none). */
  bias: boolean;
  /** Position scheme: learned embeddings (nanoGPT) or rotary (RoPE). */
  pos: "learned" | "rope";
  /** AdamW β1. */
  beta1: number;
  /** AdamW β2. */
  beta2: number;
  /** LR schedule: nanoGPT's cosine, or BitNet b1.58's two-stage (weight decay 0.1, then 0). */
  schedule: "cosine" | "bitnet";
  /** Record where time goes: a table at the end and <out-dir>/trace.json (cli/profile.ts). */
  profile: boolean;
}

/** The original's defaults, plus ours for the flags it did not have. */
export const TRAIN_DEFAULTS: Readonly<TrainConfig> = Object.freeze({
  batchSize: 64,
  blockSize: 256,
  maxIters: 500000,
  evalIters: 200,
  evalInterval: 2000,
  lr: 6e-4,
  nHead: 4,
  nLayer: 4,
  nEmbd: 384,
  dropout: 0.2,
  weightDecay: 1e-1,
  decayLr: true,
  warmupIters: 200,
  lrDecayIters: 500000,
  minLr: 6e-5,
  wandbLog: false,
  wandbProject: "bitGPT",
  seed: 1337,
  verbose: 0,
  logInterval: 100,
  model: "bitgpt",
  preset: "",
  tokenizer: "gpt2",
  dataset: "shakespeare",
  vocabSize: 0,
  outDir: "out",
  resume: false,
  overwrite: false,
  backend: "auto",
  threads: 0,
  gradClip: 1.0,
  bias: true,
  pos: "learned",
  beta1: 0.9,
  beta2: 0.95,
  schedule: "cosine",
  profile: false,
});

const POS_INT = { type: "int", min: 1 } as const;
const NON_NEG_INT = { type: "int", min: 0 } as const;

/** The `train` flags, in `--help` order. */
export const TRAIN_FLAGS: readonly FlagSpec<TrainConfig>[] = [
  {
    key: "batchSize",
    name: "batch-size",
    kind: POS_INT,
    help: "sequences per step",
    tunable: true,
  },
  { key: "blockSize", name: "block-size", kind: POS_INT, help: "context length", tunable: true },
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
    key: "lr",
    name: "lr",
    kind: { type: "float", min: 0, minExclusive: true },
    help: "peak learning rate",
    tunable: true,
  },
  { key: "nHead", name: "n-head", kind: POS_INT, help: "attention heads", tunable: true },
  { key: "nLayer", name: "n-layer", kind: POS_INT, help: "transformer blocks", tunable: true },
  { key: "nEmbd", name: "n-embd", kind: POS_INT, help: "embedding width", tunable: true },
  {
    key: "dropout",
    name: "dropout",
    aliases: ["d"],
    kind: { type: "float", min: 0, max: 1, maxExclusive: true },
    help: "dropout probability",
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
  {
    key: "decayLr",
    name: "decay-lr",
    kind: { type: "bool" },
    help: "cosine learning-rate decay after warmup",
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
  {
    key: "wandbLog",
    name: "wandb-log",
    aliases: ["wandb_log"],
    kind: { type: "bool" },
    help: "log to Weights & Biases (needs WANDB_API_KEY)",
  },
  { key: "wandbProject", name: "wandb-project", kind: { type: "string" }, help: "W&B project" },
  { key: "seed", name: "seed", kind: NON_NEG_INT, help: "random seed" },
  {
    key: "verbose",
    name: "verbose",
    kind: { type: "int", min: 0, max: 2 },
    help: "config printed at start: 0 none, 1 tunable, 2 all",
  },
  {
    key: "logInterval",
    name: "log-interval",
    kind: POS_INT,
    help: "iterations between progress lines and metrics records",
  },
  {
    key: "model",
    name: "model",
    kind: { type: "choice", choices: ["gpt", "bitgpt"] },
    help: "architecture",
    tunable: true,
  },
  {
    key: "preset",
    name: "preset",
    kind: { type: "string" },
    help: "model preset; explicit flags override it",
    tunable: true,
  },
  {
    key: "tokenizer",
    name: "tokenizer",
    kind: { type: "choice", choices: ["gpt2", "char"] },
    help: "tokenizer",
    tunable: true,
  },
  {
    key: "dataset",
    name: "dataset",
    kind: { type: "string" },
    help: "shakespeare, astro, or a text file path",
    tunable: true,
  },
  {
    key: "vocabSize",
    name: "vocab-size",
    kind: NON_NEG_INT,
    help: "embedding rows; 0 = what the tokenizer needs",
  },
  { key: "outDir", name: "out-dir", kind: { type: "string" }, help: "output directory" },
  {
    key: "resume",
    name: "resume",
    kind: { type: "bool" },
    help: "continue from the checkpoint in --out-dir",
  },
  {
    key: "overwrite",
    name: "overwrite",
    kind: { type: "bool" },
    help: "replace an earlier run in --out-dir (only files train wrote)",
  },
  {
    key: "backend",
    name: "backend",
    kind: { type: "choice", choices: ["auto", "webgpu", "wasm", "cpu"] },
    help: "compute backend (auto: a hardware GPU, else wasm; webgpu takes a software adapter)",
  },
  {
    key: "threads",
    name: "threads",
    kind: { type: "int", min: 0, max: 256 },
    help: "threads of the wasm backend; 0 = the machine's cores",
  },
  {
    key: "gradClip",
    name: "grad-clip",
    kind: { type: "float", min: 0 },
    help: "clip gradients to this global norm; 0 = off",
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
  {
    key: "beta1",
    name: "beta1",
    kind: { type: "float", min: 0, max: 1, maxExclusive: true },
    help: "AdamW beta1",
  },
  {
    key: "beta2",
    name: "beta2",
    kind: { type: "float", min: 0, max: 1, maxExclusive: true },
    help: "AdamW beta2",
  },
  {
    key: "schedule",
    name: "schedule",
    kind: { type: "choice", choices: ["cosine", "bitnet"] },
    help: "LR schedule: nanoGPT cosine, or BitNet b1.58 two-stage",
    tunable: true,
  },
  {
    key: "profile",
    name: "profile",
    kind: { type: "bool" },
    help: "time per op and kernel: a table at the end and <out-dir>/trace.json (short runs)",
  },
];

/** A preset's values for the train config (only the fields it sets). */
export type PresetLookup = (name: string) => Partial<TrainConfig>;

/** Check the rules that involve more than one flag; throws FlagError. */
export function validateTrain(c: TrainConfig): void {
  if (c.nEmbd % c.nHead !== 0) {
    throw new FlagError(`--n-embd (${c.nEmbd}) must be divisible by --n-head (${c.nHead})`);
  }
  if (c.pos === "rope" && (c.nEmbd / c.nHead) % 2 !== 0) {
    throw new FlagError(
      `--pos rope needs an even head size; --n-embd / --n-head is ${c.nEmbd / c.nHead}`,
    );
  }
  if (c.minLr > c.lr) {
    throw new FlagError(`--min-lr (${c.minLr}) must not exceed --lr (${c.lr})`);
  }
  if (c.decayLr && c.lrDecayIters <= c.warmupIters) {
    throw new FlagError(
      `--lr-decay-iters (${c.lrDecayIters}) must be greater than --warmup-iters ` +
        `(${c.warmupIters}) when --decay-lr is true`,
    );
  }
  if (c.dataset === "") throw new FlagError("--dataset: must not be empty");
  if (c.outDir === "") throw new FlagError("--out-dir: must not be empty");
}

/** The result of parsing a command line: a config, or a request for help. */
export type Parsed<C> =
  | { help: true; text: string }
  | { help: false; config: C; explicit: Partial<C> };

const TRAIN_USAGE = "Usage: deno task train [flags]\n\n" +
  "Train a GPT or BitGPT language model; writes ckpt.safetensors, metrics.jsonl and loss.svg " +
  "to --out-dir.";

/**
 * Parse `train` flags: defaults, then the preset's values, then explicit flags; then the
 * cross-flag checks. `presets` resolves `--preset NAME` (and throws for unknown names).
 */
export function parseTrainArgs(
  argv: readonly string[],
  presets: PresetLookup = noPresets,
): Parsed<TrainConfig> {
  const { values, help } = parseFlags("train", TRAIN_FLAGS, argv);
  if (help) return { help: true, text: helpText(TRAIN_USAGE, TRAIN_FLAGS, TRAIN_DEFAULTS) };
  const preset = typeof values.preset === "string" && values.preset !== ""
    ? presets(values.preset)
    : {};
  const config = { ...TRAIN_DEFAULTS, ...preset, ...values } as TrainConfig;
  // A resumed run's flags are its saved ones plus these: checked once merged (cli/train.ts).
  if (!config.resume) validateTrain(config);
  return { help: false, config, explicit: values as Partial<TrainConfig> };
}

function noPresets(name: string): never {
  throw new FlagError(`--preset: unknown preset '${name}'`);
}

/** The config listing for `--verbose` 1 (tunable) or 2 (all), as lines. */
export function describeTrainConfig(c: TrainConfig): string[] {
  return configLines(TRAIN_FLAGS, c, c.verbose);
}

export {
  describeGenerateConfig,
  GENERATE_DEFAULTS,
  GENERATE_FLAGS,
  type GenerateConfig,
  parseGenerateArgs,
} from "./generate_flags.ts";
export { showValue };
