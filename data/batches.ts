// From a dataset to training batches, as nanoGPT's prepare.py: encode the text (through the
// token cache) and split it 90/10 into train and val. Sampling random windows from the splits
// lives in sampler.ts (no file access), re-exported here.

import { readDatasetText, resolveDataset, type ResolveOptions } from "./datasets.ts";
import { DataError, TokenizerError } from "./errors.ts";
import { splitTokens, type TokenSplits } from "./sampler.ts";
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
  /** "shakespeare", "astro" or the path of a UTF-8 text file. */
  dataset: string;
  /** Which tokenizer to use. */
  tokenizer: TokenizerKind;
  /** A char vocabulary to reuse (`toJSON()` output, e.g. from a checkpoint) instead of building one. */
  charVocab?: unknown;
  /** Fraction of tokens for training; default 0.9. */
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

/** Resolve, read, tokenize (cached) and split a dataset. */
export async function loadDataset(opts: LoadDatasetOptions): Promise<LoadedDataset> {
  const textPath = await resolveDataset(opts.dataset, opts.resolve);
  const text = await readDatasetText(textPath);
  const tokenizer = opts.charVocab === undefined
    ? makeTokenizer(opts.tokenizer, text)
    : tokenizerFromJSON(opts.charVocab);
  if (tokenizer.kind !== opts.tokenizer) {
    throw new DataError(
      `loadDataset: a ${tokenizer.kind} vocabulary was given for the ${opts.tokenizer} tokenizer`,
    );
  }
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
