// Tensor creation: from data, constants, ranges and the seeded random stream. Random values are
// drawn on the CPU from the engine's Threefry stream and uploaded, so every backend gets the same
// numbers for the same seed.

import type { Backend } from "./backend.ts";
import type { DType, TypedArray } from "./dtype.ts";
import { allocArray } from "./dtype.ts";
import { getBackend } from "./device.ts";
import { defaultGenerator, type Generator } from "./random.ts";
import { checkShape, sizeOf } from "./shape.ts";
import { fmtShape, ShapeError } from "./errors.ts";
import { StorageRef, Tensor } from "./tensor.ts";
import { checkFits } from "./op.ts";

/** Where and how to create a tensor. */
export interface CreateOptions {
  /** Element type (default "f32"; typed-array data defaults to its own type). */
  dtype?: DType;
  /** Backend to create on (default: the current one, `getBackend()`). */
  backend?: Backend;
  /** Whether gradients flow to the new tensor (default false). */
  requiresGrad?: boolean;
}

/** Nested number arrays accepted by `tensor()`. */
export type ArrayLikeDeep = number | ArrayLikeDeep[];

function inferShape(x: ArrayLikeDeep): number[] {
  const shape: number[] = [];
  let cur: ArrayLikeDeep = x;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0];
  }
  return shape;
}

/** A tensor from typed data or nested arrays; `shape` defaults to the data's own. */
export function tensor(
  data: TypedArray | ArrayLikeDeep,
  shape?: readonly number[],
  opts: CreateOptions = {},
): Tensor {
  const flat = ArrayBuffer.isView(data)
    ? data
    : Array.isArray(data)
    ? (data as unknown[]).flat(Infinity) as number[]
    : [data];
  const dtype = opts.dtype ?? (ArrayBuffer.isView(data) ? dtypeOfArray(data) : "f32");
  const s = shape ?? (ArrayBuffer.isView(data) ? [data.length] : inferShape(data as ArrayLikeDeep));
  checkShape("tensor", s);
  if (sizeOf(s) !== flat.length) {
    throw new ShapeError(`tensor: ${flat.length} values do not fill shape ${fmtShape(s)}`);
  }
  const arr = allocArray(dtype, flat.length);
  arr.set(flat as ArrayLike<number>);
  return fromArray(arr, s, { ...opts, dtype });
}

/** Wrap a typed array of the right dtype (copied to the backend). */
export function fromArray(
  arr: TypedArray,
  shape: readonly number[],
  opts: CreateOptions = {},
): Tensor {
  const backend = opts.backend ?? getBackend();
  const dtype = opts.dtype ?? dtypeOfArray(arr);
  checkFits(backend, shape, dtype);
  const t = new Tensor(new StorageRef(backend, backend.upload(arr, dtype)), [...shape]);
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

/** The dtype a typed array stores. */
export function dtypeOfArray(arr: TypedArray): DType {
  if (arr instanceof Int32Array) return "i32";
  if (arr instanceof Uint32Array) return "u32";
  if (arr instanceof Float64Array) return "f64";
  return "f32";
}

/**
 * Where the backend holds shapes only (meta), a tensor without data (nothing drawn or filled);
 * elsewhere null, after checking the tensor fits the backend.
 */
function withoutData(shape: readonly number[], opts: CreateOptions): Tensor | null {
  const backend = opts.backend ?? getBackend();
  const dtype = opts.dtype ?? "f32";
  checkFits(backend, shape, dtype);
  if (!backend.traits.virtual) return null;
  const t = new Tensor(new StorageRef(backend, backend.alloc(sizeOf(shape), dtype)), [...shape]);
  t.requiresGrad = opts.requiresGrad ?? false;
  return t;
}

/** A tensor of `shape` filled with `value`. */
export function full(shape: readonly number[], value: number, opts: CreateOptions = {}): Tensor {
  checkShape("full", shape);
  const virtual = withoutData(shape, opts);
  if (virtual) return virtual;
  const arr = allocArray(opts.dtype ?? "f32", sizeOf(shape));
  arr.fill(value);
  return fromArray(arr, shape, opts);
}

/** Zeros. */
export function zeros(shape: readonly number[], opts: CreateOptions = {}): Tensor {
  return full(shape, 0, opts);
}

/** Ones. */
export function ones(shape: readonly number[], opts: CreateOptions = {}): Tensor {
  return full(shape, 1, opts);
}

/** `[start, stop)` in steps of `step` (a 1-D tensor, f32 unless `dtype` says otherwise). */
export function arange(start: number, stop?: number, step = 1, opts: CreateOptions = {}): Tensor {
  if (stop === undefined) [start, stop] = [0, start];
  if (step === 0) throw new RangeError("arange: step must not be 0");
  const n = Math.max(0, Math.ceil((stop - start) / step));
  const arr = allocArray(opts.dtype ?? "f32", n);
  for (let i = 0; i < n; i++) arr[i] = start + i * step;
  return fromArray(arr, [n], opts);
}

/** Random options: a generator (default: the global one) plus creation options. */
export interface RandomOptions extends CreateOptions {
  /** The random stream to draw from (default: the global generator, see `manualSeed`). */
  generator?: Generator;
}

/** Standard normal samples (times `std`, plus `mean`) from the seeded stream. */
export function randn(
  shape: readonly number[],
  opts: RandomOptions & { mean?: number; std?: number } = {},
): Tensor {
  checkShape("randn", shape);
  const virtual = withoutData(shape, opts);
  if (virtual) return virtual;
  const g = opts.generator ?? defaultGenerator();
  const z = g.normal(sizeOf(shape));
  const { mean = 0, std = 1 } = opts;
  if (mean !== 0 || std !== 1) { for (let i = 0; i < z.length; i++) z[i] = mean + std * z[i]; }
  const arr = allocArray(opts.dtype ?? "f32", z.length);
  arr.set(z);
  return fromArray(arr, shape, opts);
}

/** Uniform samples in [low, high) from the seeded stream. */
export function rand(
  shape: readonly number[],
  opts: RandomOptions & { low?: number; high?: number } = {},
): Tensor {
  checkShape("rand", shape);
  const virtual = withoutData(shape, opts);
  if (virtual) return virtual;
  const g = opts.generator ?? defaultGenerator();
  const u = g.uniform(sizeOf(shape));
  const { low = 0, high = 1 } = opts;
  for (let i = 0; i < u.length; i++) u[i] = low + (high - low) * u[i];
  const arr = allocArray(opts.dtype ?? "f32", u.length);
  arr.set(u);
  return fromArray(arr, shape, opts);
}
