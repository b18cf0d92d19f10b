// The Backend interface (what a device offers the engine: storage, transfers, running a kernel,
// and the traits kernels may consult) and the Kernel table every op in kernels/ fills: one
// implementation per backend name, checked by the type system. A backend that may lack a
// kernel names what runs instead in KERNEL_FALLBACK, the one place such a fallback is declared.

import type { DType, TypedArray } from "./dtype.ts";
// What a wasm implementation receives (heap addresses of its arguments; the heap, threads and
// compiled-once modules) is defined by the wasm backend and named here for the kernel tables.
import type { WasmArg, WasmContext } from "./wasm/context.ts";

export type { WasmArg, WasmContext };

/** Where a kernel argument's elements sit in its storage (row-major strides, in elements). */
export interface ArgInfo {
  /** Logical shape. */
  readonly shape: readonly number[];
  /** Elements to step in storage per index of each dimension. */
  readonly strides: readonly number[];
  /** Storage index of element [0, 0, ...]. */
  readonly offset: number;
  /** Element type. */
  readonly dtype: DType;
}

/** A kernel argument on the CPU: its layout plus the storage's whole typed array. */
export interface CpuArg extends ArgInfo {
  /** The whole storage (read it through shape, strides and offset). */
  readonly data: TypedArray;
}

/** Texel formats of staged textures: 4 floats, 4 words, or 1 word. */
export type StageFormat = "rgba32float" | "rgba32uint" | "r32uint";

/**
 * An input staged in a scratch texture of `format` (default `rgba32float`), `width` texels by
 * `height` rows by `layers`, bound to the launch's `main` as a read-only
 * `texture_storage_2d_array` in place of the input's buffer. It is filled from the input's buffer
 * either by `copy` (a copyBufferToTexture, where rows are contiguous and aligned) or by `fill`, a
 * kernel whose binding 0 is the input's buffer (read-only storage), 1 the texture
 * (`texture_storage_2d_array<format, write>`), 2 its uniform block. Textures come from a pool
 * and are free again once `main` is recorded.
 */
export interface TextureStage {
  /** Which input (binding) it replaces. */
  input: number;
  /** Texel format (default rgba32float). */
  format?: StageFormat;
  /** Texels per row. */
  width: number;
  /** Rows. */
  height: number;
  /** Array layers. */
  layers: number;
  /** A name for errors. */
  label: string;
  /** The kernel that fills the texture (entry point `main`), when there is no `copy`. */
  fill?: { source: string; grid: [number, number, number]; uniforms: ArrayBufferView };
  /** A buffer-to-texture copy of `size` texels × rows × layers from the input's buffer. */
  copy?: {
    offset: number;
    bytesPerRow: number;
    rowsPerImage: number;
    size: [number, number, number];
  };
}

/** A compiled-on-demand WGSL launch: source, workgroup grid, and a uniform block if any. */
export interface WgslLaunch {
  /** WGSL module source with entry point `main`. */
  source: string;
  /** Workgroups to dispatch in x, y, z. */
  grid: [number, number, number];
  /** Bytes of the uniform block, bound after the outputs. */
  uniforms?: ArrayBufferView;
  /**
   * Inputs the kernel reads from textures rather than storage buffers (see TextureStage): each
   * one's binding holds a scratch texture that its stage kernel fills just before `main` runs.
   */
  stages?: TextureStage[];
}

/** The read-only storage textures a device offers kernels (largest side and layer count). */
export interface TextureLimits {
  /** maxTextureDimension2D: texels per row, and rows. */
  readonly side: number;
  /** maxTextureArrayLayers. */
  readonly layers: number;
}

/**
 * What a kernel may know of the WebGPU device when it picks a WGSL variant (the fused row
 * kernels pick barrier-free code on software adapters, where workgroup barriers are costly).
 */
export interface DeviceTraits {
  /** The adapter is a software fallback (e.g. Mesa llvmpipe): invocations run on CPU cores. */
  readonly isFallback: boolean;
  /** WGSL `dot4I8Packed` (language feature packed_4x8_integer_dot_product) is available. */
  readonly hasDot4I8: boolean;
  /**
   * Present when kernels may read read-only storage textures (WGSL language feature
   * readonly_and_readwrite_storage_textures), i.e. may use WgslLaunch.stages.
   */
  readonly textures?: TextureLimits;
}

/**
 * The implementation a kernel gives each backend, by backend name. Bindings in WGSL are group
 * 0, inputs first (read-only storage), then outputs (read_write storage), then the uniform
 * block if the launch has `uniforms`. Outputs are row-major at their own offset 0 unless a
 * kernel documents otherwise; inputs are row-major at offset 0 unless the op is `strided`.
 */
export interface KernelImpls<P> {
  /** The TypeScript reference: compute `outputs` (row-major) from `inputs`. */
  cpu(inputs: CpuArg[], outputs: TypedArray[], params: P): void;
  /** WGSL source and launch grid for these argument layouts on a device with `device`'s traits. */
  webgpu(inputs: ArgInfo[], outputs: ArgInfo[], params: P, device: DeviceTraits): WgslLaunch;
  /** WebAssembly: compute the outputs in the backend's shared memory. */
  wasm(inputs: WasmArg[], outputs: WasmArg[], params: P, ctx: WasmContext): void;
}

