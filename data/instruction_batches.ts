// Batches of instruction records for the training loop (the same `sources(gens, B, T)` shape as
// sampler.ts's tokenBatches). Each row of T + 1 ids is packed from whole records drawn with the
// loop's generator: records are drawn until one no longer fits (it is dropped, the row is done),
// the rest is padding. Targets are the next id where that id is part of a reply or its end
// marker and IGNORE_INDEX elsewhere (prompts, template headers, padding), so the loss, a mean
// over non-ignored targets, is over replies only. A batch is a function of the generator's
// position alone: the loop's checkpoints restore it exactly. A record longer than T + 1 keeps its
// last T + 1 ids when the final reply and its header fit (the start of its prompt is dropped, and
// `fitRecords` reports it); otherwise it is refused. No reply is ever cut.

import type { Generator } from "../engine/random.ts";
import type { ChatTemplate } from "./chat_template.ts";
import { DataError } from "./errors.ts";
import type { EncodedRecord } from "./instructions.ts";
import type { Batch } from "./sampler.ts";

/** The target of positions that carry no loss (the models' cross-entropy skips it). */
export const IGNORE_INDEX = -1;

/** A record whose prompt was cut at the front to fit a row. */
export interface TruncatedRecord {
  /** Its line in the file. */
  line: number;
  /** Ids dropped from the front. */
  dropped: number;
}

/**
 * Records fitted to rows of `blockSize` + 1 ids: longer ones keep their last blockSize + 1 ids
 * when the final reply and its header fit, with a mask that leaves no partial earlier reply;
 * otherwise a DataError names the record's line and the sizes.
 */
export function fitRecords(
  records: readonly EncodedRecord[],
  blockSize: number,
  headerLength: number,
  file: string,
): { records: EncodedRecord[]; truncated: TruncatedRecord[] } {
  const room = blockSize + 1;
  const truncated: TruncatedRecord[] = [];
  const out = records.map((r) => {
    const n = r.ids.length;
    if (n <= room) return r;
    let replyStart = n - 1; // the final reply: the last run of masked ids
    while (replyStart > 0 && r.mask[replyStart - 1] === 1) replyStart--;
    const keepFrom = replyStart - headerLength;
    const cut = n - room;
    if (cut > keepFrom) {
      throw new DataError(
        `'${file}' line ${r.line}: the reply and its end marker are ${n - replyStart} tokens, ` +
          `which with the ${headerLength}-token assistant header do not fit block_size + 1 = ` +
          `${room}; shorten the reply or use a larger --block-size`,
      );
    }
    const ids = r.ids.slice(cut);
    const mask = r.mask.slice(cut);
    // Cut inside an earlier reply: what is left of it becomes context (no partial reply is
    // trained on).
    for (let i = 0; i < mask.length && mask[i] === 1; i++) mask[i] = 0;
    truncated.push({ line: r.line, dropped: cut });
    return { ids, mask, line: r.line };
  });
  return { records: out, truncated };
}

const TWO_POW_24 = 16777216;

/** Rows packed from whole records, reproducible from the generator's seed and offset. */
export class InstructionSampler {
  /**
   * Rows of `blockSize` (T) + 1 ids, `batchSize` (B) per batch, records drawn from `gen`;
   * `records` must already fit a row (`fitRecords`). `split` names them in errors.
   */
  constructor(
    readonly records: readonly EncodedRecord[],
    readonly blockSize: number,
    readonly batchSize: number,
    readonly gen: Generator,
    readonly padId: number,
    readonly split = "train",
  ) {
    for (const [name, v] of [["blockSize", blockSize], ["batchSize", batchSize]] as const) {
      if (!Number.isInteger(v) || v < 1) {
        throw new DataError(`InstructionSampler: ${name} must be a positive integer, got ${v}`);
      }
    }
    if (records.length === 0 || records.length >= TWO_POW_24) {
      throw new DataError(
        `the ${split} split has ${records.length} records; it needs between 1 and ${TWO_POW_24}`,
      );
    }
    const long = records.find((r) => r.ids.length > blockSize + 1);
    if (long) {
      throw new DataError(
        `InstructionSampler: the record of line ${long.line} has ${long.ids.length} ids, more ` +
          `than block_size + 1 = ${blockSize + 1}; fit the records first (fitRecords)`,
      );
    }
  }

