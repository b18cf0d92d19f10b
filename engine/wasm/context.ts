// What the wasm backend gives a kernel: the heap (its memory and views), the thread count, the
// runtime's features, a module cache (a kernel's module is built and compiled once per key and
// is then callable on every thread), `run` (a parallel call, see threads.ts) and scratch memory
// that lives until the kernel returns. A kernel's wasm implementation is a `WasmImpl`.

import type { ArgInfo } from "../backend.ts";
import { ModuleBuilder } from "./builder.ts";
import type { WasmFeatures } from "./features.ts";
import { BLOCK_ALIGN, type WasmHeap } from "./memory.ts";
import type { PoolModule, ThreadPool } from "./threads.ts";

/** A kernel argument on the wasm backend: its layout plus where its storage starts. */
export interface WasmArg extends ArgInfo {
  /** Byte address of the storage's element 0 in the heap (add offset · bytes per element). */
  readonly ptr: number;
}

/** A compiled kernel module, callable on every thread of the pool. */
export interface WasmKernelModule {
  /** The cache key it was built under. */
  readonly key: string;
  /** The pool's handle. */
  readonly pool: PoolModule;
}

/** The backend's services for a kernel's wasm implementation. */
export interface WasmContext {
  /** The heap (memory, typed-array views). */
  readonly heap: WasmHeap;
  /** Threads a parallel run may use (workers plus the calling thread). */
  readonly threads: number;
  /** What the runtime's WebAssembly offers. */
  readonly features: WasmFeatures;
  /**
   * The module built by `build` under `key` (built, validated and compiled the first time).
   * The builder arrives with the shared memory already imported as memory 0; every exported
   * function must take (tid: i32, nthreads: i32, ...) first.
   */
  module(key: string, build: (b: ModuleBuilder) => void): WasmKernelModule;
  /**
   * Call export `fn` as fn(tid, n, ...args) on n threads (at most `parallel`, default all):
   * the calling thread is tid 0; returns when every thread is done. Arguments are numbers
   * (i32 parameters take pointers and sizes, f32/f64 parameters take floats).
   */
  run(mod: WasmKernelModule, fn: string, args: readonly number[], parallel?: number): void;
  /** A 64-byte aligned temporary region of `bytes`, valid until the kernel returns. */
  scratch(bytes: number): number;
}

/** A kernel's wasm implementation: compute `outputs` (row-major) from `inputs`. */
export type WasmImpl<P> = (
  inputs: WasmArg[],
  outputs: WasmArg[],
  params: P,
  ctx: WasmContext,
) => void;

/** Thrown when a generated module does not validate; carries the key and V8's message. */
export class WasmCompileError extends Error {
  /** Always "WasmCompileError". */
  override name = "WasmCompileError";
}

/** The context over one heap and pool; `scoped` delimits a kernel's scratch lifetime. */
export class KernelContext implements WasmContext {
  readonly #modules = new Map<string, WasmKernelModule>();
  #arena = 0;
  #arenaBytes = 0;
  #used = 0;
  #overflow: number[] = [];
  #depth = 0;

  constructor(
    readonly heap: WasmHeap,
    readonly pool: ThreadPool,
    readonly features: WasmFeatures,
  ) {}

  /** Caps the threads kernels see (benchmarks and tests compare thread counts with it). */
  threadLimit = Infinity;

  /** Threads of the pool (at most threadLimit). */
  get threads(): number {
    return Math.max(1, Math.min(this.pool.threads, this.threadLimit));
  }

  module(key: string, build: (b: ModuleBuilder) => void): WasmKernelModule {
    let m = this.#modules.get(key);
    if (m) return m;
    const bytes = this.#bytes(key, build);
    let compiled: WebAssembly.Module;
    try {
      compiled = new WebAssembly.Module(bytes);
    } catch (e) {
      // Chrome refuses synchronous compiles over 4 KB on a page's main thread.
      throw new WasmCompileError(
        `wasm kernel module '${key}' could not be compiled synchronously here ` +
          `(${(e as Error).message}); compile it first with \`await ctx.prepare(key, build)\``,
      );
    }
    m = { key, pool: this.pool.register(bytes, compiled) };
    this.#modules.set(key, m);
    return m;
  }

  /**
   * Build and compile a module asynchronously ahead of its first use (a browser's main thread
   * compiles modules over 4 KB only this way); `module(key, …)` then finds it.
   */
  async prepare(key: string, build: (b: ModuleBuilder) => void): Promise<WasmKernelModule> {
    const have = this.#modules.get(key);
    if (have) return have;
    const bytes = this.#bytes(key, build);
    const compiled = await WebAssembly.compile(bytes);
    const m = this.#modules.get(key) ?? { key, pool: this.pool.register(bytes, compiled) };
    this.#modules.set(key, m);
    return m;
  }

  /** The validated bytes of a kernel module (memory 0 imported, then `build`). */
  #bytes(key: string, build: (b: ModuleBuilder) => void): Uint8Array<ArrayBuffer> {
    const b = new ModuleBuilder();
    b.importMemory({ min: 1, max: 65536, shared: this.heap.shared });
    build(b);
    const bytes = b.bytes();
    if (!WebAssembly.validate(bytes)) {
      let why = "invalid module";
      try {
        new WebAssembly.Module(bytes);
      } catch (e) {
        why = (e as Error).message;
      }
      throw new WasmCompileError(`wasm kernel module '${key}' does not validate: ${why}`);
    }
    return bytes;
  }

  run(mod: WasmKernelModule, fn: string, args: readonly number[], parallel?: number): void {
    const i = mod.pool.names.indexOf(fn);
    if (i < 0) throw new Error(`wasm kernel module '${mod.key}' has no export '${fn}'`);
    this.pool.run(mod.pool, i, args, Math.min(parallel ?? Infinity, this.threads));
  }

  scratch(bytes: number): number {
    if (this.#depth === 0) throw new Error("wasm: scratch memory outside a kernel (use scoped)");
    const start = Math.ceil(this.#used / BLOCK_ALIGN) * BLOCK_ALIGN;
    this.#used = start + bytes;
    if (this.#used <= this.#arenaBytes) return this.#arena + start;
    const ptr = this.heap.alloc(bytes, "kernel scratch");
    this.#overflow.push(ptr);
    return ptr;
  }

  /** Run `fn` (a kernel); scratch it takes is released when it returns. */
  scoped<T>(fn: () => T): T {
    this.#depth++;
    try {
      return fn();
    } finally {
      if (--this.#depth === 0) this.#release();
    }
  }

  /** Free overflow blocks; if there were any, regrow the arena to this kernel's total. */
  #release(): void {
    if (this.#overflow.length) {
      for (const p of this.#overflow) this.heap.free(p);
      this.#overflow = [];
      if (this.#arena) this.heap.free(this.#arena);
      this.#arenaBytes = this.#used;
      this.#arena = this.heap.alloc(this.#arenaBytes, "kernel scratch");
    }
    this.#used = 0;
  }

  /** Free the arena (the backend is being disposed). */
  dispose(): void {
    if (this.#arena) this.heap.free(this.#arena);
    this.#arena = 0;
    this.#arenaBytes = 0;
  }
}
