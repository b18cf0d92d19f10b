// The shared wasm machinery of elementwise kernels (what elementwiseWgsl is for WebGPU): every
// operand (inputs, outputs, in-place ones) is read or written through its own strides, so views
// with offsets and stride-0 broadcasts need no copy. The launch's shape is first collapsed: size-1
// dims dropped and neighbours merged wherever every operand steps through them contiguously (a
// row-major tensor becomes one run). What remains is an inner dim of length L and R outer dims.
// Each operand's inner stride puts it in a class: contiguous (v128 loads and stores), broadcast
// (one splat per run) or strided (four scalar loads into lanes, four lane stores). One module is
// built per (kernel, variant, dtypes, classes, R, fused multiply-add) and cached under that key;
// the kernel supplies only its per-vector code (EwBody.emit over VecMath values, wasm_math.ts).
//
// Work split: the N output elements are cut into T contiguous ranges, one per thread; each
// element is computed alone by the same code, so results never depend on T (the loop itself:
// wasm_loop.ts). Compute-bound bodies ask for groups of up to 8 vectors emitted interleaved.
// Launches whose work (elements × the body's cost) is under PARALLEL_WORK run on the calling
// thread alone: a fork/join costs 2-5 µs with spinning workers but ~210 µs from a parked one on
// this 2-vCPU machine (measured: the woken worker shares the caller's core and spins there for
// the pool's spinUs, 200 µs, after its share).
//
// Launch parameters go through a descriptor in kernel scratch (i32 words): N, L, the outer dims,
// then per operand its base address, inner and outer byte strides, then the scalars (f32 values,
// or raw 32-bit words when given as a Uint32Array).

import type { CpuArg, Kernel } from "../../engine/backend.ts";
import { ARRAY_TYPES, type DType, type TypedArray } from "../../engine/dtype.ts";
import type { WasmArg, WasmContext } from "../../engine/wasm/context.ts";
import type { FunctionBuilder } from "../../engine/wasm/builder.ts";
import type { V, VecMath } from "./wasm_math.ts";
import { buildEw, type Cls } from "./wasm_loop.ts";
import { collapse, requireSimd, threadsFor } from "./wasm_layout.ts";
import { isTranspose, runTranspose } from "./wasm_transpose.ts";

export {
  collapse,
  forceParallelWork,
  PARALLEL_WORK,
  requireSimd,
  threadsFor,
} from "./wasm_layout.ts";
export type { Collapsed } from "./wasm_layout.ts";

/** How the per-vector code uses an operand. */
export type Role = "in" | "out" | "inout";

/** One operand of an elementwise launch: its layout (the launch's shape) and role. */
export interface EwOperand {
  /** Shape (the launch's), strides, offset, dtype and heap address. */
  arg: WasmArg;
  /** Read, written, or both (in place). */
  role: Role;
}

/** What the per-vector code sees. */
export interface EwEmit {
  /** The function being built. */
  f: FunctionBuilder;
  /** Vector math of this emission's width (one local per interleaved vector in each V). */
  m: VecMath;
  /** The read operands ("in" and "inout") in operand order. */
  ins: V[];
  /** The scalars (f32, or i32 words when given as a Uint32Array), splat. */
  scalars: V[];
  /** The lanes' flat output indices (i32x4), when the body asked for them. */
  index: V | null;
  /** Each operand's dtype, in operand order. */
  dtypes: DType[];
}

/** An elementwise kernel's per-vector code. */
export interface EwBody {
  /** Part of the module key: what else the emitted code depends on (e.g. a baked constant). */
  variant?: string;
  /** Work per element relative to a copy (1); transcendentals are ~10. Picks single-thread. */
  cost?: number;
  /** Vectors interleaved per step (default 1; long dependency chains want 2-4). */
  width?: number;
  /** Provide `index`: each lane's flat position in the launch (row-major over its shape). */
  index?: boolean;
  /** Emit the code; returns the written operands' new values, in operand order. */
  emit(e: EwEmit): V[];
}

/** A body of one output computed from the read operands' values, in order. */
export function vexpr(
  value: (e: EwEmit, ...x: V[]) => V,
  opts: Omit<EwBody, "emit"> = {},
): EwBody {
  return { ...opts, emit: (e) => [value(e, ...e.ins)] };
}

const classOf = (s: number): Cls => (s === 1 ? "c" : s === 0 ? "b" : "s");

/**
 * Run an elementwise body over operands of one shape (the launch's), with `scalars` (numbers as
 * f32, or a Uint32Array of raw words). `name` keys the module (with the body's variant, dtypes
 * and layout classes).
 */
