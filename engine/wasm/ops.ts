// WebAssembly instruction tables for the module builder (builder.ts): opcode and stack signature
// of every plain instruction (no immediates) the kernels use, grouped by type as in the spec
// (https://webassembly.github.io/spec/core/binary/instructions.html, SIMD in 5.4.8, relaxed
// SIMD and threads in their proposals). Signatures read "operands:results" with i = i32,
// l = i64, f = f32, d = f64, v = v128; a test validates each entry against its signature.

/** One instruction: its opcode (after the prefix byte, if any) and stack signature. */
export type OpSpec = readonly [opcode: number, signature: string];

/** Scalar i32 instructions (one-byte opcodes). */
export const I32_OPS = {
  eqz: [0x45, "i:i"],
  eq: [0x46, "ii:i"],
  ne: [0x47, "ii:i"],
  ltS: [0x48, "ii:i"],
  ltU: [0x49, "ii:i"],
  gtS: [0x4a, "ii:i"],
  gtU: [0x4b, "ii:i"],
  leS: [0x4c, "ii:i"],
  leU: [0x4d, "ii:i"],
  geS: [0x4e, "ii:i"],
  geU: [0x4f, "ii:i"],
  clz: [0x67, "i:i"],
  ctz: [0x68, "i:i"],
  popcnt: [0x69, "i:i"],
  add: [0x6a, "ii:i"],
  sub: [0x6b, "ii:i"],
  mul: [0x6c, "ii:i"],
  divS: [0x6d, "ii:i"],
  divU: [0x6e, "ii:i"],
  remS: [0x6f, "ii:i"],
  remU: [0x70, "ii:i"],
  and: [0x71, "ii:i"],
  or: [0x72, "ii:i"],
  xor: [0x73, "ii:i"],
  shl: [0x74, "ii:i"],
  shrS: [0x75, "ii:i"],
  shrU: [0x76, "ii:i"],
  rotl: [0x77, "ii:i"],
  rotr: [0x78, "ii:i"],
  wrapI64: [0xa7, "l:i"],
  truncF32S: [0xa8, "f:i"],
  truncF64S: [0xaa, "d:i"],
  truncF64U: [0xab, "d:i"],
  reinterpretF32: [0xbc, "f:i"],
} as const satisfies Record<string, OpSpec>;

/** Scalar i64 instructions. */
export const I64_OPS = {
  eqz: [0x50, "l:i"],
  eq: [0x51, "ll:i"],
  ne: [0x52, "ll:i"],
  ltS: [0x53, "ll:i"],
  ltU: [0x54, "ll:i"],
  gtS: [0x55, "ll:i"],
  geS: [0x59, "ll:i"],
  add: [0x7c, "ll:l"],
  sub: [0x7d, "ll:l"],
  mul: [0x7e, "ll:l"],
  divS: [0x7f, "ll:l"],
  divU: [0x80, "ll:l"],
  and: [0x83, "ll:l"],
  or: [0x84, "ll:l"],
  xor: [0x85, "ll:l"],
  shl: [0x86, "ll:l"],
  shrS: [0x87, "ll:l"],
  shrU: [0x88, "ll:l"],
  extendI32S: [0xac, "i:l"],
  extendI32U: [0xad, "i:l"],
  reinterpretF64: [0xbd, "d:l"],
} as const satisfies Record<string, OpSpec>;

/** Scalar f32 instructions. */
export const F32_OPS = {
  eq: [0x5b, "ff:i"],
  ne: [0x5c, "ff:i"],
  lt: [0x5d, "ff:i"],
  gt: [0x5e, "ff:i"],
  le: [0x5f, "ff:i"],
  ge: [0x60, "ff:i"],
  abs: [0x8b, "f:f"],
  neg: [0x8c, "f:f"],
  ceil: [0x8d, "f:f"],
  floor: [0x8e, "f:f"],
  trunc: [0x8f, "f:f"],
  nearest: [0x90, "f:f"],
  sqrt: [0x91, "f:f"],
  add: [0x92, "ff:f"],
  sub: [0x93, "ff:f"],
  mul: [0x94, "ff:f"],
  div: [0x95, "ff:f"],
  min: [0x96, "ff:f"],
  max: [0x97, "ff:f"],
  convertI32S: [0xb2, "i:f"],
  convertI32U: [0xb3, "i:f"],
  demoteF64: [0xb6, "d:f"],
  reinterpretI32: [0xbe, "i:f"],
} as const satisfies Record<string, OpSpec>;

