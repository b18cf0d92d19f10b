// What the checkpoint loader checks before it builds anything (issue 14: the reader trusts
// nothing). Every metadata field is type- and range-checked; the config is compared with the
// tensors' names and shapes before a model is allocated, so a model is never larger than what
// the file holds; a tied weight stored twice must hold one matrix; weights and moments must be
// finite. Every failure is one `CheckpointError` naming the field or the tensor.

import type { NamedArray } from "../nn/safetensors.ts";
import { listNames } from "../nn/state_dict.ts";
import {
  ConfigError,
  DEFAULT_CONFIG,
  DEFAULT_TRAIN,
  type GPTConfig,
  makeConfig,
  type ModelKind,
  type TrainConfig,
  validateConfig,
  validateTrainConfig,
} from "./config.ts";
import { parameterSpecs } from "./params.ts";
import { createModel } from "./model.ts";
import { meta } from "../engine/meta.ts";
import { CheckpointError } from "../engine/errors.ts";

export { CheckpointError };

/** A generator's saved state (engine/random.ts `Generator.state()`). */
export interface RngState {
  /** The generator's seed. */
  seed: number;
  /** Counters consumed. */
  offset: number;
}

/** The optimizer scalars a checkpoint stores beside the moments. */
export interface OptimizerScalars {
  /** Updates taken. */
  step: number;
  /** Learning rate at the last update. */
  lr: number;
  /** Weight decay for parameters with ≥ 2 dims. */
  weightDecay: number;
  /** (β1, β2). */
  betas: [number, number];
  /** Denominator epsilon. */
  eps: number;
}

// The largest RoPE table (blockSize × headSize) a file may ask for beyond its own weights: the
// one allocation a config can ask for without a tensor in the file to pay for it.
const MAX_FREE_ROPE_ELEMENTS = 1 << 22;

function fail(message: string): never {
  throw new CheckpointError(`checkpoint: ${message}`);
}

/** A value from the file for messages: JSON, shortened. */
function show(x: unknown): string {
  const s = JSON.stringify(x) ?? String(x);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

/** Metadata `key` parsed as JSON (null when absent). */
export function metaJson(meta: Record<string, string>, key: string): unknown {
  if (!Object.hasOwn(meta, key)) return null;
  try {
    return JSON.parse(meta[key]);
  } catch {
    fail(`metadata '${key}' is not valid JSON`);
  }
}

/** A non-negative safe integer written in decimal digits (e.g. `iteration`), or the default. */
export function metaCount(meta: Record<string, string>, key: string, absent: number): number {
  if (!Object.hasOwn(meta, key)) return absent;
  const s = meta[key];
  const v = /^\d{1,16}$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(v)) {
    fail(`metadata '${key}' must be a non-negative integer, got ${show(s)}`);
  }
  return v;
}

/** `best_val_loss`: a finite loss >= 0, or Infinity (no evaluation yet); null when absent. */
export function metaBestLoss(meta: Record<string, string>): number | null {
  if (!Object.hasOwn(meta, "best_val_loss")) return null;
  const s = meta.best_val_loss;
  const v = /^(Infinity|\d+(\.\d+)?(e[+-]?\d+)?)$/.test(s) ? Number(s) : NaN;
  if (!(v >= 0) || (!Number.isFinite(v) && s !== "Infinity")) {
    fail(`metadata 'best_val_loss' must be a loss >= 0 (or Infinity), got ${show(s)}`);
  }
  return v;
}

/** `eval_done`: "1" when the checkpoint was taken after that iteration's evaluation. */
export function metaEvalDone(meta: Record<string, string>): boolean {
  if (!Object.hasOwn(meta, "eval_done")) return false;
  if (meta.eval_done !== "0" && meta.eval_done !== "1") {
    fail(`metadata 'eval_done' must be "0" or "1", got ${show(meta.eval_done)}`);
  }
  return meta.eval_done === "1";
}

/**
 * Check an object's fields against a template: only its keys, each of the template's type; all
 * of them unless `partial` (missing ones then take the template's values).
 */
function checkFields(
  what: string,
  raw: unknown,
  template: Record<string, unknown>,
  partial = false,
  optional: Record<string, unknown> = {},
): void {
  if (!isObject(raw)) fail(`${what} is not a JSON object: ${show(raw)}`);
  const known = { ...template, ...optional };
  for (const k of Object.keys(raw)) {
    if (!Object.hasOwn(known, k)) {
      fail(`${what} has an unknown field '${k}' (known: ${Object.keys(known).join(", ")})`);
    }
    if (Object.hasOwn(optional, k) && typeof raw[k] !== typeof optional[k]) {
      fail(`${what} field '${k}' must be a ${typeof optional[k]}, got ${show(raw[k])}`);
    }
  }
  for (const [k, t] of Object.entries(template)) {
    if (!Object.hasOwn(raw, k)) {
      if (partial) continue;
      fail(`${what} lacks the field '${k}'`);
    }
    if (typeof raw[k] !== typeof t) {
      fail(`${what} field '${k}' must be a ${typeof t}, got ${show(raw[k])}`);
    }
  }
}

