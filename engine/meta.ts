// The meta backend: tensors with shapes and dtypes but no memory, and kernels that do nothing.
// Building a model on it costs no memory and no random draws, so its parameters' names, shapes
// and bytes can be checked against a real device's limits, and its memory estimated, before
// anything is allocated. Reading a value is an error.

import type { Backend, BackendTraits, Storage } from "./backend.ts";
import type { DType, TypedArray } from "./dtype.ts";

/** Storage that holds nothing. */
class MetaStorage implements Storage {
  readonly backend = "meta";
  constructor(readonly size: number, readonly dtype: DType) {}
}

/** Shapes only: allocation is free and kernels are no-ops. */
export class MetaBackend implements Backend {
  readonly name = "meta";
  readonly traits: BackendTraits = {
    maxBindingBytes: Infinity,
    bindingAlign: 1,
    maxTensorBytes: Infinity,
    maxLoopIterations: Infinity,
    virtual: true,
  };

  alloc(size: number, dtype: DType): Storage {
    return new MetaStorage(size, dtype);
  }

  upload(data: TypedArray, dtype: DType): Storage {
    return new MetaStorage(data.length, dtype);
  }

  write(_storage: Storage, _data: TypedArray): void {}

  read(_storage: Storage): Promise<TypedArray> {
    return Promise.reject(new Error("meta backend: tensors hold shapes only, no values to read"));
  }

  free(_storage: Storage): void {}

  run(): void {}

  sync(): Promise<void> {
    return Promise.resolve();
  }

  describe(): string {
    return "meta (shapes only, no memory)";
  }
}

/** The shared meta backend. */
export const meta: Backend = new MetaBackend();