/** Scalar f64 instructions. */
export const F64_OPS = {
  eq: [0x61, "dd:i"],
  ne: [0x62, "dd:i"],
  lt: [0x63, "dd:i"],
  gt: [0x64, "dd:i"],
  le: [0x65, "dd:i"],
  ge: [0x66, "dd:i"],
  abs: [0x99, "d:d"],
  neg: [0x9a, "d:d"],
  ceil: [0x9b, "d:d"],
  floor: [0x9c, "d:d"],
  trunc: [0x9d, "d:d"],
  nearest: [0x9e, "d:d"],
  sqrt: [0x9f, "d:d"],
  add: [0xa0, "dd:d"],
  sub: [0xa1, "dd:d"],
  mul: [0xa2, "dd:d"],
  div: [0xa3, "dd:d"],
  min: [0xa4, "dd:d"],
  max: [0xa5, "dd:d"],
  copysign: [0xa6, "dd:d"],
  convertI32S: [0xb7, "i:d"],
  convertI32U: [0xb8, "i:d"],
  promoteF32: [0xbb, "f:d"],
  reinterpretI64: [0xbf, "l:d"],
} as const satisfies Record<string, OpSpec>;

/** Whole-vector v128 instructions (prefix 0xfd). */
export const V128_OPS = {
  not: [0x4d, "v:v"],
  and: [0x4e, "vv:v"],
  andnot: [0x4f, "vv:v"],
  or: [0x50, "vv:v"],
  xor: [0x51, "vv:v"],
  bitselect: [0x52, "vvv:v"],
  anyTrue: [0x53, "v:i"],
} as const satisfies Record<string, OpSpec>;

/** i8x16 lane-wise instructions (prefix 0xfd). */
export const I8X16_OPS = {
  swizzle: [0x0e, "vv:v"],
  splat: [0x0f, "i:v"],
  eq: [0x23, "vv:v"],
  abs: [0x60, "v:v"],
  neg: [0x61, "v:v"],
  allTrue: [0x63, "v:i"],
  bitmask: [0x64, "v:i"],
  narrowI16x8S: [0x65, "vv:v"],
  narrowI16x8U: [0x66, "vv:v"],
  shl: [0x6b, "vi:v"],
  shrS: [0x6c, "vi:v"],
  shrU: [0x6d, "vi:v"],
  add: [0x6e, "vv:v"],
  sub: [0x71, "vv:v"],
  minS: [0x76, "vv:v"],
  maxS: [0x78, "vv:v"],
  /** Relaxed SIMD: lanes of the first operand picked by the second (out of range: 0 or any). */
  relaxedSwizzle: [0x100, "vv:v"],
} as const satisfies Record<string, OpSpec>;

/** i16x8 lane-wise instructions (prefix 0xfd). */
export const I16X8_OPS = {
  splat: [0x10, "i:v"],
  eq: [0x2d, "vv:v"],
  extaddPairwiseI8x16S: [0x7c, "v:v"],
  extaddPairwiseI8x16U: [0x7d, "v:v"],
  abs: [0x80, "v:v"],
  neg: [0x81, "v:v"],
  narrowI32x4S: [0x85, "vv:v"],
  extendLowI8x16S: [0x87, "v:v"],
  extendHighI8x16S: [0x88, "v:v"],
  extendLowI8x16U: [0x89, "v:v"],
  extendHighI8x16U: [0x8a, "v:v"],
  shl: [0x8b, "vi:v"],
  shrS: [0x8c, "vi:v"],
  shrU: [0x8d, "vi:v"],
  add: [0x8e, "vv:v"],
  sub: [0x91, "vv:v"],
  mul: [0x95, "vv:v"],
  extmulLowI8x16S: [0x9c, "vv:v"],
  extmulHighI8x16S: [0x9d, "vv:v"],
  extmulLowI8x16U: [0x9e, "vv:v"],
  extmulHighI8x16U: [0x9f, "vv:v"],
  /** Relaxed SIMD: Σ of adjacent i8·i7 products into i16 lanes. */
  relaxedDotI8x16I7x16S: [0x112, "vv:v"],
} as const satisfies Record<string, OpSpec>;

