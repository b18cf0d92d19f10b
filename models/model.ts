// Building a model by kind: the one switch over GPT and BitGPT the CLI and checkpoints use.

import { BitGPT } from "./bitgpt.ts";
import type { GPTConfig, ModelKind } from "./config.ts";
import { GPT } from "./gpt.ts";
import type { LanguageModel, ModelOptions } from "./lm.ts";

/** A new, freshly initialised model of `kind`. */
export function createModel(
  kind: ModelKind,
  config: GPTConfig,
  o: ModelOptions = {},
): LanguageModel {
  switch (kind) {
    case "gpt":
      return new GPT(config, o);
    case "bitgpt":
      return new BitGPT(config, o);
    default:
      return kind satisfies never;
  }
}