/** The backends kernels are written for. */
export type KernelBackend = keyof KernelImpls<unknown>;

/**
 * Backends whose kernels may leave their implementation out, and which implementation runs in
 * its place. The wasm backend keeps its tensors in host-visible memory, so a kernel without a
 * wasm implementation runs its CPU reference on views of that memory, on one thread.
 */
export const KERNEL_FALLBACK = { wasm: "cpu" } as const satisfies Partial<
  Record<KernelBackend, KernelBackend>
>;

type Optional = keyof typeof KERNEL_FALLBACK;

/**
 * A kernel: one computation with one implementation per backend (those of KERNEL_FALLBACK may
 * be absent), so a new backend is a compile error in every kernel until it is served.
 */
export type Kernel<P> =
  & {
    /** The kernel's name, used in errors and the pipeline cache. */
    readonly name: string;
    /**
     * How to cut one launch into several whose arguments each fit `maxBytes`: each piece names
     * views of the same arguments (same storages, their own shape, strides and offset) and its
     * params. The engine uses it when an argument is larger than one binding of the device.
     */
    readonly split?: SplitRule<P>;
  }
  & { readonly [B in Exclude<KernelBackend, Optional>]: KernelImpls<P>[B] }
  & { readonly [B in Optional]?: KernelImpls<P>[B] };

/** One piece of a split launch: views of the original arguments and its parameters. */
export interface LaunchPiece<P> {
  /** Views of the inputs, in order (each over the same storage as the original). */
  inputs: ArgInfo[];
  /** Views of the outputs, in order. */
  outputs: ArgInfo[];
  /** The piece's parameters. */
  params: P;
}

/**
 * Cuts a launch into pieces whose every argument spans at most `maxBytes`, with each piece's
 * arguments starting on a multiple of `align` bytes. Returns null where the kernel cannot be cut
 * for these arguments (the engine then refuses with the sizes).
 */
export type SplitRule<P> = (
  inputs: ArgInfo[],
  outputs: ArgInfo[],
  params: P,
  limits: { maxBytes: number; align: number },
) => LaunchPiece<P>[] | null;

/** Device memory holding `size` elements of `dtype`; opaque outside its backend. */
export interface Storage {
  /** The backend that owns this memory. */
  readonly backend: BackendName;
  /** Element type. */
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
}

/** An argument handed to a backend: storage plus layout. */
export interface BoundArg {
  /** The memory. */
  storage: Storage;
  /** How the argument's elements sit in it. */
  info: ArgInfo;
}

/** What kernels and ops may know of a backend (no kernel names a backend's class). */
export interface BackendTraits {
  /**
   * The most bytes one kernel argument may span (a WebGPU storage binding). Larger tensors are
   * allocated whole and cut into launches of at most this much by the engine (Kernel.split).
   */
  readonly maxBindingBytes: number;
  /** Where pieces of a split launch may start, in bytes (WebGPU's storage offset alignment). */
  readonly bindingAlign: number;
  /** The most bytes one tensor may take. */
  readonly maxTensorBytes: number;
  /**
   * The most bytes all tensors together may take, where one memory holds them all (wasm: its
   * heap, 4 GiB in wasm32); absent where only the machine's memory bounds them.
   */
  readonly maxTotalBytes?: number;
  /**
   * Loop iterations an invocation may run in all before the device silently stops it (llvmpipe
   * ends an invocation after 65,535); Infinity where there is no such cap.
   */
  readonly maxLoopIterations: number;
  /** The WebGPU adapter's traits; absent on other backends. */
  readonly gpu?: DeviceTraits;
  /** Holds shapes only (the meta backend): creation functions draw and fill nothing. */
  readonly virtual?: boolean;
}

/** Names of the backends: the kernel backends and `meta`, which holds shapes only. */
export type BackendName = KernelBackend | "meta";

/** A device the engine can run on. */
export interface Backend {
  /** Which backend this is. */
  readonly name: BackendName;
  /** What kernels and ops may know of it. */
  readonly traits: BackendTraits;
  /**
   * Allocate zero-or-garbage storage of `size` elements (contents unspecified); `label` names
   * the tensor in the error when the backend's memory cannot hold it.
   */
  alloc(size: number, dtype: DType, label?: string): Storage;
  /** Allocate storage holding a copy of `data`. */
  upload(data: TypedArray, dtype: DType): Storage;
  /** Copy `data` into existing storage (ordered after all work already issued). */
  write(storage: Storage, data: TypedArray): void;
  /** Read a storage's elements back (waits for pending work). */
  read(storage: Storage): Promise<TypedArray>;
  /** Return storage to the backend (pool). */
  free(storage: Storage): void;
  /**
   * Run `kernel` over inputs into outputs (outputs are written, never read unless passed twice).
   * Arguments fit one binding here: the engine splits larger launches first (engine/op.ts).
   */
  run<P>(kernel: Kernel<P>, inputs: BoundArg[], outputs: BoundArg[], params: P): void;
  /** Wait until all issued work is done and surface any deferred device error. */
  sync(): Promise<void>;
  /** One line naming the device. */
  describe(): string;
  /** Release what the backend holds beyond tensors (worker threads); tensors stay readable. */
  dispose?(): void;
}
