// The CPU backend: storage is a typed array, running a kernel calls its `cpu` reference. It is
// the numerical reference for every other backend's kernels and runs anywhere. Each kernel
// argument sees its storage from the first element it spans, as a device binding would, so a
// CPU backend with a lowered binding limit runs the same split pieces a small-binding device
// runs: the split rules are tested here against the unsplit result.

import type { Backend, BackendTraits, BoundArg, CpuArg, Kernel, Storage } from "../backend.ts";
import type { DType, TypedArray } from "../dtype.ts";
import { allocArray } from "../dtype.ts";
import { contiguousStrides, sizeOf } from "../shape.ts";

/** CPU storage: a typed array of exactly `size` elements. */
export class CpuStorage implements Storage {
  readonly backend = "cpu";
  constructor(readonly data: TypedArray, readonly dtype: DType) {}
  get size(): number {
    return this.data.length;
  }
}

function cpuData(s: Storage): TypedArray {
  if (!(s instanceof CpuStorage)) throw new Error(`cpu backend given ${s.backend} storage`);
  return s.data;
}

/** V8 caps one typed array at 2^32 − 1 bytes. */
const MAX_TENSOR_BYTES = 2 ** 32 - 1;

/** Options of a CPU backend. */
export interface CpuBackendOptions {
  /**
   * Act as if one kernel argument could span at most this many bytes (default: no limit), so
   * that launches run as the pieces of their kernels' split rules, as on a device with small
   * bindings.
   */
  maxBindingBytes?: number;
  /** Where pieces of a split launch start, in bytes (default 4: the CPU needs no alignment). */
  bindingAlign?: number;
  /** The largest tensor, in bytes (default: V8's largest typed array). */
  maxTensorBytes?: number;
}

/** Pure TypeScript backend over typed arrays. */
export class CpuBackend implements Backend {
  readonly name = "cpu";
  readonly traits: BackendTraits;

  /** A CPU backend; `o` lowers its binding limit (tests of the split rules). */
  constructor(o: CpuBackendOptions = {}) {
    this.traits = {
      maxBindingBytes: o.maxBindingBytes ?? Infinity,
      bindingAlign: o.bindingAlign ?? 4,
      maxTensorBytes: o.maxTensorBytes ?? MAX_TENSOR_BYTES,
      maxLoopIterations: Infinity,
    };
  }

  alloc(size: number, dtype: DType): Storage {
    return new CpuStorage(allocArray(dtype, size), dtype);
  }

  upload(data: TypedArray, dtype: DType): Storage {
    const s = allocArray(dtype, data.length);
    s.set(data);
    return new CpuStorage(s, dtype);
  }

  write(storage: Storage, data: TypedArray): void {
    cpuData(storage).set(data);
  }

  read(storage: Storage): Promise<TypedArray> {
    return Promise.resolve(cpuData(storage).slice());
  }

  free(_storage: Storage): void {
    // Garbage-collected.
  }

  run<P>(kernel: Kernel<P>, inputs: BoundArg[], outputs: BoundArg[], params: P): void {
    runCpuReference(kernel, inputs, outputs, params, cpuData);
  }

  sync(): Promise<void> {
    return Promise.resolve();
  }

  describe(): string {
    return "cpu (TypeScript reference backend)";
  }
}

/**
 * Run `kernel`'s CPU reference over storages whose elements `dataOf` gives (the CPU backend's
 * arrays, or views of the wasm backend's heap): each input seen from the first element it
 * spans, each output written row-major (a strided one through a scratch array, then scattered).
 */
export function runCpuReference<P>(
  kernel: Kernel<P>,
  inputs: BoundArg[],
  outputs: BoundArg[],
  params: P,
  dataOf: (s: Storage) => TypedArray,
): void {
  const outs = outputs.map((a) => outputView(a, dataOf(a.storage)));
  kernel.cpu(inputs.map((a) => rebase(a, dataOf(a.storage))), outs.map((o) => o.data), params);
  outs.forEach((o, i) => o.scatter?.(dataOf(outputs[i].storage)));
}

/** An input whose data starts at the first element it spans (its offset relative to that). */
function rebase(a: BoundArg, data: TypedArray): CpuArg {
  const { info } = a;
  let lo = info.offset;
  for (let d = 0; d < info.shape.length; d++) {
    if (info.strides[d] < 0) lo += (info.shape[d] - 1) * info.strides[d];
  }
  if (lo === 0) return { ...info, data };
  return { ...info, data: data.subarray(lo), offset: info.offset - lo };
}

/**
 * Where a kernel writes an output, row-major from index 0: the storage itself, a subarray, or
 * (a strided piece of a split launch) a scratch array scattered into place afterwards.
 */
function outputView(
  a: BoundArg,
  data: TypedArray,
): { data: TypedArray; scatter?(dst: TypedArray): void } {
  const { shape, strides, offset } = a.info;
  const n = sizeOf(shape);
  const rowMajor = contiguousStrides(shape).every((s, d) => shape[d] === 1 || strides[d] === s);
  if (rowMajor) {
    return { data: offset === 0 && data.length === n ? data : data.subarray(offset, offset + n) };
  }
  const scratch = allocArray(a.storage.dtype, n);
  return {
    data: scratch,
    scatter(dst) {
      const idx = new Array<number>(shape.length).fill(0);
      let pos = offset;
      for (let i = 0; i < n; i++) {
        dst[pos] = scratch[i];
        for (let d = shape.length - 1; d >= 0; d--) {
          idx[d]++;
          pos += strides[d];
          if (idx[d] < shape[d]) break;
          pos -= strides[d] * shape[d];
          idx[d] = 0;
        }
      }
    },
  };
}
