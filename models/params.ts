// The parameter table of GPT and BitGPT: every weight's file name and shape from a config alone
// (as llm.c's fill_in_parameter_sizes), so a model can be checked against the device's storage
// binding limit before anything is allocated, and its memory estimated. Tables (the embeddings,
// BitGPT's own lm_head) may exceed a binding: they are held as row chunks (nn/split.ts). Every
// other weight must fit one binding, or the model is refused with an error naming it. The logits
// [B·T, V] of a forward need not fit either when a loss is asked for: `logitsBlockRows` plans the
// row blocks models/head_loss.ts computes it over; logits returned to the caller must fit.

import { byteSize, type DType } from "../engine/dtype.ts";
import type { GPTConfig, ModelKind } from "./config.ts";
import { DeviceLimitError } from "../engine/errors.ts";

export { DeviceLimitError };

/** One parameter: its file name, shape, and whether it may be split into row chunks. */
export interface ParamSpec {
  /** nanoGPT-style dotted name, as in checkpoints. */
  name: string;
  /** Its shape. */
  shape: number[];
  /** A table held as row chunks when it exceeds one binding (embeddings, lm_head). */
  table: boolean;
}

/** Every parameter of a `kind` model for `c`, in registration order (tied lm_head omitted). */
export function parameterSpecs(kind: ModelKind, c: GPTConfig): ParamSpec[] {
  const C = c.nEmbd;
  const out: ParamSpec[] = [];
  const add = (name: string, shape: number[], table = false) => out.push({ name, shape, table });
  add("transformer.wte.weight", [c.vocabSize, C], true);
  if (c.pos === "learned") add("transformer.wpe.weight", [c.blockSize, C], true);
  for (let i = 0; i < c.nLayer; i++) {
    const h = `transformer.h.${i}`;
    if (kind === "gpt") {
      const lin = (m: string, o: number, n: number) => {
        add(`${h}.${m}.weight`, [o, n]);
        if (c.bias) add(`${h}.${m}.bias`, [o]);
      };
      const norm = (m: string) => {
        add(`${h}.${m}.weight`, [C]);
        if (c.bias) add(`${h}.${m}.bias`, [C]);
      };
      norm("ln_1");
      lin("attn.c_attn", 3 * C, C);
      lin("attn.c_proj", C, C);
      norm("ln_2");
      lin("mlp.c_fc", 4 * C, C);
      lin("mlp.c_proj", C, 4 * C);
    } else {
      const bit = (m: string, o: number, n: number) => {
        add(`${h}.${m}.weight`, [o, n]);
        add(`${h}.${m}.norm.weight`, [n]);
      };
      for (const m of ["q_proj", "k_proj", "v_proj", "c_proj"]) bit(`attn.${m}`, C, C);
      bit("mlp.c_fc", 4 * C, C);
      bit("mlp.c_proj", C, 4 * C);
    }
  }
  add("transformer.ln_f.weight", [C]);
  if (kind === "bitgpt" || c.bias) add("transformer.ln_f.bias", [C]);
  if (kind === "bitgpt") {
    add("lm_head.weight", [c.vocabSize, C], true);
    add("lm_head.bias", [c.vocabSize]);
  }
  return out;
}

const MiB = 1024 * 1024;
const mib = (b: number) => `${(b / MiB).toFixed(1)} MiB`;

/**
 * Throw DeviceLimitError when a parameter of a `kind` model for `c` cannot be held under a
 * storage-binding limit of `limit` bytes: a non-table weight over it, or a table whose single
 * row is. The message names the parameter, its shape, the bytes needed and the limit.
 */
export function checkBindingLimit(
  kind: ModelKind,
  c: GPTConfig,
  limit: number,
  dtype: DType = "f32",
): void {
  if (!Number.isFinite(limit)) return;
  const el = byteSize(dtype);
  for (const p of parameterSpecs(kind, c)) {
    const bytes = p.shape.reduce((a, b) => a * b, el);
    const need = p.table ? p.shape[1] * el : bytes; // a table needs one row per binding
    if (need <= limit) continue;
    const what = p.table ? `one row of ${p.name}` : p.name;
    throw new DeviceLimitError(
      `${kind}: ${what} [${p.shape.join(", ")}] ${dtype} needs ${need} bytes (${mib(need)}), ` +
        `over the storage-binding limit of ${limit} bytes (${mib(limit)}) by ${need - limit}; ` +
        `only the embeddings and lm_head are split across bindings: use a smaller nEmbd ` +
        `(or vocabulary) or the cpu backend`,
    );
  }
}

/** Parameter elements of a `kind` model for `c` (tied lm_head counted once). */
export function parameterCount(kind: ModelKind, c: GPTConfig): number {
  return parameterSpecs(kind, c).reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);
}

/** What `logitsBlockRows` weighs: is a loss wanted, and the two limits in bytes. */
export interface LogitsLimits {
  /** Targets were given: the loss may be computed over row blocks without whole logits. */
  withLoss: boolean;
  /** The most bytes of logits made at once before the loss goes to row blocks. */
  maxLogitsBytes: number;
  /** The storage-binding limit: logits returned to the caller must fit it. */
  maxBindingBytes: number;
}

/**
 * How a `kind` model makes the logits of `rows` tokens over `V` classes: null when all at once
 * (they fit `maxLogitsBytes`, or no loss is wanted and they fit one binding), else the rows per
 * block of a blocked loss: the fewest blocks under maxLogitsBytes, balanced. Throws
 * DeviceLimitError for logits that cannot be made: wanted whole over a binding, or one row over
 * maxLogitsBytes.
 */
export function logitsBlockRows(
  kind: ModelKind,
  rows: number,
  V: number,
  dtype: DType,
  l: LogitsLimits,
): number | null {
  const rowBytes = V * byteSize(dtype);
  const bytes = rows * rowBytes;
  if (!l.withLoss) {
    if (bytes <= l.maxBindingBytes) return null;
    throw new DeviceLimitError(
      `${kind}: the logits [${rows}, ${V}] ${dtype} of ${rows} tokens need ${bytes} bytes ` +
        `(${mib(bytes)}), over the storage-binding limit of ${l.maxBindingBytes} bytes ` +
        `(${mib(l.maxBindingBytes)}) by ${bytes - l.maxBindingBytes}; forward at most ` +
        `${Math.floor(l.maxBindingBytes / rowBytes)} tokens at once, pass targets to get the ` +
        `loss computed over blocks of tokens (no logits returned), or use lastOnly`,
    );
  }
  if (bytes <= l.maxLogitsBytes) return null;
  const most = Math.floor(l.maxLogitsBytes / rowBytes);
  if (most < 1) {
    throw new DeviceLimitError(
      `${kind}: one token's logits [${V}] ${dtype} need ${rowBytes} bytes, over the logits ` +
        `limit of ${l.maxLogitsBytes} bytes (maxLogitsBytes); raise it`,
    );
  }
  return Math.ceil(rows / Math.ceil(rows / most));
}
