// metrics.jsonl: one JSON object per line, appended as training goes: `train` records every
// log interval (batch loss, lr, step time) and `eval` records at every evaluation. On resume the
// history up to the resumed iteration is kept, so loss.svg shows the whole run.

import type { LossCurves } from "./plot.ts";
import { writeFileAtomic } from "./files.ts";

/** A training-step record. */
export interface TrainRecord {
  type: "train";
  /** Iterations completed. */
  iter: number;
  /** The batch's loss. */
  loss: number;
  /** Learning rate used. */
  lr: number;
  /** Step wall time, milliseconds. */
  ms: number;
  /** Tokens per second of the step. */
  tokensPerSec: number;
}

/** An evaluation record: losses averaged over `--eval-iters` batches per split. */
export interface EvalRecord {
  type: "eval";
  /** Iterations completed when evaluated. */
  iter: number;
  /** Estimated training loss. */
  train: number;
  /** Estimated validation loss. */
  val: number;
  /** Learning rate at this iteration. */
  lr: number;
}

/** One line of metrics.jsonl. */
export type MetricRecord = TrainRecord | EvalRecord;

function isRecord(x: unknown): x is MetricRecord {
  const r = x as Partial<MetricRecord> | null;
  return typeof r === "object" && r !== null && typeof r.iter === "number" &&
    (r.type === "train" || r.type === "eval");
}

/** Parse metrics.jsonl text, skipping lines that are not records (e.g. one cut by a crash). */
export function parseMetrics(text: string): MetricRecord[] {
  const out: MetricRecord[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    try {
      const r = JSON.parse(line);
      if (isRecord(r)) out.push(r);
    } catch {
      // a partial last line: ignore it
    }
  }
  return out;
}

/** The curves for loss.svg from a record history. */
export function curvesOf(records: readonly MetricRecord[]): LossCurves {
  const curves: { batch: [number, number][]; train: [number, number][]; val: [number, number][] } =
    { batch: [], train: [], val: [] };
  for (const r of records) {
    if (r.type === "train") curves.batch.push([r.iter, r.loss]);
    else {
      curves.train.push([r.iter, r.train]);
      curves.val.push([r.iter, r.val]);
    }
  }
  return curves;
}

/** The metrics file of a run, with the history kept in memory for plotting. */
export class MetricsLog {
  readonly records: MetricRecord[];

  private constructor(readonly path: string, records: MetricRecord[]) {
    this.records = records;
  }

  /**
   * Open `path`: a fresh run truncates it; a resumed run (`resumeIter` given) keeps the records
   * of the steps before that iteration, and its evaluation's when `evalDone` (the checkpoint was
   * taken after it), and drops the later ones (they belong to steps being redone).
   */
  static async open(path: string, resumeIter?: number, evalDone = true): Promise<MetricsLog> {
    let records: MetricRecord[] = [];
    if (resumeIter !== undefined) {
      const keep = (r: MetricRecord) =>
        r.iter < resumeIter || (r.type === "eval" && r.iter === resumeIter && evalDone);
      try {
        records = parseMetrics(await Deno.readTextFile(path)).filter(keep);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    }
    await writeFileAtomic(path, records.map((r) => JSON.stringify(r) + "\n").join(""));
    return new MetricsLog(path, records);
  }

  /** Append one record to the file and the history. */
  async append(r: MetricRecord): Promise<void> {
    this.records.push(r);
    await Deno.writeTextFile(this.path, JSON.stringify(r) + "\n", { append: true });
  }
}
