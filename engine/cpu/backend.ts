// The CPU backend: storage is a typed array, running a kernel calls its `cpu` reference. It is
// the numerical reference for every WebGPU kernel and the fallback where no adapter exists.

import type { Backend, BoundArg, Kernel, Storage } from "../backend.ts";
import type { DType, TypedArray } from "../dtype.ts";
import { allocArray } from "../dtype.ts";

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

/** Pure TypeScript backend over typed arrays. */
export class CpuBackend implements Backend {
  readonly name = "cpu";

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
    kernel.cpu(
      inputs.map((a) => ({ ...a.info, data: cpuData(a.storage) })),
      outputs.map((a) => cpuData(a.storage)),
      params,
    );
  }

  sync(): Promise<void> {
    return Promise.resolve();
  }

  describe(): string {
    return "cpu (TypeScript reference backend)";
  }
}
