// Weights held as row chunks. A [rows, cols] table larger than one storage binding (WebGPU's
// maxStorageBufferBindingSize: 128 MiB on llvmpipe, GPT-2 XL's wte is 322 MB) is stored as
// consecutive row blocks, each a Parameter registered as `0`, `1`, … under the weight's name
// (`transformer.wte.weight.0`), so every kernel binds one chunk, and gradients and AdamW moments
// stay per chunk. Files never show the split: `joinChunks` assembles chunk-named host arrays into
// the one [rows, cols] entry on the host and `splitChunks` cuts such entries back into chunks.

import type { Backend } from "../engine/backend.ts";
import { fmtShape } from "../engine/errors.ts";
import { Tensor } from "../engine/tensor.ts";
import { cat, narrow } from "../kernels/mod.ts";
import {
  type HostArray,
  Module,
  type Parameter,
  StateDictError,
  type StateValue,
} from "./module.ts";

/**
 * The largest tensor one storage binding of `backend` may hold, in bytes: a WebGPU backend's
 * `maxBindingBytes` (its adapter's maxStorageBufferBindingSize), Infinity for the CPU.
 */
export function bindingLimit(backend: Backend): number {
  return (backend as { maxBindingBytes?: number }).maxBindingBytes ?? Infinity;
}

/**
 * Row counts of the chunks of a [rows, cols] table with elements of `bytes` bytes so that each
 * chunk holds at most `maxBytes`: [rows] when it fits, else the fewest chunks, balanced, with
 * row counts rounded to make chunk sizes multiples of 256 bytes where that still fits.
 */
export function chunkRows(rows: number, cols: number, bytes: number, maxBytes: number): number[] {
  const rowBytes = cols * bytes;
  if (rows * rowBytes <= maxBytes) return [rows];
  const most = Math.floor(maxBytes / rowBytes);
  if (most < 1) {
    throw new RangeError(
      `chunkRows: one row of ${cols} elements needs ${rowBytes} bytes, over the limit of ` +
        `${maxBytes} bytes`,
    );
  }
  const k = Math.ceil(rows / most);
  let per = Math.ceil(rows / k);
  const align = 256 / gcd(256, rowBytes);
  const aligned = Math.ceil(per / align) * align;
  if (aligned <= most) per = aligned;
  const sizes: number[] = [];
  for (let start = 0; start < rows; start += per) sizes.push(Math.min(per, rows - start));
  return sizes;
}

function gcd(a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b);
}

/** A [rows, cols] weight held as row-chunk Parameters `0`, `1`, … (in row order). */
export class RowChunks extends Module {
  /** First row of each chunk, then `rows`. */
  readonly starts: number[];
  /** Chunks as created by `init(shape)` for each chunk's [rows_j, cols], in order. */
  constructor(
    readonly rows: number,
    readonly cols: number,
    readonly sizes: readonly number[],
    init: (shape: number[]) => Tensor,
  ) {
    super();
    this.starts = [0];
    sizes.forEach((n, j) => {
      this.addParameter(String(j), init([n, cols]));
      this.starts.push(this.starts[j] + n);
    });
    if (this.starts[sizes.length] !== rows) {
      throw new RangeError(`RowChunks: chunk rows [${sizes.join(", ")}] do not add up to ${rows}`);
    }
  }
  /** The logical shape [rows, cols]. */
  get shape(): [number, number] {
    return [this.rows, this.cols];
  }
  /** The chunk Parameters, in row order. */
  get parts(): Parameter[] {
    return this.sizes.map((_, j) => this.param(String(j)));
  }
  /**
   * Rows [start, start + len) of the whole table. Chunks outside the range join as empty pieces,
   * so every chunk gets a (zero) gradient as the whole table would: AdamW then decays them alike.
   */
  narrowRows(start: number, len: number): Tensor {
    if (start < 0 || len < 1 || start + len > this.rows) {
      throw new RangeError(`RowChunks: rows [${start}, ${start + len}) of ${fmtShape(this.shape)}`);
    }
    const pieces = this.parts.map((p, j) => {
      const lo = Math.max(start, this.starts[j]);
      const hi = Math.min(start + len, this.starts[j + 1]);
      return hi > lo ? narrow(p, 0, lo - this.starts[j], hi - lo) : narrow(p, 0, 0, 0);
    });
    return cat(pieces, 0);
  }
}

/** A table weight: one Parameter, or row chunks when it exceeds a binding. */
export type TableWeight = Parameter | RowChunks;

/** Rows [start, start + len) of a table (differentiable). */
export function tableRows(t: TableWeight, start: number, len: number): Tensor {
  return t instanceof RowChunks ? t.narrowRows(start, len) : narrow(t, 0, start, len);
}

/** Every row-chunked weight of `m` under each of its dotted names (tied aliases included). */
export function chunkedWeights(m: Module): [string, RowChunks][] {
  return m.namedModules().filter((e): e is [string, RowChunks] => e[1] instanceof RowChunks);
}

// `${name}.${j}${suffix}` names chunk j; a suffix is empty or starts with a dot and a non-digit
// (the optimizer's `.exp_avg`), so `name.0` and `name.exp_avg` never collide.
const SUFFIX = /^(\.[^0-9.][^.]*)*$/;

