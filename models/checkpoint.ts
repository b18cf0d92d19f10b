// Checkpoints as safetensors bytes (no file I/O here: the CLI reads and writes files). Ours hold
// the model's parameters under nanoGPT's names (a tied alias such as lm_head.weight is written
// once, under its primary name), the AdamW moments as `optimizer.<param>.exp_avg[_sq]`, and
// string metadata: format version, model kind, config, iteration, best val loss, RNG states,
// training config, tokenizer JSON. The loader also reads nanoGPT-named files without our
// metadata and Hugging Face GPT-2 files (Conv1D weights stored [in, out], transposed on load;
// a missing lm_head is tied to wte; the attention-mask buffers are skipped). A file does not
// depend on the device: tensors larger than one binding are the engine's business.

import type { Backend } from "../engine/backend.ts";
import type { TypedArray } from "../engine/dtype.ts";
import type { Tensor } from "../engine/tensor.ts";
import { type NamedArray, readSafetensors, writeSafetensors } from "../nn/safetensors.ts";
import type { HostArray } from "../nn/module.ts";
import type { AdamW, OptimizerState } from "../nn/optim.ts";
import { type GPTConfig, type TrainConfig } from "./config.ts";
import {
  checkFinite,
  CheckpointError,
  checkTensors,
  checkTied,
  metaBestLoss,
  metaConfig,
  metaCount,
  metaEvalDone,
  metaJson,
  metaOptimizer,
  metaRng,
  metaTrainConfig,
  type RngState,
} from "./checkpoint_check.ts";
import type { ModelOptions } from "./gpt.ts";
import { createModel, type LanguageModel, type ModelKind, parseModelKind } from "./model.ts";
import { foreignToNanoGpt } from "./hf.ts";

/** The checkpoint format this build writes and reads. */
export const CHECKPOINT_FORMAT = "bitgpt-checkpoint";
/** Its version; bumped whenever names or metadata change incompatibly. */
export const CHECKPOINT_VERSION = 1;

const OPT_PREFIX = "optimizer.";
// The `format` safetensors' own writers record (torch's save_file and Hugging Face's
// save_pretrained write "pt"): such files carry no metadata of ours and load as foreign.
const FRAMEWORK_FORMATS = ["pt", "tf", "flax", "np", "mlx"];

export { CheckpointError, type RngState };

/** What a checkpoint holds beside the model. */
export interface CheckpointExtras {
  /** The optimizer whose moments, step and lr are saved. */
  optimizer?: AdamW;
  /** Iterations completed. */
  iteration?: number;
  /** Best validation loss so far. */
  bestValLoss?: number;
  /** Training settings, for resuming. */
  trainConfig?: TrainConfig;
  /** Random stream states by role (e.g. `batches`, `dropout`). */
  rng?: Record<string, RngState>;
  /** The tokenizer as JSON text (data/tokenizer.ts `toJSON`). */
  tokenizer?: string;
  /** Further string metadata (keys must not clash with ours). */
  extra?: Record<string, string>;
}

function hostArray(t: Tensor, data: TypedArray): NamedArray {
  if (data instanceof Float64Array) return { dtype: "F64", shape: [...t.shape], data };
  if (data instanceof Int32Array) return { dtype: "I32", shape: [...t.shape], data };
  if (data instanceof Uint32Array) return { dtype: "U32", shape: [...t.shape], data };
  return { dtype: "F32", shape: [...t.shape], data: data as Float32Array };
}

