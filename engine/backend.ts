// The Backend interface: what a device must offer the engine (storage, transfers, running a
// kernel), and the Kernel shape every op in kernels/ provides (a CPU reference and WGSL).

import type { DType, TypedArray } from "./dtype.ts";

/** Names of the backends. */
export type BackendName = "cpu" | "webgpu";

/** Device memory holding `size` elements of `dtype`; opaque outside its backend. */
export interface Storage {
  readonly backend: BackendName;
  readonly dtype: DType;
  readonly size: number;
}

/** How a kernel argument's elements sit in its storage (row-major strides, in elements). */
export interface ArgInfo {
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
}

/** A kernel argument on the CPU: its layout plus the storage's whole typed array. */
export interface CpuArg extends ArgInfo {
  readonly data: TypedArray;
}

/** A compiled-on-demand WGSL launch: source, workgroup grid, and a uniform block if any. */
export interface WgslLaunch {
  source: string;
  grid: [number, number, number];
  uniforms?: ArrayBufferView;
}

/**
 * A kernel: one computation with a CPU reference and (optionally) WGSL. Bindings in WGSL are
 * group 0, inputs first (read-only storage), then outputs (read_write storage), then the
 * uniform block if `uniforms` is given.
 */
export interface Kernel<P> {
  readonly name: string;
  cpu(inputs: CpuArg[], outputs: TypedArray[], params: P): void;
  wgsl?(inputs: ArgInfo[], outputs: ArgInfo[], params: P): WgslLaunch;
}

/** An argument handed to a backend: storage plus layout. */
export interface BoundArg {
  storage: Storage;
  info: ArgInfo;
}

/** A device the engine can run on. */
export interface Backend {
  readonly name: BackendName;
  /** Allocate zero-or-garbage storage of `size` elements (contents unspecified). */
  alloc(size: number, dtype: DType): Storage;
  /** Allocate storage holding a copy of `data`. */
  upload(data: TypedArray, dtype: DType): Storage;
  /** Copy `data` into existing storage (ordered after all work already issued). */
  write(storage: Storage, data: TypedArray): void;
  /** Read a storage's elements back (waits for pending work). */
  read(storage: Storage): Promise<TypedArray>;
  /** Return storage to the backend (pool). */
  free(storage: Storage): void;
  /** Run `kernel` over inputs into outputs (outputs are written, never read unless passed twice). */
  run<P>(kernel: Kernel<P>, inputs: BoundArg[], outputs: BoundArg[], params: P): void;
  /** Wait until all issued work is done and surface any deferred device error. */
  sync(): Promise<void>;
  /** One line naming the device. */
  describe(): string;
}