export function runElementwise(
  ctx: WasmContext,
  name: string,
  operands: EwOperand[],
  body: EwBody,
  scalars: readonly number[] | Uint32Array = [],
): void {
  const shape = operands[0].arg.shape;
  let n = 1;
  for (const d of shape) n *= d;
  if (n === 0) return;
  requireSimd(ctx, name);
  if (n >= TRANSPOSE_FIRST && n <= TRANSPOSE_MAX) operands = transposeInputs(ctx, operands);
  const { dims, strides } = collapse(shape, operands.map((o) => o.arg.strides));
  const R = dims.length - 1;
  const fused = ctx.features.relaxedSimd;
  // The key, built in one pass (this runs for every launch: ~1 µs of JS in all).
  let key = `ew|${name}|${body.variant ?? ""}|r${R}|${fused ? "fma" : "simd"}`;
  const classes: Cls[] = [];
  for (let k = 0; k < operands.length; k++) {
    const o = operands[k];
    const c = classOf(strides[k][R]);
    if (o.role !== "in" && c === "b") {
      throw new Error(`${name} (wasm): output ${k} has stride 0 (a broadcast view)`);
    }
    classes.push(c);
    key += `|${o.role}:${o.arg.dtype}:${c}`;
  }
  const mod = ctx.module(key, (b) =>
    buildEw(b, {
      roles: operands.map((o) => o.role),
      classes,
      dtypes: operands.map((o) => o.arg.dtype),
      outer: R,
      fused,
      body,
      scalars: scalars.length,
    }));
  const words = 2 + R + operands.length * (2 + R) + scalars.length;
  const desc = ctx.scratch(4 * words);
  const w = ctx.heap.i32(desc, words);
  let k = 0;
  w[k++] = n;
  w[k++] = dims[R];
  for (let d = 0; d < R; d++) w[k++] = dims[d];
  for (let i = 0; i < operands.length; i++) {
    const a = operands[i].arg;
    w[k++] = a.ptr + 4 * a.offset;
    w[k++] = 4 * strides[i][R];
    for (let d = 0; d < R; d++) w[k++] = 4 * strides[i][d];
  }
  if (scalars instanceof Uint32Array) w.set(scalars, k);
  else {
    for (const v of scalars) {
      F32[0] = v;
      w[k++] = F32_WORD[0];
    }
  }
  // A gathered (strided) operand costs four scalar loads a vector: ~4× a contiguous one.
  const gathers = classes.includes("s") ? 4 : 1;
  ctx.run(mod, "ew", [desc], threadsFor(ctx, n * (body.cost ?? 1) * gathers));
}

/**
 * Launches of TRANSPOSE_FIRST to TRANSPOSE_MAX elements copy transposed inputs first (see
 * below); larger ones read them lane by lane rather than hold a copy (16 MiB each) in scratch,
 * which the kernel context keeps at its largest size.
 */
const TRANSPOSE_FIRST = 1024;
const TRANSPOSE_MAX = 1 << 22;

/**
 * Inputs that are transposes of the launch's layout (a weight's gradient read as wᵀ) would be
 * read lane by lane, each lane from another cache line: copy each (once, however often it
 * appears) into row-major scratch through the 4×4 tiles of wasm_transpose.ts and read that
 * instead (a [512, 128] AdamW update with a transposed gradient: 94 → 64 µs on one thread).
 */
function transposeInputs(ctx: WasmContext, operands: EwOperand[]): EwOperand[] {
  const shape = operands[0].arg.shape;
  const rowMajor = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const n = rowMajor.length ? rowMajor[0] * shape[0] : 1;
  const done = new Map<string, WasmArg>();
  return operands.map((o) => {
    if (o.role !== "in" || !isTranspose(shape, o.arg.strides, rowMajor)) return o;
    const id = `${o.arg.ptr}:${o.arg.offset}:${o.arg.strides}`;
    let arg = done.get(id);
    if (!arg) {
      arg = { ...o.arg, strides: rowMajor, offset: 0, ptr: ctx.scratch(4 * n) };
      runTranspose(ctx, o.arg, arg);
      done.set(id, arg);
    }
    return { arg, role: o.role };
  });
}

const F32 = new Float32Array(1);
const F32_WORD = new Int32Array(F32.buffer);

/** A CPU argument over the heap: the elements `a` spans, seen from the first of them. */
export function heapCpuArg(ctx: WasmContext, a: WasmArg): CpuArg {
  let lo = a.offset;
  let hi = a.offset;
  a.shape.forEach((d, i) => {
    if (d === 0) return;
    const span = (d - 1) * a.strides[i];
    if (span < 0) lo += span;
    else hi += span;
  });
  const buffer = ctx.heap.buffer as ArrayBuffer;
  const data = new ARRAY_TYPES[a.dtype](buffer, a.ptr + 4 * lo, hi - lo + 1);
  return { ...a, data, offset: a.offset - lo };
}

/**
 * Run a kernel's CPU reference on heap views of row-major outputs: the documented path of dtypes
 * a wasm body does not cover (integer arithmetic, which no model runs on this backend).
 */
export function cpuOnHeap<P>(
  kernel: Pick<Kernel<P>, "cpu" | "name">,
  inputs: WasmArg[],
  outputs: WasmArg[],
  params: P,
  ctx: WasmContext,
): void {
  const outs: TypedArray[] = outputs.map((o) => {
    const n = o.shape.reduce((a, b) => a * b, 1);
    return new ARRAY_TYPES[o.dtype](ctx.heap.buffer as ArrayBuffer, o.ptr + 4 * o.offset, n);
  });
  kernel.cpu(inputs.map((a) => heapCpuArg(ctx, a)), outs, params);
}