/** Serialise a model (and optionally optimizer state and training metadata) to safetensors. */
export async function saveCheckpoint(
  model: LanguageModel,
  x: CheckpointExtras = {},
): Promise<Uint8Array> {
  const params: Record<string, NamedArray> = {};
  for (const [name, p] of model.namedParameters()) params[name] = hostArray(p, await p.data());
  const tensors: Record<string, NamedArray> = params;
  const meta: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    format_version: String(CHECKPOINT_VERSION),
    model: model.kind,
    config: JSON.stringify(model.config),
    tied: JSON.stringify(model.tiedNames()),
  };
  if (x.optimizer) {
    const s = x.optimizer.stateDict();
    const moments: Record<string, NamedArray> = {};
    for (const [k, t] of Object.entries(s.tensors)) moments[k] = hostArray(t, await t.data());
    for (const [k, a] of Object.entries(moments)) tensors[OPT_PREFIX + k] = a;
    meta.optimizer = JSON.stringify({
      step: s.step,
      lr: s.lr,
      weightDecay: s.weightDecay,
      betas: s.betas,
      eps: s.eps,
    });
  }
  if (x.iteration !== undefined) meta.iteration = String(x.iteration);
  if (x.bestValLoss !== undefined) meta.best_val_loss = String(x.bestValLoss);
  if (x.trainConfig) meta.train_config = JSON.stringify(x.trainConfig);
  if (x.rng) meta.rng = JSON.stringify(x.rng);
  if (x.tokenizer !== undefined) meta.tokenizer = x.tokenizer;
  for (const [k, v] of Object.entries(x.extra ?? {})) {
    if (Object.hasOwn(meta, k)) {
      throw new CheckpointError(`saveCheckpoint: extra key '${k}' is reserved`);
    }
    meta[k] = v;
  }
  return writeSafetensors(tensors, meta);
}

/** Optimizer state from a checkpoint: scalars plus host moments, for `AdamW.loadStateDict`. */
export type SavedOptimizerState = Omit<OptimizerState, "tensors"> & {
  tensors: Record<string, HostArray>;
};

/** A loaded checkpoint: the model and everything saved with it. */
export interface LoadedCheckpoint {
  /** The model, weights loaded, on the requested backend. */
  model: LanguageModel;
  /** "gpt" or "bitgpt". */
  kind: ModelKind;
  /** The architecture. */
  config: GPTConfig;
  /** Where the weights came from: our format, a bare nanoGPT-named file, or HF GPT-2. */
  source: "bitgpt" | "nanogpt" | "hf-gpt2";
  /** The next training iteration (0 when not saved). */
  iteration: number;
  /** Best validation loss so far, or null when not saved. */
  bestValLoss: number | null;
  /** The training settings of the run, or null. */
  trainConfig: TrainConfig | null;
  /** Random stream states by name, or null. */
  rng: Record<string, RngState> | null;
  /** The tokenizer as JSON text, or null. */
  tokenizer: string | null;
  /** The optimizer's state, or null when the file holds none. */
  optimizer: SavedOptimizerState | null;
  /** All string metadata as stored. */
  metadata: Record<string, string>;
}

/** Options of loadCheckpoint. */
export interface LoadCheckpointOptions {
  /** Backend for the model (default: the current one). */
  backend?: Backend;
  /** For files without our metadata: the model kind (default gpt). */
  kind?: ModelKind;
  /** For files without our metadata: config fields the shapes cannot tell (nHead, dropout…). */
  config?: Partial<GPTConfig>;
  /** Options of the model built (its logits block limit). */
  model?: Pick<ModelOptions, "maxLogitsBytes">;
  /** Load weights holding NaN or ±Infinity instead of refusing the file (default false). */
  allowNonFinite?: boolean;
}

// Errors of the layers below that a hostile or damaged file can cause: reported as the one
// CheckpointError. Anything else is a bug and keeps its type.
const FILE_ERRORS = ["SafetensorsError", "ConfigError", "StateDictError", "ShapeError"];

/** Run `fn`, turning the lower layers' file-caused errors into CheckpointError. */
function asCheckpointError<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    if (e instanceof Error && FILE_ERRORS.includes(e.name)) {
      const msg = e.message.split("\n")[0];
      const prefixed = msg.startsWith("checkpoint") ? msg : `${what}: ${msg}`;
      throw new CheckpointError(prefixed, { cause: e });
    }
    throw e;
  }
}

function checkVersion(meta: Record<string, string>): void {
  const s = meta.format_version;
  const v = /^\d{1,6}$/.test(s ?? "") ? Number(s) : NaN;
  // Version 1 is the first; a later build that changes the layout converts older versions here.
  if (!(v >= 1)) {
    throw new CheckpointError(
      `checkpoint: format_version '${s}' is not a version number; the file is ` +
        `damaged or not a ${CHECKPOINT_FORMAT} file`,
    );
  }
  if (v > CHECKPOINT_VERSION) {
    throw new CheckpointError(
      `checkpoint: format version ${v} is newer than this build reads (${CHECKPOINT_VERSION}); ` +
        `update bitgpt to load it`,
    );
  }
}

