// Tensor: a strided view (shape, strides, offset) over reference-counted backend storage, plus
// the autograd link (the node that made it) and its accumulated gradient.

import type { Backend, CpuArg, Storage } from "./backend.ts";
import type { DType, TypedArray } from "./dtype.ts";
import { allocArray } from "./dtype.ts";
import { contiguousStrides, sizeOf } from "./shape.ts";
import { trackTensor } from "./scope.ts";
import { activeProfile } from "./profile.ts";
import { backward as runBackward, type Node } from "./autograd.ts";

/** Storage shared by a tensor and its views; freed when the last holder lets go. */
export class StorageRef {
  /** Number of holders (tensors and views) still using the storage. */
  refs = 1;
  /** Wrap `storage` of `backend` with one holder. */
  constructor(readonly backend: Backend, readonly storage: Storage) {}
  /** Add a holder. */
  retain(): void {
    this.refs++;
  }
  /** Drop a holder; the last one returns the storage to its backend. */
  release(): void {
    if (this.refs <= 0) return;
    if (--this.refs === 0) this.backend.free(this.storage);
  }
}

// Safety net for tensors never disposed: their storage goes back to the pool when collected.
const finalizer = new FinalizationRegistry<StorageRef>((ref) => ref.release());

let nextId = 1;

/** An n-dimensional array on a backend, optionally tracked by autograd. */
export class Tensor {
  /** Unique id, for debugging and graph traversal. */
  readonly id = nextId++;
  /** Whether gradients flow to this tensor. */
  requiresGrad = false;
  /** Accumulated gradient after `backward()` (leaves only). */
  grad: Tensor | null = null;
  /** The op that produced this tensor, while the graph is alive. */
  node: Node | null = null;
  #disposed = false;

  /**
   * A tensor viewing `ref`'s storage with the given layout. Ops and creation functions call
   * this; users create tensors with `tensor()`, `zeros()`, `randn()` and the like.
   */
  constructor(
    readonly ref: StorageRef,
    readonly shape: readonly number[],
    readonly strides: readonly number[] = contiguousStrides(shape),
    readonly offset = 0,
  ) {
    finalizer.register(this, ref, this);
    trackTensor(this);
  }

  /** The backend whose memory holds this tensor. */
  get backend(): Backend {
    return this.ref.backend;
  }
  /** Element type. */
  get dtype(): DType {
    return this.ref.storage.dtype;
  }
  /** Number of elements. */
  get size(): number {
    return sizeOf(this.shape);
  }
  /** Number of dimensions. */
  get ndim(): number {
    return this.shape.length;
  }
  /** Has `dispose()` been called? */
  get disposed(): boolean {
    return this.#disposed;
  }

  /** True when elements are laid out row-major without gaps (the offset may be non-zero). */
  isContiguous(): boolean {
    let s = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== s) return false;
      s *= this.shape[i];
    }
    return true;
  }

  /** A new tensor over the same storage with another layout (no copy, no autograd link). */
  withLayout(shape: readonly number[], strides: readonly number[], offset: number): Tensor {
    this.assertAlive("view");
    this.ref.retain();
    return new Tensor(this.ref, shape, strides, offset);
  }

  /** The elements in row-major order, read back from the device. */
  async data(): Promise<TypedArray> {
    this.assertAlive("data");
    const prof = activeProfile;
    const t0 = prof?.now() ?? 0;
    const all = await this.backend.read(this.ref.storage);
    prof?.sync("read", t0); // the host waited for the device here
    if (this.isContiguous()) return all.slice(this.offset, this.offset + this.size);
    return gatherStrided(all, this.shape, this.strides, this.offset, this.dtype);
  }

  /** The single value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) {
      throw new RangeError(`item: tensor has ${this.size} elements, expected 1`);
    }
    return (await this.data())[0];
  }

  /** The elements as nested JavaScript arrays. */
  async toArray(): Promise<NestedArray> {
    return nest(Array.from(await this.data()), this.shape);
  }

  /** Backpropagate from this tensor (a scalar unless `grad` is given) into leaf `.grad`s. */
  backward(grad?: Tensor): void {
    runBackward(this, grad);
  }

  /** Release this tensor's hold on its storage. Safe to call twice. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    finalizer.unregister(this);
    this.node = null;
    this.ref.release();
  }

  /** `using t = ...` disposes at the end of the block. */
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Throw when used after dispose. */
  assertAlive(op: string): void {
    if (this.#disposed) throw new Error(`${op}: tensor ${this.id} was disposed`);
  }

  /** Short description for logs. */
  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape.join(", ")}], ${this.backend.name})`;
  }
}

/** Nested arrays as returned by `toArray()`. */
export type NestedArray = number | NestedArray[];

function nest(flat: number[], shape: readonly number[]): NestedArray {
  if (shape.length === 0) return flat[0];
  const [d, ...rest] = shape;
  const step = sizeOf(rest);
  const out: NestedArray[] = [];
  for (let i = 0; i < d; i++) out.push(nest(flat.slice(i * step, (i + 1) * step), rest));
  return out;
}

/** Copy the strided elements of `src` into a new row-major array. */
export function gatherStrided(
  src: TypedArray,
  shape: readonly number[],
  strides: readonly number[],
  offset: number,
  dtype: DType,
): TypedArray {
  const n = sizeOf(shape);
  const out = allocArray(dtype, n);
  const nd = shape.length;
  if (n === 0) return out;
  const idx = new Array<number>(nd).fill(0);
  let pos = offset;
  for (let i = 0; i < n; i++) {
    out[i] = src[pos];
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]++;
      pos += strides[d];
      if (idx[d] < shape[d]) break;
      pos -= strides[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}
export type { Node } from "./autograd.ts";

/** A CPU kernel argument's elements row-major (the storage itself when already so). */
export function cpuContiguous(a: CpuArg): TypedArray {
  const n = sizeOf(a.shape);
  let plain = true;
  let s = 1;
  for (let i = a.shape.length - 1; i >= 0 && plain; i--) {
    if (a.shape[i] !== 1 && a.strides[i] !== s) plain = false;
    s *= a.shape[i];
  }
  if (plain) {
    return a.offset === 0 && a.data.length === n ? a.data : a.data.subarray(a.offset, a.offset + n);
  }
  return gatherStrided(a.data, a.shape, a.strides, a.offset, a.dtype);
}
