// The model registry: every model by the name checkpoints, presets and `--model` use. A new model
// is one file (its class, usually GPT with other parts, as bitgpt.ts) and one line here.

import { ConfigError } from "../engine/errors.ts";
import { BitGPT } from "./bitgpt.ts";
import type { GPTConfig } from "./config.ts";
import { GPT, type ModelOptions } from "./gpt.ts";
import { checkModelFits } from "./params.ts";
import { getBackend } from "../engine/device.ts";

/** Every model class by name. */
export const MODELS = {
  gpt: GPT,
  bitgpt: BitGPT,
} as const satisfies Record<string, new (c: GPTConfig, o?: ModelOptions) => GPT>;

/** A model's name: nanoGPT's GPT or the original project's BitGPT (BitNet b1.58). */
export type ModelKind = keyof typeof MODELS;

/** The model names, for flags and messages. */
export const MODEL_KINDS = Object.keys(MODELS) as ModelKind[];

/** Any model of the registry (they are all GPTs with their own parts). */
export type LanguageModel = GPT;
/** @deprecated Every model is a GPT with its own parts: use `GPT` (e.g. `instanceof GPT`). */
export const LanguageModel: typeof GPT = GPT;

/**
 * A new, freshly initialised model of `kind`. Each parameter is first checked against the
 * largest tensor the backend holds (models/params.ts), so a model that cannot fit is refused
 * naming the parameter before anything is allocated.
 */
export function createModel(kind: ModelKind, config: GPTConfig, o: ModelOptions = {}): GPT {
  const backend = o.backend ?? getBackend();
  if (!backend.traits.virtual) checkModelFits(kind, config, backend, o.dtype);
  return new MODELS[kind](config, o);
}

/** The model kind from a string, or ConfigError. */
export function parseModelKind(s: string): ModelKind {
  if (Object.hasOwn(MODELS, s)) return s as ModelKind;
  throw new ConfigError(`model must be one of ${MODEL_KINDS.join(", ")}, got '${s}'`);
}