/** The stored model config: GPTConfig's fields, each of its type, valid together. */
export function metaConfig(raw: unknown): GPTConfig {
  if (raw === null) fail("metadata 'config' is missing");
  checkFields("stored config", raw, { ...DEFAULT_CONFIG }, false, { activation: "gelu" });
  try {
    return validateConfig({ ...(raw as unknown as GPTConfig) });
  } catch (e) {
    if (e instanceof ConfigError) fail(`stored ${e.message}`);
    throw e;
  }
}

/**
 * The stored training settings (null when absent): TrainConfig's fields (a missing one takes
 * its default, as `train` does), valid together.
 */
export function metaTrainConfig(raw: unknown): TrainConfig | null {
  if (raw === null) return null;
  checkFields("metadata 'train_config'", raw, { ...DEFAULT_TRAIN }, true);
  try {
    return validateTrainConfig({ ...DEFAULT_TRAIN, ...(raw as Partial<TrainConfig>) });
  } catch (e) {
    if (e instanceof ConfigError) fail(`stored ${e.message}`);
    throw e;
  }
}

/** The stored random streams (null when absent): each `{ seed, offset }`, non-negative integers. */
export function metaRng(raw: unknown): Record<string, RngState> | null {
  if (raw === null) return null;
  if (!isObject(raw)) fail(`metadata 'rng' is not a JSON object: ${show(raw)}`);
  const out: Record<string, RngState> = {};
  for (const [name, s] of Object.entries(raw)) {
    if (name === "__proto__") fail("metadata 'rng' names a stream '__proto__'");
    checkFields(`metadata 'rng' stream '${name}'`, s, { seed: 0, offset: 0 });
    for (const [k, v] of Object.entries(s as Record<string, number>)) {
      if (!Number.isSafeInteger(v) || v < 0) {
        fail(`metadata 'rng' stream '${name}' ${k} must be a non-negative integer, got ${v}`);
      }
    }
    out[name] = s as RngState;
  }
  return out;
}

/** The stored optimizer scalars (null when absent), each in its range. */
export function metaOptimizer(raw: unknown, hasMoments: boolean): OptimizerScalars | null {
  if (raw === null) {
    if (hasMoments) fail("the file holds optimizer moments but no metadata 'optimizer'");
    return null;
  }
  checkFields("metadata 'optimizer'", raw, { step: 0, lr: 0, weightDecay: 0, betas: [], eps: 0 });
  const o = raw as unknown as OptimizerScalars;
  const bad = (k: string, want: string) =>
    fail(`metadata 'optimizer' ${k} must be ${want}, got ${show((o as never)[k])}`);
  if (!Number.isSafeInteger(o.step) || o.step < (hasMoments ? 1 : 0)) {
    bad("step", hasMoments ? "an integer >= 1 (the file holds moments)" : "an integer >= 0");
  }
  if (!(o.lr >= 0 && Number.isFinite(o.lr))) bad("lr", "a finite number >= 0");
  if (!(o.weightDecay >= 0 && Number.isFinite(o.weightDecay))) {
    bad("weightDecay", "a finite number >= 0");
  }
  if (!(o.eps > 0 && Number.isFinite(o.eps))) bad("eps", "a finite number > 0");
  const betas = o.betas as unknown[];
  if (betas.length !== 2 || !betas.every((b) => typeof b === "number" && b >= 0 && b < 1)) {
    bad("betas", "two numbers in [0, 1)");
  }
  return o;
}

/** The names GPT ties (alias -> primary); BitGPT has its own lm_head. */
export function tiedOf(kind: ModelKind): Record<string, string> {
  // Ties do not depend on the sizes: the smallest model of the kind, on the meta backend.
  const tiny = makeConfig({ vocabSize: 2, blockSize: 2, nLayer: 1, nHead: 1, nEmbd: 2 });
  return createModel(kind, tiny, { backend: meta }).tiedNames();
}

/** The stored `tied` map, when present, must be the one the model kind has. */
export function checkTied(raw: unknown, kind: ModelKind): void {
  if (raw === null) return;
  const want = tiedOf(kind);
  if (JSON.stringify(raw) !== JSON.stringify(want)) {
    fail(`metadata 'tied' is ${show(raw)}, but a ${kind} ties ${show(want)}`);
  }
}

/**
 * Compare the tensors with what a `kind` model of `config` holds, before anything is built:
 * every parameter present with its shape, nothing else, optimizer moments (`prefix`ed) only for
 * parameters and of their shape. A tied alias stored beside its primary must equal it.
 */