  /** One row of T + 1 ids and its loss mask, packed from records drawn in turn. */
  #row(ids: Int32Array, mask: Uint8Array): void {
    const room = this.blockSize + 1;
    ids.fill(this.padId);
    mask.fill(0);
    let used = 0;
    while (used < room) {
      const r = this.records[this.gen.integers(1, this.records.length)[0]];
      if (used + r.ids.length > room) break; // never cut a record: the row ends here
      ids.set(r.ids, used);
      mask.set(r.mask, used);
      used += r.ids.length;
    }
  }

  /** The next batch: x the rows' first T ids, y the next T, IGNORE_INDEX where not a reply. */
  next(): Batch {
    const [B, T] = [this.batchSize, this.blockSize];
    const x = new Int32Array(B * T);
    const y = new Int32Array(B * T);
    const ids = new Int32Array(T + 1);
    const mask = new Uint8Array(T + 1);
    for (let b = 0; b < B; b++) {
      this.#row(ids, mask);
      x.set(ids.subarray(0, T), b * T); // (T)
      for (let t = 0; t < T; t++) y[b * T + t] = mask[t + 1] ? ids[t + 1] : IGNORE_INDEX;
    }
    return { x, y };
  }
}

/** Training and validation records, and the training loop's batch sources over them. */
export interface InstructionSplits {
  /** Every training record's ids, one after another (for counting). */
  train: Int32Array;
  /** Every validation record's ids, one after another. */
  val: Int32Array;
  /** The records of each split, as encoded (before fitting to a block size). */
  records: { train: EncodedRecord[]; val: EncodedRecord[] };
  /** The template the records were encoded with. */
  template: ChatTemplate;
  /** The records fitted to `blockSize` (see fitRecords): what was cut, or a DataError. */
  fit(blockSize: number): TruncatedRecord[];
  /** Packed-row samplers per role of the loop, drawing from `gens`. */
  sources(
    gens: Record<"train" | "val" | "evalTrain", Generator>,
    batchSize: number,
    blockSize: number,
  ): Record<"train" | "val" | "evalTrain", InstructionSampler>;
}

function concat(records: readonly EncodedRecord[]): Int32Array {
  const out = new Int32Array(records.reduce((n, r) => n + r.ids.length, 0));
  let at = 0;
  for (const r of records) {
    out.set(r.ids, at);
    at += r.ids.length;
  }
  return out;
}

/** The batch sources of encoded training and validation records (see InstructionSplits). */
export function instructionBatches(
  split: { train: EncodedRecord[]; val: EncodedRecord[] },
  template: ChatTemplate,
  file: string,
): InstructionSplits {
  const header = template.assistantHeader().length;
  const fitted = (T: number) => {
    const train = fitRecords(split.train, T, header, file);
    const val = fitRecords(split.val, T, header, file);
    return {
      train: train.records,
      val: val.records,
      truncated: [...train.truncated, ...val.truncated],
    };
  };
  return {
    train: concat(split.train),
    val: concat(split.val),
    records: split,
    template,
    fit: (T) => fitted(T).truncated.sort((a, b) => a.line - b.line),
    sources: (gens, B, T) => {
      const { train, val } = fitted(T);
      const pad = template.endId;
      return {
        train: new InstructionSampler(train, T, B, gens.train, pad, "train"),
        evalTrain: new InstructionSampler(train, T, B, gens.evalTrain, pad, "train"),
        val: new InstructionSampler(val, T, B, gens.val, pad, "val"),
      };
    },
  };
}