/** i32x4 lane-wise instructions (prefix 0xfd). */
export const I32X4_OPS = {
  splat: [0x11, "i:v"],
  eq: [0x37, "vv:v"],
  ne: [0x38, "vv:v"],
  ltS: [0x39, "vv:v"],
  ltU: [0x3a, "vv:v"],
  gtS: [0x3b, "vv:v"],
  gtU: [0x3c, "vv:v"],
  leS: [0x3d, "vv:v"],
  leU: [0x3e, "vv:v"],
  geS: [0x3f, "vv:v"],
  geU: [0x40, "vv:v"],
  extaddPairwiseI16x8S: [0x7e, "v:v"],
  extaddPairwiseI16x8U: [0x7f, "v:v"],
  abs: [0xa0, "v:v"],
  neg: [0xa1, "v:v"],
  allTrue: [0xa3, "v:i"],
  bitmask: [0xa4, "v:i"],
  extendLowI16x8S: [0xa7, "v:v"],
  extendHighI16x8S: [0xa8, "v:v"],
  extendLowI16x8U: [0xa9, "v:v"],
  extendHighI16x8U: [0xaa, "v:v"],
  shl: [0xab, "vi:v"],
  shrS: [0xac, "vi:v"],
  shrU: [0xad, "vi:v"],
  add: [0xae, "vv:v"],
  sub: [0xb1, "vv:v"],
  mul: [0xb5, "vv:v"],
  minS: [0xb6, "vv:v"],
  minU: [0xb7, "vv:v"],
  maxS: [0xb8, "vv:v"],
  maxU: [0xb9, "vv:v"],
  dotI16x8S: [0xba, "vv:v"],
  extmulLowI16x8S: [0xbc, "vv:v"],
  extmulHighI16x8S: [0xbd, "vv:v"],
  truncSatF32x4S: [0xf8, "v:v"],
  /**
   * Relaxed SIMD: c + Σ of each 4 adjacent products a·b, a as i8, b as i7 (0..127; lanes of b
   * with the top bit set give implementation-defined results, so callers keep b below 128).
   */
  relaxedDotI8x16I7x16AddS: [0x113, "vvv:v"],
} as const satisfies Record<string, OpSpec>;

/** i64x2 lane-wise instructions (prefix 0xfd). */
export const I64X2_OPS = {
  splat: [0x12, "l:v"],
  add: [0xce, "vv:v"],
  sub: [0xd1, "vv:v"],
  mul: [0xd5, "vv:v"],
} as const satisfies Record<string, OpSpec>;

/** f32x4 lane-wise instructions (prefix 0xfd). */
export const F32X4_OPS = {
  splat: [0x13, "f:v"],
  eq: [0x41, "vv:v"],
  ne: [0x42, "vv:v"],
  lt: [0x43, "vv:v"],
  gt: [0x44, "vv:v"],
  le: [0x45, "vv:v"],
  ge: [0x46, "vv:v"],
  ceil: [0x67, "v:v"],
  floor: [0x68, "v:v"],
  trunc: [0x69, "v:v"],
  nearest: [0x6a, "v:v"],
  abs: [0xe0, "v:v"],
  neg: [0xe1, "v:v"],
  sqrt: [0xe3, "v:v"],
  add: [0xe4, "vv:v"],
  sub: [0xe5, "vv:v"],
  mul: [0xe6, "vv:v"],
  div: [0xe7, "vv:v"],
  min: [0xe8, "vv:v"],
  max: [0xe9, "vv:v"],
  pmin: [0xea, "vv:v"],
  pmax: [0xeb, "vv:v"],
  convertI32x4S: [0xfa, "v:v"],
  convertI32x4U: [0xfb, "v:v"],
  demoteF64x2Zero: [0x5e, "v:v"],
  /** Relaxed SIMD: a·b + c, fused or not (the runtime picks one and keeps it). */
  relaxedMadd: [0x105, "vvv:v"],
  /** Relaxed SIMD: -(a·b) + c, fused or not. */
  relaxedNmadd: [0x106, "vvv:v"],
  relaxedMin: [0x10d, "vv:v"],
  relaxedMax: [0x10e, "vv:v"],
} as const satisfies Record<string, OpSpec>;

