// The typed config of `train`: the model's and the training loop's settings, declared once in
// models/config.ts (MODEL_SETTINGS, TRAIN_SETTINGS, DEFAULT_TRAIN) with the default preset's
// values, plus the command's own flags (data, files, device, logging). Names and defaults follow
// the original BitGPT's train.py argparse table (its underscore spellings and `--wd` are accepted
// as aliases); integers are integers and booleans really parse `false`. Cross-flag rules (n-embd
// divisible by n-head, min-lr <= lr, ...) are checked here, before any work starts.

import {
  DEFAULT_TRAIN,
  type GPTConfig,
  MODEL_SETTINGS,
  type ModelSettings,
  TRAIN_SETTINGS,
  type TrainConfig as LibTrainConfig,
} from "../models/config.ts";
import { MODEL_KINDS, type ModelKind } from "../models/model.ts";
import { getPreset } from "../models/presets.ts";
import {
  configLines,
  DEVICE_FLAGS,
  type DeviceFlags,
  FlagError,
  type FlagSpec,
  helpText,
  type Parsed,
  parseFlags,
  showValue,
} from "./args.ts";

export { FlagError, type Parsed };

/** The architecture settings `train` takes as flags (models/config.ts MODEL_SETTINGS). */
export type ModelFlags = ModelSettings;

/** What `train` adds to the model's and the training loop's settings: data, files, device. */
export interface RunFlags extends DeviceFlags {
  /** Log metrics to Weights & Biases. */
  wandbLog: boolean;
  /** W&B project name. */
  wandbProject: string;
  /** Config printed at start: 0 none, 1 tunable parameters, 2 all. */
  verbose: number;
  /** Architecture: full-precision GPT or ternary BitGPT. */
  model: ModelKind;
  /** A model preset by name; explicit flags override its values ("" = none). */
  preset: string;
  /** Tokenizer: GPT-2 BPE or characters of the dataset. */
  tokenizer: "gpt2" | "char";
  /** "shakespeare", "astro", the path of a UTF-8 text file, or of a .jsonl instruction file. */
  dataset: string;
  /** Embedding rows; 0 = what the tokenizer needs (50304 for gpt2, the charset size for char). */
  vocabSize: number;
  /** Where checkpoints, metrics.jsonl and loss.svg go. */
  outDir: string;
  /** Continue from the checkpoint in --out-dir (model, optimizer, iteration, RNG). */
  resume: boolean;
  /**
   * Start a new run from this checkpoint file or run directory: its weights, architecture and
   * tokenizer, with a fresh optimizer at iteration 0 ("" = a new model).
   */
  initFrom: string;
  /** Replace an earlier run in --out-dir (only the files train wrote); refused otherwise. */
  overwrite: boolean;
  /** Record where time goes: a table at the end and <out-dir>/trace.json (cli/profile.ts). */
  profile: boolean;
}

/** Everything `train` needs: model and training settings (models/config.ts) and its own. */
export type TrainConfig = ModelFlags & LibTrainConfig & RunFlags;

/** The defaults of the flags `train` adds. */
const RUN_DEFAULTS: RunFlags = {
  wandbLog: false,
  wandbProject: "bitGPT",
  verbose: 0,
  model: "bitgpt",
  preset: "",
  tokenizer: "gpt2",
  dataset: "shakespeare",
  vocabSize: 0,
  outDir: "out",
  resume: false,
  initFrom: "",
  overwrite: false,
  backend: "auto",
  threads: 0,
  profile: false,
};

/** The preset a bare `train` uses: the original BitGPT's defaults. */
export const DEFAULT_PRESET = "small";

/** The architecture settings of a model config, without vocabSize and activation. */
export function modelFlags(c: GPTConfig): ModelFlags {
  return pick(c, MODEL_SETTINGS.map((s) => s.key)) as ModelFlags;
}

/** The library's training settings of a train config. */
export function libTrainConfig(c: TrainConfig): LibTrainConfig {
  return pick(c, TRAIN_SETTINGS.map((s) => s.key)) as LibTrainConfig;
}

function pick<T extends object>(o: T, keys: readonly string[]): Partial<T> {
  return Object.fromEntries(keys.map((k) => [k, (o as Record<string, unknown>)[k]])) as Partial<T>;
}

/**
 * `train`'s defaults: the training loop's (models/config.ts DEFAULT_TRAIN, the original's flag
 * table), the default preset's architecture and settings, and the flags of the command itself.
 */
export const TRAIN_DEFAULTS: Readonly<TrainConfig> = Object.freeze({
  ...modelFlags(getPreset(DEFAULT_PRESET).model),
  ...DEFAULT_TRAIN,
  ...getPreset(DEFAULT_PRESET).train,
  ...RUN_DEFAULTS,
});

/** The flags of `train` alone. */
const RUN_FLAGS: readonly FlagSpec<RunFlags>[] = [
  {
    key: "model",
    name: "model",
    kind: { type: "choice", choices: MODEL_KINDS },
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
    help: "shakespeare, astro, a text file path, or a .jsonl file of instruction records",
    tunable: true,
  },
  {
    key: "vocabSize",
    name: "vocab-size",
    kind: { type: "int", min: 0 },
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
    key: "initFrom",
    name: "init-from",
    kind: { type: "string" },
    help: "fine-tune: a new run from this checkpoint or run directory's weights (iteration 0, " +
      "fresh optimizer)",
  },
  {
    key: "overwrite",
    name: "overwrite",
    kind: { type: "bool" },
    help: "replace an earlier run in --out-dir (only files train wrote)",
  },
  ...DEVICE_FLAGS,
  {
    key: "wandbLog",
    name: "wandb-log",
    aliases: ["wandb_log"],
    kind: { type: "bool" },
    help: "log to Weights & Biases (needs WANDB_API_KEY)",
  },
  { key: "wandbProject", name: "wandb-project", kind: { type: "string" }, help: "W&B project" },
  {
    key: "verbose",
    name: "verbose",
    kind: { type: "int", min: 0, max: 2 },
    help: "config printed at start: 0 none, 1 tunable, 2 all",
  },
  {
    key: "profile",
    name: "profile",
    kind: { type: "bool" },
    help: "time per op and kernel: a table at the end and <out-dir>/trace.json (short runs)",
  },
];

/** The `train` flags, in `--help` order: training, model, then the command's own. */
export const TRAIN_FLAGS: readonly FlagSpec<TrainConfig>[] = [
  ...TRAIN_SETTINGS,
  ...MODEL_SETTINGS,
  ...RUN_FLAGS,
] as FlagSpec<TrainConfig>[];

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
  if (c.minLr > c.learningRate) {
    throw new FlagError(`--min-lr (${c.minLr}) must not exceed --lr (${c.learningRate})`);
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

export { showValue };
