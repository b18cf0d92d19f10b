// Autoregressive generation (nanoGPT's generate) without a GPU→CPU round trip per token: the
// prompt is run once into a KV cache, then each step feeds only the newest token; the next token
// is sampled on the device (kernels/sample.ts: temperature, top-k, top-p, the engine's seeded
// Threefry stream) and its id tensor goes straight into the next step's embedding. Tokens are
// read back in chunks (every `chunkTokens` tokens or `chunkMs` ms) for streaming. Once the
// context exceeds blockSize, each step recomputes the last blockSize tokens, as nanoGPT crops.
// Each step also sums its logits on the device, read back with the tokens: a non-finite sum
// (NaN or ±Infinity logits, from damaged weights or an overflow) stops generation with a
// GenerationError naming the step, instead of sampling an invalid id (-1, or 0 when greedy).

import { UserError } from "../engine/errors.ts";
import { noGrad } from "../engine/autograd.ts";
import { fromArray } from "../engine/creation.ts";
import { beginStep, endStep } from "../engine/profile.ts";
import { defaultGenerator, Generator } from "../engine/random.ts";
import { keep, tidy } from "../engine/scope.ts";
import { Tensor } from "../engine/tensor.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import { cat, narrow, reshape, sampleLogits, sum } from "../kernels/mod.ts";
import type { KVCache } from "../nn/attention.ts";
import type { LanguageModel } from "./model.ts";

/** Generation cannot go on: the model's logits at a step are not finite numbers. */
export class GenerationError extends UserError {
  /** Always "GenerationError". */
  override name = "GenerationError";
}

/** Options of generation. */
export interface GenerateOptions {
  /** Tokens to generate per row. */
  maxNewTokens: number;
  /** Softmax temperature; 0 is greedy (argmax). Default 1. */
  temperature?: number;
  /** Sample among the k most likely tokens only (0: all). Default 0. */
  topK?: number;
  /** Nucleus sampling mass (1: off). Default 1. */
  topP?: number;
  /** Seed of a fresh generator for the draws (default: `generator`, else the global one). */
  seed?: number;
  /** The random stream for the draws (ignored when `seed` is given). */
  generator?: Generator;
  /** Called with each chunk of new tokens, one array per row. */
  onToken?(chunk: number[][]): void | Promise<void>;
  /** Read tokens back every this many tokens (default 16). */
  chunkTokens?: number;
  /** …or when this many milliseconds passed since the last read (default 100). */
  chunkMs?: number;
  /** Use a KV cache (default true); false recomputes the whole window every token. */
  useCache?: boolean;
  /**
   * A cache already holding the first `cache.length` positions of `ids` (chat turns); it is
   * extended in place and afterwards holds every position fed to the model.
   */
  cache?: KVCache;
}

/** Prompt ids as a [B, T] i32 tensor on the model's backend. */
function promptTensor(
  model: LanguageModel,
  ids: Tensor | Int32Array | number[] | number[][],
): Tensor {
  const backend = model.parameters()[0].backend;
  if (ids instanceof Tensor) {
    if (ids.ndim !== 2 || ids.dtype !== "i32") {
      throw new ShapeError(
        `generate: ids must be i32 [B, T], got ${ids.dtype} ${fmtShape(ids.shape)}`,
      );
    }
    return ids;
  }
  const rows = Array.isArray(ids) && Array.isArray(ids[0])
    ? ids as number[][]
    : [Array.from(ids as ArrayLike<number>)];
  const T = rows[0].length;
  if (T === 0 || rows.some((r) => r.length !== T)) {
    throw new ShapeError(`generate: the prompt must be non-empty rows of equal length`);
  }
  return fromArray(Int32Array.from(rows.flat()), [rows.length, T], { dtype: "i32", backend });
}

/**
 * Generate `maxNewTokens` tokens after `ids` ([B, T] tensor, one row of ids, or rows), yielding
 * chunks of new tokens (one array per row) as they are read back from the device.
 */