/** f64x2 lane-wise instructions (prefix 0xfd). */
export const F64X2_OPS = {
  splat: [0x14, "d:v"],
  eq: [0x47, "vv:v"],
  ne: [0x48, "vv:v"],
  lt: [0x49, "vv:v"],
  gt: [0x4a, "vv:v"],
  le: [0x4b, "vv:v"],
  ge: [0x4c, "vv:v"],
  ceil: [0x74, "v:v"],
  floor: [0x75, "v:v"],
  trunc: [0x7a, "v:v"],
  nearest: [0x94, "v:v"],
  abs: [0xec, "v:v"],
  neg: [0xed, "v:v"],
  sqrt: [0xef, "v:v"],
  add: [0xf0, "vv:v"],
  sub: [0xf1, "vv:v"],
  mul: [0xf2, "vv:v"],
  div: [0xf3, "vv:v"],
  min: [0xf4, "vv:v"],
  max: [0xf5, "vv:v"],
  convertLowI32x4S: [0xfe, "v:v"],
  promoteLowF32x4: [0x5f, "v:v"],
  relaxedMadd: [0x107, "vvv:v"],
} as const satisfies Record<string, OpSpec>;

/** A memory instruction: opcode, natural alignment (log2 bytes), stack signature. */
export type MemSpec = readonly [opcode: number, align: number, signature: string];

/** Loads and stores; the address (i32) comes first. One-byte opcodes. */
export const SCALAR_MEM = {
  i32: {
    load: [0x28, 2, "i:i"],
    load8S: [0x2c, 0, "i:i"],
    load8U: [0x2d, 0, "i:i"],
    load16S: [0x2e, 1, "i:i"],
    load16U: [0x2f, 1, "i:i"],
    store: [0x36, 2, "ii:"],
    store8: [0x3a, 0, "ii:"],
    store16: [0x3b, 1, "ii:"],
  },
  i64: { load: [0x29, 3, "i:l"], store: [0x37, 3, "il:"] },
  f32: { load: [0x2a, 2, "i:f"], store: [0x38, 2, "if:"] },
  f64: { load: [0x2b, 3, "i:d"], store: [0x39, 3, "id:"] },
} as const satisfies Record<string, Record<string, MemSpec>>;

/** v128 loads and stores (prefix 0xfd). */
export const V128_MEM = {
  load: [0x00, 4, "i:v"],
  load8x8S: [0x01, 3, "i:v"],
  load8x8U: [0x02, 3, "i:v"],
  load16x4S: [0x03, 3, "i:v"],
  load32x2S: [0x05, 3, "i:v"],
  load8Splat: [0x07, 0, "i:v"],
  load16Splat: [0x08, 1, "i:v"],
  load32Splat: [0x09, 2, "i:v"],
  load64Splat: [0x0a, 3, "i:v"],
  store: [0x0b, 4, "iv:"],
  load32Zero: [0x5c, 2, "i:v"],
  load64Zero: [0x5d, 3, "i:v"],
} as const satisfies Record<string, MemSpec>;

/** i32 atomics (threads proposal, prefix 0xfe); alignment must be natural. */
export const ATOMIC_MEM = {
  /** Wake up to `count` waiters on the address; returns how many woke. */
  notify: [0x00, 2, "ii:i"],
  /** Wait while *addr == expected, at most timeout ns (i64, -1: forever); 0 ok, 1 not-equal, 2 timed out. */
  wait32: [0x01, 2, "iil:i"],
  load: [0x10, 2, "i:i"],
  store: [0x17, 2, "ii:"],
  rmwAdd: [0x1e, 2, "ii:i"],
  rmwSub: [0x25, 2, "ii:i"],
  rmwXchg: [0x41, 2, "ii:i"],
  rmwCmpxchg: [0x48, 2, "iii:i"],
} as const satisfies Record<string, MemSpec>;

/** Lane instructions with a lane-index immediate (prefix 0xfd): opcode, lanes, signature. */
export const LANE_OPS = {
  i8x16ExtractLaneS: [0x15, 16, "v:i"],
  i8x16ExtractLaneU: [0x16, 16, "v:i"],
  i8x16ReplaceLane: [0x17, 16, "vi:v"],
  i16x8ExtractLaneS: [0x18, 8, "v:i"],
  i16x8ReplaceLane: [0x1a, 8, "vi:v"],
  i32x4ExtractLane: [0x1b, 4, "v:i"],
  i32x4ReplaceLane: [0x1c, 4, "vi:v"],
  i64x2ExtractLane: [0x1d, 2, "v:l"],
  f32x4ExtractLane: [0x1f, 4, "v:f"],
  f32x4ReplaceLane: [0x20, 4, "vf:v"],
  f64x2ExtractLane: [0x21, 2, "v:d"],
  f64x2ReplaceLane: [0x22, 2, "vd:v"],
} as const satisfies Record<string, MemSpec>;