/**
 * Build the model a safetensors checkpoint describes and load its weights. The file is trusted
 * in nothing (models/checkpoint_check.ts): every problem is one CheckpointError, found before
 * the model is allocated where the file alone can tell.
 */
export function loadCheckpoint(bytes: Uint8Array, o: LoadCheckpointOptions = {}): LoadedCheckpoint {
  const { tensors, metadata } = asCheckpointError("checkpoint", () => readSafetensors(bytes));
  if (metadata.format !== CHECKPOINT_FORMAT) return loadForeign(tensors, metadata, o);
  checkVersion(metadata);
  const kind = asCheckpointError("checkpoint", () => parseModelKind(metadata.model ?? ""));
  const config = metaConfig(metaJson(metadata, "config"));
  const weights: Record<string, NamedArray> = {};
  const moments: Record<string, NamedArray> = {};
  for (const [k, t] of Object.entries(tensors)) {
    if (k.startsWith(OPT_PREFIX)) moments[k.slice(OPT_PREFIX.length)] = t;
    else weights[k] = t;
  }
  checkTied(metaJson(metadata, "tied"), kind);
  checkTensors(kind, config, weights, moments);
  checkFinite(weights, moments, o.allowNonFinite ?? false);
  const hasMoments = Object.keys(moments).length > 0;
  const opt = metaOptimizer(metaJson(metadata, "optimizer"), hasMoments);
  const rest = {
    iteration: metaCount(metadata, "iteration", 0),
    bestValLoss: metaBestLoss(metadata),
    trainConfig: metaTrainConfig(metaJson(metadata, "train_config")),
    rng: metaRng(metaJson(metadata, "rng")),
  };
  metaEvalDone(metadata);
  const model = build(kind, config, weights, o, `checkpoint (${kind})`);
  return {
    model,
    kind,
    config,
    source: "bitgpt",
    ...rest,
    tokenizer: metadata.tokenizer ?? null,
    optimizer: opt ? { ...opt, tensors: moments } : null,
    metadata,
  };
}

/** Allocate a model of `kind` and `config` (already checked against `weights`) and load them. */
function build(
  kind: ModelKind,
  config: GPTConfig,
  weights: Record<string, HostArray>,
  o: LoadCheckpointOptions,
  what: string,
): LanguageModel {
  const model = asCheckpointError(
    what,
    () => createModel(kind, config, { ...o.model, backend: o.backend, skipInit: true }),
  );
  try {
    asCheckpointError(what, () => model.loadStateDict(weights));
  } catch (e) {
    model.dispose();
    throw e;
  }
  return model;
}

/** A nanoGPT-named or Hugging Face GPT-2 file: infer the config from the shapes. */
function loadForeign(
  tensors: Record<string, NamedArray>,
  metadata: Record<string, string>,
  o: LoadCheckpointOptions,
): LoadedCheckpoint {
  if (metadata.format !== undefined && !FRAMEWORK_FORMATS.includes(metadata.format)) {
    throw new CheckpointError(
      `checkpoint: unknown format '${metadata.format}' (expected ${CHECKPOINT_FORMAT}, a ` +
        `nanoGPT-named file, or a Hugging Face GPT-2 file)`,
    );
  }
  const { weights, source, config } = asCheckpointError(
    "checkpoint",
    () => foreignToNanoGpt(tensors, o.config ?? {}),
  );
  const kind = o.kind ?? "gpt";
  checkTensors(kind, config, weights as Record<string, NamedArray>, {});
  checkFinite(weights as Record<string, NamedArray>, {}, o.allowNonFinite ?? false);
  return {
    model: build(kind, config, weights, o, `checkpoint (${source} as ${kind})`),
    kind,
    config,
    source,
    iteration: 0,
    bestValLoss: null,
    trainConfig: null,
    rng: null,
    tokenizer: null,
    optimizer: null,
    metadata,
  };
}