export async function* generateStream(
  model: LanguageModel,
  ids: Tensor | Int32Array | number[] | number[][],
  o: GenerateOptions,
): AsyncGenerator<number[][]> {
  const { maxNewTokens, temperature = 1, topK = 0, topP = 1 } = o;
  if (!Number.isInteger(maxNewTokens) || maxNewTokens < 0) {
    throw new RangeError(
      `generate: maxNewTokens must be a non-negative integer, got ${maxNewTokens}`,
    );
  }
  const gen = o.seed !== undefined ? new Generator(o.seed) : o.generator ?? defaultGenerator();
  const { blockSize, vocabSize } = model.config;
  const chunkTokens = Math.max(1, o.chunkTokens ?? 16);
  const chunkMs = o.chunkMs ?? 100;
  const useCache = o.useCache ?? true;
  const wasTraining = model.training;
  model.eval();
  const prompt = promptTensor(model, ids);
  const B = prompt.shape[0];
  let ctx = keep(ids instanceof Tensor ? reshape(prompt, prompt.shape) : prompt); // (B, L) on device
  let ctxLen = ctx.shape[1];
  const cache = useCache ? (o.cache ?? model.newCache()) : null;
  if (cache && cache.length > Math.min(ctxLen, blockSize)) cache.reset(); // not a prefix: start over
  let pending: [Tensor, Tensor][] = []; // (token ids, logit sums), each (B, 1), per step
  let done = 0; // steps read back so far
  let lastRead = performance.now();
  const flush = async (): Promise<number[][]> => {
    const n = pending.length;
    const [ids, sums] = tidy(
      () => [cat(pending.map((p) => p[0]), 1), cat(pending.map((p) => p[1]), 1)],
    );
    const [data, check] = [await ids.data(), await sums.data()]; // (B, n) each: one readback
    ids.dispose();
    sums.dispose();
    for (const t of pending.flat()) t.dispose();
    pending = [];
    lastRead = performance.now();
    for (let j = 0; j < n; j++) {
      for (let b = 0; b < B; b++) {
        const id = data[b * n + j];
        if (Number.isFinite(check[b * n + j]) && id >= 0 && id < vocabSize) continue;
        throw new GenerationError(
          `generate: the logits of new token ${done + j + 1} (of ${maxNewTokens}${
            B > 1 ? `, row ${b}` : ""
          }) are not finite numbers (NaN or ±Infinity), so no token can be sampled; the ` +
            `model's weights hold non-finite values or its activations overflowed`,
        );
      }
    }
    done += n;
    return Array.from({ length: B }, (_, b) => Array.from(data.subarray(b * n, (b + 1) * n)));
  };
  /** The model's step: sampled ids and the logits' row sums, (B, 1) each, left on the device. */
  const forwardStep = (): [Tensor, Tensor] =>
    tidy(() =>
      noGrad(() => {
        let input: Tensor;
        let c: KVCache | undefined;
        if (cache && ctxLen <= blockSize) {
          input = narrow(ctx, 1, cache.length, ctxLen - cache.length); // only uncached positions
          c = cache;
        } else {
          cache?.reset(); // the window slides: positions shift, cached keys are stale
          input = narrow(ctx, 1, Math.max(0, ctxLen - blockSize), Math.min(ctxLen, blockSize));
        }
        const { logits } = model.forward(input, null, { cache: c, lastOnly: true }); // (B, 1, V)
        const z = reshape(logits, [B, vocabSize]);
        const tok = sampleLogits(z, { temperature, topK, topP, generator: gen });
        // (B, 1) i32 stays on the device; the sum is finite iff every logit is (barring overflow)
        return [reshape(tok, [B, 1]), reshape(sum(z, 1), [B, 1])];
      })
    );
  try {
    for (let step = 0; step < maxNewTokens; step++) {
      beginStep("token"); // a profile's step: one token (the first one with the prompt)
      let next: [Tensor, Tensor];
      try {
        next = forwardStep();
      } catch (e) {
        // An invalid id sampled at a step not yet read back can fail this step's embedding (the
        // CPU checks ids): read those steps back, so that the error names the step at fault.
        if (pending.length > 0) await flush();
        throw e;
      }
      for (const t of next) keep(t);
      const grown = keep(cat([ctx, next[0]], 1));
      ctx.dispose();
      ctx = grown;
      ctxLen++;
      pending.push(next);
      const due = pending.length >= chunkTokens || performance.now() - lastRead >= chunkMs;
      if (due || step === maxNewTokens - 1) yield await flush();
      endStep();
    }
  } finally {
    for (const t of pending.flat()) t.dispose();
    ctx.dispose();
    if (!o.cache) cache?.reset();
    model.train(wasTraining);
  }
}

/** Generate and return the new tokens per row, calling `onToken` with each chunk. */
export async function generate(
  model: LanguageModel,
  ids: Tensor | Int32Array | number[] | number[][],
  o: GenerateOptions,
): Promise<number[][]> {
  let out: number[][] | null = null;
  for await (const chunk of generateStream(model, ids, o)) {
    out = out ? out.map((r, b) => r.concat(chunk[b])) : chunk;
    await o.onToken?.(chunk);
  }
  return out ?? [];
}

/** Where a conversation's turns start, so that `fitContext` can drop whole turns. */
export interface Turns {
  /** Tokens at the start that stay while anything else can go (the system message); 0: none. */
  keep: number;
  /** Where each later turn starts in the context, ascending (each ≥ keep). */
  starts: number[];
}

/**
 * Crop a conversation's `context` from the left, in place, so that a reply of `reserve` tokens
 * fits the model's block; the cache is emptied when that happens (positions shifted, so the
 * cached keys no longer line up) and kept otherwise. With `turns` (updated in place) it drops
 * the oldest whole turns: first keeping the system message, else without it; only when not
 * even the newest turn fits does it cut inside one, keeping that turn's end.
 */
export function fitContext(
  context: number[],
  blockSize: number,
  reserve: number,
  cache: KVCache,
  turns?: Turns,
): void {
  if (context.length + reserve <= blockSize) return;
  cache.reset();
  const budget = Math.max(1, blockSize - reserve);
  if (turns) {
    for (const keep of turns.keep > 0 ? [turns.keep, 0] : [0]) {
      // the oldest turn start from which the rest, after the kept head, fits
      const i = turns.starts.findIndex((s) => keep + context.length - s <= budget);
      if (i < 0) continue;
      const cut = turns.starts[i] - keep;
      context.splice(keep, cut);
      turns.starts = turns.starts.slice(i).map((s) => s - cut);
      turns.keep = keep;
      return;
    }
  }
  const cut = context.length - budget;
  context.splice(0, cut);
  if (turns) {
    turns.keep = 0;
    turns.starts = turns.starts.filter((s) => s >= cut).map((s) => s - cut);
  }
}