export function checkTensors(
  kind: ModelKind,
  config: GPTConfig,
  weights: Record<string, NamedArray>,
  moments: Record<string, NamedArray>,
): void {
  const count = Object.keys(weights).length;
  // Each block has at least one tensor: bound the config before listing its parameters.
  if (config.nLayer > count) {
    fail(`the config has ${config.nLayer} layers but the file holds only ${count} weights`);
  }
  const specs = parameterSpecs(kind, config);
  const want = new Map(specs.map((s) => [s.name, s.shape]));
  const tied = tiedOf(kind);
  const missing: string[] = [];
  const badShape: string[] = [];
  const fmt = (s: readonly number[]) => `[${s.join(", ")}]`;
  const check = (key: string, got: readonly number[], shape: readonly number[]) => {
    if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
      badShape.push(`${key}: given ${fmt(got)}, model has ${fmt(shape)}`);
    }
  };
  for (const [name, shape] of want) {
    const alias = Object.keys(tied).find((a) => tied[a] === name);
    const key = Object.hasOwn(weights, name)
      ? name
      : alias && Object.hasOwn(weights, alias)
      ? alias
      : null;
    if (key === null) missing.push(name);
    else check(key, weights[key].shape, shape);
  }
  const unexpected = Object.keys(weights).filter((k) => !want.has(k) && !Object.hasOwn(tied, k));
  for (const [key, t] of Object.entries(moments)) {
    const m = /^(.*)\.exp_avg(_sq)?$/.exec(key);
    const shape = m ? want.get(m[1]) : undefined;
    if (!m || !shape) unexpected.push(`optimizer.${key}`);
    else check(`optimizer.${key}`, t.shape, shape);
    if (m && shape && !Object.hasOwn(moments, `${m[1]}.exp_avg${m[2] ? "" : "_sq"}`)) {
      missing.push(`optimizer.${m[1]}.exp_avg${m[2] ? "" : "_sq"}`);
    }
  }
  const problems: string[] = [];
  if (missing.length) problems.push(`missing ${listNames(missing)}`);
  if (unexpected.length) problems.push(`unexpected ${listNames(unexpected)}`);
  if (badShape.length) problems.push(`shape mismatch ${listNames(badShape, 4)}`);
  if (problems.length) {
    fail(`the tensors do not fit a ${kind} of this config: ${problems.join("; ")}`);
  }
  for (const [alias, primary] of Object.entries(tied)) {
    if (Object.hasOwn(weights, alias) && Object.hasOwn(weights, primary)) {
      const [a, p] = [weights[alias].data, weights[primary].data];
      if (a.some((x, i) => !Object.is(x, p[i]))) {
        fail(
          `${alias} differs from ${primary}, which a ${kind} ties it to: the file holds two ` +
            `matrices where the model has one; drop ${alias} or use a model with its own head`,
        );
      }
    }
  }
  checkRope(config, weights);
}

/** A RoPE model's tables are built from blockSize alone: bound it by what the file holds. */
function checkRope(config: GPTConfig, weights: Record<string, NamedArray>): void {
  if (config.pos !== "rope") return;
  const held = Object.values(weights).reduce((n, t) => n + t.data.length, 0);
  const table = config.blockSize * (config.nEmbd / config.nHead);
  if (table > Math.max(held, MAX_FREE_ROPE_ELEMENTS)) {
    fail(
      `blockSize ${config.blockSize} asks for rotary tables of ${table} elements, more than ` +
        `the ${held} weights the file holds`,
    );
  }
}

/**
 * Refuse non-finite values (NaN, ±Infinity) in weights and moments, and negative second
 * moments, naming the first tensor and index; `allowNonFinite` lets weights through.
 */
export function checkFinite(
  weights: Record<string, NamedArray>,
  moments: Record<string, NamedArray>,
  allowNonFinite: boolean,
): void {
  const scan = (name: string, t: NamedArray, moment: boolean) => {
    const d = t.data;
    if (!(d instanceof Float32Array || d instanceof Float64Array)) return;
    const secondMoment = name.endsWith(".exp_avg_sq");
    for (let i = 0; i < d.length; i++) {
      const x = d[i];
      if (x - x !== 0) { // NaN or ±Infinity, in one comparison
        const anyway = moment
          ? ""
          : " (allowNonFinite, generate --allow-non-finite, loads it anyway)";
        fail(
          `tensor ${name} holds ${x} at index ${i}: the file is damaged or the run diverged; ` +
            `use an earlier checkpoint${anyway}`,
        );
      }
      if (secondMoment && x < 0) {
        fail(`tensor ${name} holds ${x} at index ${i}: a second moment cannot be negative`);
      }
    }
  };
  if (!allowNonFinite) { for (const [k, t] of Object.entries(weights)) scan(k, t, false); }
  for (const [k, t] of Object.entries(moments)) scan(`optimizer.${k}`, t, true);
}
