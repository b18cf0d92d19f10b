// The wasm backend: tensors live in one WebAssembly heap (memory.ts), kernels with a wasm
// implementation run it through the kernel context (context.ts: module cache, worker threads,
// scratch), and a kernel without one (KERNEL_FALLBACK in engine/backend.ts), or any kernel over
// float64 tensors, runs its CPU reference on typed-array views of the heap, on the calling thread.

import type { ArgInfo, Backend, BackendTraits, BoundArg, Kernel, Storage } from "../backend.ts";
import { runCpuReference } from "../cpu/backend.ts";
import { ARRAY_TYPES, byteSize, type DType, type TypedArray } from "../dtype.ts";
import { KernelContext, type WasmArg } from "./context.ts";
import type { ModuleBuilder } from "./builder.ts";
import { describeFeatures, type WasmFeatures, wasmFeatures } from "./features.ts";
import { type HeapOptions, WasmHeap } from "./memory.ts";
import { type PoolOptions, ThreadPool } from "./threads.ts";

/** A kernel module's cache key and builder for a runtime (e.g. kernels/matmul/wasm.ts's). */
export type ModuleSpec = (features: WasmFeatures) => [string, (b: ModuleBuilder) => void];

/** Options of the wasm backend. */
export interface WasmBackendOptions extends PoolOptions, HeapOptions {
  /** Kernel modules to compile asynchronously at creation (needed on a browser's main thread). */
  modules?: ModuleSpec[];
}

/** Wasm storage: a block of the heap holding `size` elements of `dtype`. */
export class WasmStorage implements Storage {
  readonly backend = "wasm";
  #ptr: number;
  constructor(ptr: number, readonly dtype: DType, readonly size: number) {
    this.#ptr = ptr;
  }
  /** Byte address of element 0 (throws once freed). */
  get ptr(): number {
    if (this.#ptr === 0) throw new Error("wasm storage used after free");
    return this.#ptr;
  }
  /** Mark freed; returns the address it had. */
  release(): number {
    const p = this.ptr;
    this.#ptr = 0;
    return p;
  }
}

function wasmStorage(s: Storage): WasmStorage {
  if (!(s instanceof WasmStorage)) throw new Error(`wasm backend given ${s.backend} storage`);
  return s;
}

/** WebAssembly SIMD on worker threads over one shared heap. */
export class WasmBackend implements Backend {
  readonly name = "wasm";
  /** The kernels' context (heap, threads, modules, scratch). */
  readonly ctx: KernelContext;
  /** No binding limit; one tensor may take what the heap can still grow to (wasm32: 4 GiB). */
  readonly traits: BackendTraits;

  private constructor(readonly heap: WasmHeap, readonly pool: ThreadPool) {
    this.ctx = new KernelContext(heap, pool, wasmFeatures());
    this.traits = {
      maxBindingBytes: Infinity,
      bindingAlign: 4,
      maxTensorBytes: heap.maxBytes,
      maxTotalBytes: heap.maxBytes,
      maxLoopIterations: Infinity,
    };
  }

  /** A backend whose workers are online. */
  static async create(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
    const features = wasmFeatures();
    const heap = new WasmHeap({ shared: features.threads, ...opts });
    const pool = await ThreadPool.create(heap, opts);
    const backend = new WasmBackend(heap, pool);
    for (const spec of opts.modules ?? []) await backend.ctx.prepare(...spec(features));
    return backend;
  }

  /** A typed-array view of a storage's elements (fetch again after any allocation). */
  view(s: Storage): TypedArray {
    const w = wasmStorage(s);
    return new ARRAY_TYPES[w.dtype](this.heap.buffer as ArrayBuffer, w.ptr, w.size);
  }

  alloc(size: number, dtype: DType, label = `a ${dtype} tensor of ${size} elements`): Storage {
    return new WasmStorage(this.heap.alloc(size * byteSize(dtype), label), dtype, size);
  }

  upload(data: TypedArray, dtype: DType): Storage {
    const s = this.alloc(data.length, dtype);
    this.view(s).set(data);
    return s;
  }

  write(storage: Storage, data: TypedArray): void {
    this.view(storage).set(data);
  }

  read(storage: Storage): Promise<TypedArray> {
    return Promise.resolve(this.view(storage).slice());
  }

  free(storage: Storage): void {
    this.heap.free(wasmStorage(storage).release());
  }

  run<P>(kernel: Kernel<P>, inputs: BoundArg[], outputs: BoundArg[], params: P): void {
    const impl = kernel.wasm;
    const f64 = [...inputs, ...outputs].some((a) => a.info.dtype === "f64");
    if (impl && !f64) {
      const arg = (a: BoundArg): WasmArg => ({ ...a.info, ptr: wasmStorage(a.storage).ptr });
      this.ctx.scoped(() => impl(inputs.map(arg), outputs.map(arg), params, this.ctx));
      return;
    }
    runCpuReference(kernel, inputs, outputs, params, (s) => this.view(s));
  }

  sync(): Promise<void> {
    return Promise.resolve();
  }

  describe(): string {
    const t = this.pool.threads;
    return `wasm (${describeFeatures(this.ctx.features)}; ${t} thread${t > 1 ? "s" : ""})`;
  }

  /** Stop the worker threads (the heap stays readable; later kernels run on one thread). */
  dispose(): void {
    this.pool.dispose();
  }

  /** `using backend = await WasmBackend.create()` disposes at scope end. */
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/** A WasmArg for a plain row-major array at `ptr` (tests and benchmarks). */
export function wasmArg(ptr: number, shape: number[], dtype: DType = "f32"): WasmArg {
  const strides = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const info: ArgInfo = { shape, strides, offset: 0, dtype };
  return { ...info, ptr };
}
