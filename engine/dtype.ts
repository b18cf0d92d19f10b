// Element types, their typed-array constructors and WGSL spellings.
// f64 exists only on the CPU backend (for float64 gradient checks); u32 holds packed data.

/** An element type of a tensor. */
export type DType = "f32" | "f64" | "i32" | "u32";

/** Any typed array a tensor's storage can be read into. */
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint32Array;

/** Typed-array constructor for each dtype. */
export const ARRAY_TYPES = {
  f32: Float32Array,
  f64: Float64Array,
  i32: Int32Array,
  u32: Uint32Array,
} as const;

/** Bytes per element. */
export function byteSize(dtype: DType): number {
  return dtype === "f64" ? 8 : 4;
}

/** A fresh zeroed typed array of `n` elements of `dtype`. */
export function allocArray(dtype: DType, n: number): TypedArray {
  return new ARRAY_TYPES[dtype](n);
}

/** Is this dtype a floating-point type (differentiable)? */
export function isFloat(dtype: DType): boolean {
  return dtype === "f32" || dtype === "f64";
}

/** The WGSL scalar type that stores `dtype`. */
export function wgslType(dtype: DType): "f32" | "i32" | "u32" {
  if (dtype === "f64") throw new Error("f64 tensors exist only on the cpu backend");
  return dtype;
}
