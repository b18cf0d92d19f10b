// The data of a `train` run and the model it starts from: the dataset encoded with the vocabulary
// of the checkpoint resumed or started from (--init-from), the lines describing it, the tokenizer
// record its checkpoints carry (with the chat template for instruction data), and the
// --init-from model.

import type { Backend } from "../engine/backend.ts";
import { loadDataset, type LoadedDataset, type LoadedInstructions } from "../data/batches.ts";
import { chatTemplateOf, withChatTemplate } from "../data/chat_template.ts";
import { DataError } from "../data/errors.ts";
import type { TruncatedRecord } from "../data/instruction_batches.ts";
import { Gpt2Tokenizer, type Tokenizer } from "../data/tokenizer.ts";
import type { GPTConfig } from "../models/config.ts";
import { createModel, type LanguageModel } from "../models/model.ts";
import { checkpointTokenizer, type ReadCheckpoint } from "./checkpoints.ts";
import type { TrainConfig } from "./flags.ts";

/** A dataset of either kind: text windows or instruction records. */
export type RunData = LoadedDataset | LoadedInstructions;

/** One line describing the loaded dataset. */
export function describeData(d: RunData): string {
  const n = (x: number) => x.toLocaleString("en");
  const tok = `${d.tokenizer.kind} tokenizer (${d.tokenizer.vocabSize} tokens)`;
  if ("records" in d) {
    const { train, val } = d.records;
    const replies = [...train, ...val].reduce((s, r) => s + r.mask.reduce((a, m) => a + m, 0), 0);
    const share = (100 * replies / (d.train.length + d.val.length)).toFixed(0);
    return `data: ${d.textPath}, ${tok}, chat template ${d.template.name}, ` +
      `${n(train.length)} train / ${n(val.length)} val records (${n(d.train.length)} / ` +
      `${n(d.val.length)} tokens, ${share}% of them replies, the only tokens trained on)`;
  }
  return `data: ${d.textPath}, ${tok}, ` +
    `${n(d.train.length)} train / ${n(d.val.length)} val tokens${d.fromCache ? " (cached)" : ""}`;
}

/** The note for instruction records cut at the front to fit the block. */
export function truncationNote(cut: TruncatedRecord[], blockSize: number): string {
  const lines = cut.slice(0, 10).map((t) => t.line).join(", ") + (cut.length > 10 ? ", …" : "");
  return `note: ${cut.length} record(s) longer than block_size + 1 = ${blockSize + 1} tokens ` +
    `keep their last ${blockSize + 1}, their replies whole: the start of the prompt is dropped ` +
    `(line${cut.length > 1 ? "s" : ""} ${lines})`;
}

/**
 * The tokenizer of the --init-from checkpoint; a file without one (nanoGPT, Hugging Face GPT-2)
 * is GPT-2's, as many ids as the model has rows.
 */
function initTokenizer(ckpt: ReadCheckpoint, path: string): Tokenizer {
  const tok = checkpointTokenizer(ckpt, path);
  return ckpt.tokenizer === null ? new Gpt2Tokenizer(ckpt.config.vocabSize) : tok;
}

/**
 * The run's data: the dataset, encoded with the vocabulary of the checkpoint continued or
 * started from (a char vocabulary must hold every character the data needs).
 */
export async function loadRunData(
  c: TrainConfig,
  resume: ReadCheckpoint | undefined,
  init: { path: string; ckpt: ReadCheckpoint } | undefined,
): Promise<RunData> {
  const vocab = resume?.tokenizer
    ? JSON.parse(resume.tokenizer)
    : init
    ? initTokenizer(init.ckpt, init.path).toJSON()
    : undefined;
  try {
    return await loadDataset({ dataset: c.dataset, tokenizer: c.tokenizer, charVocab: vocab });
  } catch (e) {
    if (!init || !(e instanceof DataError) || !/vocabulary/.test(e.message)) throw e;
    throw new DataError(
      `--init-from '${init.path}': ${e.message}; a char model is tuned only on text made of ` +
        `its own characters (a model trained on a .jsonl dataset has the template's)`,
    );
  }
}

/**
 * The tokenizer as the checkpoints record it: with the chat template for instruction data, or
 * when the model continued or started from was tuned with it.
 */
export function tokenizerRecord(data: RunData, base: ReadCheckpoint | undefined): string {
  const json = data.tokenizer.toJSON();
  const tuned = "records" in data ||
    (base?.tokenizer ? chatTemplateOf(JSON.parse(base.tokenizer)) !== null : false);
  return JSON.stringify(tuned ? withChatTemplate(json) : json);
}

/** The --init-from model, rebuilt when --dropout differs from the checkpoint's. */
export function initModel(
  ckpt: ReadCheckpoint,
  config: GPTConfig,
  backend: Backend,
): LanguageModel {
  if (config.dropout === ckpt.config.dropout) return ckpt.model;
  const model = createModel(ckpt.kind, config, { backend, skipInit: true });
  model.loadStateDict(ckpt.model.stateDict());
  ckpt.model.dispose();
  return model;
}
