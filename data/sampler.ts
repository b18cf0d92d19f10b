// Batches from token ids, as nanoGPT's get_batch: split the ids 90/10 into train and val and draw
// random windows of blockSize + 1 tokens from the engine's seeded generator: x is a window's first
// T ids, y the next T (the targets, x shifted by one). No file access (models/train.ts and the
// browser entry web.ts import this); data/batches.ts adds loading a dataset from disk.
// `splitTokens` and `tokenBatches` hand the training loop (models/train.ts) its batch sources.

import type { Generator } from "../engine/random.ts";
import { DataError } from "./errors.ts";
import type { Tokenizer } from "./tokenizer.ts";

/**
 * Token ids split for training and validation, and the training loop's batch sources over them
 * (models/train.ts `TrainData`): random windows from the generators the loop owns, so that its
 * checkpoints save and restore where each stream is.
 */
export interface TokenSplits {
  /** Training ids. */
  train: Int32Array;
  /** Validation ids. */
  val: Int32Array;
  /**
   * Samplers of B windows of T + 1 ids per batch, one per role of the loop (its steps,
   * validation, evaluation on training data), drawing from `gens`.
   */
  sources(
    gens: Record<"train" | "val" | "evalTrain", Generator>,
    batchSize: number,
    blockSize: number,
  ): Record<"train" | "val" | "evalTrain", BatchSampler>;
}

/** The batch sources of a train/val split of token ids (see TokenSplits). */
export function tokenBatches(split: { train: Int32Array; val: Int32Array }): TokenSplits {
  const { train, val } = split;
  return {
    train,
    val,
    sources: (gens, B, T) => ({
      train: new BatchSampler(train, T, B, gens.train, "train"),
      evalTrain: new BatchSampler(train, T, B, gens.evalTrain, "train"),
      val: new BatchSampler(val, T, B, gens.val, "val"),
    }),
  };
}

/**
 * The first `trainFraction` of the ids for training, the rest for validation (views, no copy),
 * with the training loop's batch sources over them.
 */
export function splitTokens(tokens: Int32Array, trainFraction = 0.9): TokenSplits {
  if (!(trainFraction > 0 && trainFraction <= 1)) {
    throw new DataError(`splitTokens: trainFraction must be in (0, 1], got ${trainFraction}`);
  }
  const n = Math.floor(tokens.length * trainFraction);
  return tokenBatches({ train: tokens.subarray(0, n), val: tokens.subarray(n) });
}

/** One batch: `x` the inputs and `y` the targets, both row-major [B, T]. */
export interface Batch {
  /** Input ids, [B, T]. */
  x: Int32Array;
  /** Target ids (x shifted by one), [B, T]. */
  y: Int32Array;
}

const TWO_POW_24 = 16777216;

/** Random windows of a token split, reproducible from the generator's seed and offset. */
export class BatchSampler {
  /**
   * Windows of `blockSize` (T) + 1 ids, `batchSize` (B) per batch, starts drawn from `gen`.
   * `split` names the tokens in error messages ("train", "val").
   */
  constructor(
    readonly tokens: Int32Array,
    readonly blockSize: number,
    readonly batchSize: number,
    readonly gen: Generator,
    readonly split = "train",
  ) {
    for (const [name, v] of [["blockSize", blockSize], ["batchSize", batchSize]] as const) {
      if (!Number.isInteger(v) || v < 1) {
        throw new DataError(`BatchSampler: ${name} must be a positive integer, got ${v}`);
      }
    }
    if (tokens.length < blockSize + 1) {
      throw new DataError(
        `the ${split} split has ${tokens.length} tokens, fewer than block_size + 1 = ` +
          `${blockSize + 1}; use a smaller --block-size or a larger dataset`,
      );
    }
  }

  /** Starts of the next B windows, uniform over [0, N - T). */
  #starts(): Float64Array {
    const B = this.batchSize;
    const high = this.tokens.length - this.blockSize;
    if (high <= TWO_POW_24) return Float64Array.from(this.gen.integers(B, high));
    // Past 2^24 positions one 24-bit uniform cannot reach every start: use two per draw.
    const u = this.gen.uniform(2 * B);
    return Float64Array.from(
      { length: B },
      (_, b) => Math.min(high - 1, Math.floor((u[2 * b] + u[2 * b + 1] / TWO_POW_24) * high)),
    );
  }

  /** The next batch: B random windows, x = tokens[i, i+T) and y = tokens[i+1, i+T+1). */
  next(): Batch {
    const [B, T] = [this.batchSize, this.blockSize];
    const x = new Int32Array(B * T);
    const y = new Int32Array(B * T);
    const starts = this.#starts();
    for (let b = 0; b < B; b++) {
      const i = starts[b];
      x.set(this.tokens.subarray(i, i + T), b * T); // (T)
      y.set(this.tokens.subarray(i + 1, i + T + 1), b * T); // (T)
    }
    return { x, y };
  }
}

/** Throw unless every id the tokenizer produces fits the model's embedding of `modelVocabSize`. */
export function checkVocabFits(tokenizer: Tokenizer, modelVocabSize: number): void {
  if (tokenizer.vocabSize > modelVocabSize) {
    const what = tokenizer.kind === "char"
      ? `the character vocabulary has ${tokenizer.vocabSize} characters`
      : `the gpt2 tokenizer needs ${tokenizer.vocabSize} ids`;
    throw new DataError(
      `${what} but the model's vocab_size is ${modelVocabSize}; ` +
        `set --vocab-size to at least ${tokenizer.vocabSize} or use a matching dataset`,
    );
  }
}
