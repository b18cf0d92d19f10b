// From a dataset to training batches, as nanoGPT's prepare.py: encode the text (through the
// token cache) and split it 90/10 into train and val. Sampling random windows from the splits
// lives in sampler.ts (no file access), re-exported here. A `.jsonl` dataset is instruction data
// (instructions.ts: records encoded with the chat template, split 90/10 by record, packed rows).

import { readDatasetText, resolveDataset, type ResolveOptions } from "./datasets.ts";
import { DataError, TokenizerError } from "./errors.ts";
import { splitTokens, type TokenSplits } from "./sampler.ts";
import { ChatTemplate } from "./chat_template.ts";
import { instructionBatches, type InstructionSplits } from "./instruction_batches.ts";
import {
  checkCharsKnown,
  encodeRecords,
  instructionText,
  isInstructionFile,
  parseInstructions,
  splitRecords,
} from "./instructions.ts";
import { type CacheOptions, encodeWithCache } from "./token_cache.ts";
import {
  makeTokenizer,
  type Tokenizer,
  tokenizerFromJSON,
  type TokenizerKind,
} from "./tokenizer.ts";

export { BatchSampler, checkVocabFits, splitTokens } from "./sampler.ts";
export type { Batch } from "./sampler.ts";

/** What `loadDataset` needs; only `dataset` and `tokenizer` are required. */
export interface LoadDatasetOptions {
  /** "shakespeare", "astro", the path of a UTF-8 text file, or of a `.jsonl` instruction file. */
  dataset: string;
  /** Which tokenizer to use. */
  tokenizer: TokenizerKind;
  /** A char vocabulary to reuse (`toJSON()` output, e.g. from a checkpoint) instead of building one. */
  charVocab?: unknown;
  /** Fraction of tokens (of records for instruction data) for training; default 0.9. */
  trainFraction?: number;
  /** Where to find the dataset (see `resolveDataset`). */
  resolve?: ResolveOptions;
  /** Token cache settings (see `encodeWithCache`). */
  cache?: CacheOptions;
}

/** A dataset ready for `BatchSampler`. */
export interface LoadedDataset extends TokenSplits {
  /** The tokenizer that produced the ids (a char one built from the text unless given). */
  tokenizer: Tokenizer;
  /** The text file read. */
  textPath: string;
  /** True when the ids came from a token cache. */
  fromCache: boolean;
}

/** Instruction records ready for the training loop (a `.jsonl` dataset). */
export interface LoadedInstructions extends InstructionSplits {
  /** The tokenizer that encoded the records (a char one built from them and the template). */
  tokenizer: Tokenizer;
  /** The JSONL file read. */
  textPath: string;
  /** Instruction data is not cached. */
  fromCache: false;
}

/** The tokenizer of a dataset: the given vocabulary, else a fresh one (char: from `text`). */
function datasetTokenizer(opts: LoadDatasetOptions, text: () => string): Tokenizer {
  const tokenizer = opts.charVocab === undefined
    ? makeTokenizer(opts.tokenizer, opts.tokenizer === "char" ? text() : "")
    : tokenizerFromJSON(opts.charVocab);
  if (tokenizer.kind !== opts.tokenizer) {
    throw new DataError(
      `loadDataset: a ${tokenizer.kind} vocabulary was given for the ${opts.tokenizer} tokenizer`,
    );
  }
  return tokenizer;
}

/**
 * Read, check, encode and split a JSONL instruction file (data/instructions.ts); a char
 * vocabulary is built from its text and the chat template's unless one is given.
 */
async function loadInstructions(opts: LoadDatasetOptions): Promise<LoadedInstructions> {
  const textPath = await resolveDataset(opts.dataset, opts.resolve);
  const records = parseInstructions(await readDatasetText(textPath), textPath);
  const tokenizer = datasetTokenizer(opts, () => instructionText(records));
  checkCharsKnown(tokenizer, records, textPath);
  const template = new ChatTemplate(tokenizer);
  const split = splitRecords(
    encodeRecords(records, template, textPath),
    opts.trainFraction ?? 0.9,
    textPath,
  );
  return {
    ...instructionBatches(split, template, textPath),
    tokenizer,
    textPath,
    fromCache: false,
  };
}

/**
 * Resolve, read, tokenize (cached) and split a dataset; a `.jsonl` file is instruction data
 * (checked, encoded with the chat template and split by record: `LoadedInstructions`).
 */
export async function loadDataset(
  opts: LoadDatasetOptions,
): Promise<LoadedDataset | LoadedInstructions> {
  if (isInstructionFile(opts.dataset)) return await loadInstructions(opts);
  const textPath = await resolveDataset(opts.dataset, opts.resolve);
  const text = await readDatasetText(textPath);
  const tokenizer = datasetTokenizer(opts, () => text);
  let encoded;
  try {
    encoded = await encodeWithCache(textPath, text, tokenizer, opts.cache);
  } catch (e) {
    if (e instanceof TokenizerError) throw new TokenizerError(`${textPath}: ${e.message}`);
    throw e;
  }
  const { tokens, fromCache } = encoded;
  return { tokenizer, ...splitTokens(tokens, opts.trainFraction ?? 0.9), textPath, fromCache };
}
