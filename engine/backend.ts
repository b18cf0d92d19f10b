// The Backend interface: what a device must offer the engine (storage, transfers, running a
// kernel), and the Kernel shape every op in kernels/ provides (a CPU reference and WGSL).

import type { DType, TypedArray } from "./dtype.ts";

/** Names of the backends. */
export type BackendName = "cpu" | "webgpu";

/** Device memory holding `size` elements of `dtype`; opaque outside its backend. */
export interface Storage {
  /** The backend that owns this memory. */
  readonly backend: BackendName;
  /** Element type. */
  readonly dtype: DType;
  /** Number of elements. */
  readonly size: number;
}

/** How a kernel argument's elements sit in its storage (row-major strides, in elements). */
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
 * A kernel: one computation with a CPU reference and (optionally) WGSL. Bindings in WGSL are
 * group 0, inputs first (read-only storage), then outputs (read_write storage), then the
 * uniform block if `uniforms` is given.
 */
export interface Kernel<P> {
  /** The kernel's name, used in errors and the pipeline cache. */
  readonly name: string;
  /** CPU reference: compute `outputs` (row-major) from `inputs`. */
  cpu(inputs: CpuArg[], outputs: TypedArray[], params: P): void;
  /**
   * WGSL source and launch grid for these argument layouts (absent: CPU only); `device`, when
   * the backend passes it, lets the kernel choose a variant suited to the adapter.
   */
  wgsl?(inputs: ArgInfo[], outputs: ArgInfo[], params: P, device?: DeviceTraits): WgslLaunch;
}

/** An argument handed to a backend: storage plus layout. */
export interface BoundArg {
  /** The memory. */
  storage: Storage;
  /** How the argument's elements sit in it. */
  info: ArgInfo;
}

/** A device the engine can run on. */
export interface Backend {
  /** Which backend this is. */
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