function matchLogical(key: string, name: string): string | null {
  if (key === name) return "";
  if (!key.startsWith(`${name}.`)) return null;
  const rest = key.slice(name.length);
  return SUFFIX.test(rest) ? rest : null;
}

/**
 * Host arrays keyed by parameter names (chunks as `name.j[.suffix]`) with each chunked weight's
 * chunks joined into one `name[.suffix]` [rows, cols] entry. The joined entries go where the
 * whole weight would be: before the first entry of its parent module (Linear and Embedding
 * register `weight` first, while a chunked weight's child module comes after their own `bias`).
 * Other fields of the first chunk's entry (e.g. a safetensors dtype) are kept.
 */
export function joinChunks<T extends HostArray>(
  m: Module,
  dict: Record<string, T>,
): Record<string, T> {
  const keys = Object.keys(dict);
  const groups: { name: string; parent: string; w: RowChunks; suffixes: string[] }[] = [];
  const chunkKeys = new Set<string>();
  for (const [name, w] of chunkedWeights(m)) {
    const suffixes = keys.filter((k) => k.startsWith(`${name}.0`))
      .map((k) => k.slice(name.length + 2)).filter((s) => SUFFIX.test(s));
    if (suffixes.length === 0) continue;
    for (const s of suffixes) w.sizes.forEach((_, j) => chunkKeys.add(`${name}.${j}${s}`));
    groups.push({ name, parent: name.slice(0, name.lastIndexOf(".") + 1), w, suffixes });
  }
  const out: Record<string, T> = {};
  const emitted = new Set<string>();
  const emit = (g: (typeof groups)[number]) => {
    emitted.add(g.name);
    for (const suffix of g.suffixes) {
      const parts = g.w.sizes.map((_, j) => {
        const part = dict[`${g.name}.${j}${suffix}`];
        if (!part) throw new StateDictError(`joinChunks: '${g.name}.${j}${suffix}' is missing`);
        return part;
      });
      out[`${g.name}${suffix}`] = {
        ...parts[0],
        shape: [g.w.rows, g.w.cols],
        data: concatData(parts),
      };
    }
  };
  for (const key of keys) {
    for (const g of groups) if (!emitted.has(g.name) && key.startsWith(g.parent)) emit(g);
    if (!chunkKeys.has(key)) out[key] = dict[key];
  }
  return out;
}

function concatData(parts: HostArray[]): HostArray["data"] {
  const first = parts[0].data;
  const n = parts.reduce((s, p) => s + p.data.length, 0);
  const Ctor = ArrayBuffer.isView(first)
    ? first.constructor as new (n: number) => { set(a: ArrayLike<number>, o: number): void }
    : Float64Array;
  const out = new Ctor(n);
  let at = 0;
  for (const p of parts) {
    out.set(p.data, at);
    at += p.data.length;
  }
  return out as unknown as HostArray["data"];
}

/**
 * A state dict with every whole-table entry of a chunked weight (`name[.suffix]`, [rows, cols],
 * tied aliases too) cut into its chunks' entries `name.j[.suffix]`; others pass through.
 * Host data is cut with subarray views, tensors with narrow views (no copies).
 */
export function splitChunks<T extends StateValue>(
  m: Module,
  dict: Record<string, T>,
): Record<string, T | HostArray | Tensor> {
  const weights = chunkedWeights(m);
  const out: Record<string, T | HostArray | Tensor> = {};
  for (const [key, v] of Object.entries(dict)) {
    const hit = weights.map(([name, w]) => ({ name, w, suffix: matchLogical(key, name) }))
      .find((h) => h.suffix !== null);
    if (!hit) {
      out[key] = v;
      continue;
    }
    const { name, w, suffix } = hit;
    if (v.shape.length !== 2 || v.shape[0] !== w.rows || v.shape[1] !== w.cols) {
      throw new StateDictError(
        `loadStateDict: shape mismatch ${key}: given ${fmtShape(v.shape)}, model has ` +
          `${fmtShape(w.shape)}`,
      );
    }
    w.sizes.forEach((n, j) => {
      out[`${name}.${j}${suffix}`] = v instanceof Tensor
        ? narrow(v, 0, w.starts[j], n)
        : { shape: [n, w.cols], data: sliceData(v.data, w.starts[j] * w.cols, n * w.cols) };
    });
  }
  return out;
}

function sliceData(data: HostArray["data"], at: number, n: number): HostArray["data"] {
  if (ArrayBuffer.isView(data)) {
    return (data as unknown as { subarray(a: number, b: number): HostArray["data"] })
      .subarray(at, at + n);
  }
  return Array.prototype.slice.call(data, at, at + n);
}

/** `m.tiedNames()` with chunk aliases folded back to the weights' names. */
export function tiedWholeNames(m: Module): Record<string, string> {
  const chunked = chunkedWeights(m);
  const out: Record<string, string> = {};
  for (const [alias, primary] of Object.entries(m.tiedNames())) {
    const a = chunked.find(([name]) => alias.startsWith(`${name}.`));
    const p = chunked.find(([name]) => primary.startsWith(`${name}.`));
    if (a && p) out[a[0]] = p[0];
    else out[alias] = primary;
  }
  return out;
}
