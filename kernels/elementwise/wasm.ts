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
// Work split: the N output elements are cut into T contiguous ranges on 16-element boundaries,
// one per thread (results never depend on T: each element is computed alone, by the same code,
// whatever its position). A thread walks its range run by run: the run's start address per
// operand comes from an odometer over the R outer dims. In a run, groups of `width` vectors go
// through the body emitted `width` times interleaved (compute-bound bodies ask for 2-4), the
// remaining whole vectors one at a time, and the last 1-3 elements through the same one-vector
// code, their lanes loaded from clamped addresses (lanes past the end repeat the last element)
// and stored highest lane first, so each element ends up with its own lane's value and nothing
// past the run is touched. Launches whose work (elements × the body's cost) is under
// PARALLEL_WORK run on the calling thread alone: a fork/join costs 2-5 µs with spinning workers
// but ~210 µs from a parked one on this 2-vCPU machine (measured: the woken worker shares the
// caller's core and spins there for the pool's spinUs, 200 µs, after its share).
//
// Launch parameters go through a descriptor in kernel scratch (i32 words): N, L, the outer dims,
// then per operand its base address, inner and outer byte strides, then the scalars (f32 values,
// or raw 32-bit words when given as a Uint32Array).

import type { CpuArg, Kernel } from "../../engine/backend.ts";
import { ARRAY_TYPES, type DType, type TypedArray } from "../../engine/dtype.ts";
import type { WasmArg, WasmContext } from "../../engine/wasm/context.ts";
import {
  FunctionBuilder,
  type Local,
  type ModuleBuilder,
  type ValType,
} from "../../engine/wasm/builder.ts";
import { ConstPool, type V, VecMath } from "./wasm_math.ts";

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

/**
 * Element-cost units under which a launch stays on the calling thread. Memory-bound launches of
 * baby GPT's sizes (10^5 elements) gain little from a second thread here (the two cores share
 * the L3 bandwidth: add of 393,216: 55.8 µs on one, 54.0 on two), while waking a parked worker
 * costs about the pool's spin time (~210 µs, see the header); so a launch needs 2^20 units: a
 * copy of 10^6 elements, a GELU of 87,000.
 */
export const PARALLEL_WORK = 1 << 20;
let parallelWork = PARALLEL_WORK;

/** Threads for a launch of `work` element-cost units (all of ctx's, or the caller alone). */
export function threadsFor(ctx: WasmContext, work: number): number {
  return work >= parallelWork ? ctx.threads : 1;
}

/**
 * Set the work under which launches stay on one thread (tests lower it to split small launches
 * over the threads); null restores PARALLEL_WORK.
 */
export function forceParallelWork(units: number | null): void {
  parallelWork = units ?? PARALLEL_WORK;
}

type Cls = "c" | "b" | "s";

/** The collapsed iteration space: dims (inner last) and each operand's strides over them. */
export interface Collapsed {
  /** Dims, outer to inner (at least one). */
  dims: number[];
  /** Per operand, its strides over `dims` (elements). */
  strides: number[][];
}

/**
 * Drop size-1 dims and merge each dim into its inner neighbour where every operand steps
 * through the pair contiguously (stride[d] = stride[d+1]·dims[d+1]).
 */
export function collapse(
  shape: readonly number[],
  strides: readonly (readonly number[])[],
): Collapsed {
  const dims: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = dims.length - 1;
    if (last >= 0 && strides.every((s, o) => st[o][last] === s[d] * shape[d])) {
      dims[last] *= shape[d];
      strides.forEach((s, o) => (st[o][last] = s[d]));
    } else {
      dims.push(shape[d]);
      strides.forEach((s, o) => st[o].push(s[d]));
    }
  }
  if (dims.length === 0) return { dims: [1], strides: strides.map(() => [1]) };
  return { dims, strides: st };
}

const classOf = (s: number): Cls => (s === 1 ? "c" : s === 0 ? "b" : "s");

/** Plan of one module: what the code is specialised on. */
interface EwPlan {
  roles: Role[];
  classes: Cls[];
  dtypes: DType[];
  outer: number;
  scalars: number;
  fused: boolean;
  body: EwBody;
}

/** The per-operand locals of one function. */
interface OpLocals {
  /** Current address (bytes). */
  p: Local;
  /** Inner stride (bytes) and 4 · it. */
  inner: Local;
  step: Local;
  /** Lane byte offsets: j · inner (main loops) and min(j, t − 1) · inner (tail). */
  lanes: Local[];
  tails: Local[];
  /** The splat of a broadcast operand's element in the current run. */
  splat: Local | null;
}

/** Load vector j (of a group) of an operand: whole, gathered lane by lane, or the run's splat. */
function load(f: FunctionBuilder, cls: Cls, o: OpLocals, j: number, tail: boolean, tmp: Local) {
  if (cls === "b") return f.get(o.splat!);
  if (cls === "c" && !tail) return (f.get(o.p), f.v128.load(16 * j, 0));
  const lanes = tail ? o.tails : o.lanes;
  f.set(tmp, () => f.add(o.p, () => f.mul(o.step, j)));
  (f.get(tmp), f.v128.load32Zero(0, 0));
  for (let l = 1; l < 4; l++) (f.add(tmp, lanes[l]), f.i32.load(0, 0), f.i32x4.replaceLane(l));
}

/** Store vector j of a group to an operand, lane by lane highest first when not contiguous. */
function store(
  f: FunctionBuilder,
  cls: Cls,
  o: OpLocals,
  j: number,
  tail: boolean,
  v: Local,
  tmp: Local,
) {
  if (cls === "c" && !tail) return (f.get(o.p), f.get(v), f.v128.store(16 * j, 0));
  const lanes = tail ? o.tails : o.lanes;
  f.set(tmp, () => f.add(o.p, () => f.mul(o.step, j)));
  for (let l = 3; l >= 0; l--) {
    if (l === 0) f.get(tmp);
    else f.add(tmp, lanes[l]);
    (f.get(v), f.i32x4.extractLane(l), f.i32.store(0, 0));
  }
}

const EW_PARAMS: ValType[] = ["i32", "i32", "i32"];

/**
 * The exported `ew(tid, n, desc)` of one plan, emitted twice: once into a scratch function to
 * collect the body's constants, then for real with them hoisted out of the loops.
 */
function buildEw(b: ModuleBuilder, plan: EwPlan): void {
  const consts = new ConstPool();
  const probe = new FunctionBuilder({ index: 0, name: "probe", params: EW_PARAMS, results: [] });
  emitEw(probe, plan, consts);
  b.export("ew", EW_PARAMS, [], (f) => emitEw(f, plan, consts));
}

/** The body of `ew` (see the header). */
function emitEw(f: FunctionBuilder, plan: EwPlan, consts: ConstPool): void {
  const { roles, classes, outer: R, body } = plan;
  const W = body.width ?? 1;
  const [tid, nth, desc] = f.params;
  const i32 = () => f.local("i32");
  const [N, L, s, e, r, col, seg, t, flat, tmp] = Array.from({ length: 10 }, i32);
  const D = Array.from({ length: R }, i32);
  const idx = Array.from({ length: R }, i32);
  const ops: OpLocals[] = roles.map((_, o) => ({
    p: i32(),
    inner: i32(),
    step: i32(),
    lanes: [i32(), i32(), i32(), i32()],
    tails: [i32(), i32(), i32(), i32()],
    splat: classes[o] === "b" && roles[o] !== "out" ? f.local("v128") : null,
  }));
  const base = roles.map(i32);
  const row = roles.map(i32);
  const st = roles.map(() => Array.from({ length: R }, i32));
  let w = 0;
  const word = () => (f.get(desc), f.i32.load(4 * w++));
  f.set(N, word);
  f.set(L, word);
  D.forEach((d) => f.set(d, word));
  ops.forEach((o, k) => {
    f.set(base[k], word);
    f.set(o.inner, word);
    st[k].forEach((x) => f.set(x, word));
    f.set(o.step, () => f.mul(o.inner, 4));
    for (let l = 1; l < 4; l++) f.set(o.lanes[l], () => f.mul(o.inner, l));
  });
  const scalars = Array.from({ length: plan.scalars }, (_, k) => {
    const l = f.local("v128");
    (f.get(desc), f.v128.load32Splat(4 * (w + k)), f.set(l));
    return l;
  });
  consts.hoist(f);
  // This thread's range [s, e), on 16-element boundaries.
  const blocks = () => (f.add(N, 15), f.i32.const(4), f.i32.shrU());
  f.set(s, () => f.mul(() => f.mulDiv(blocks, tid, nth), 16));
  f.set(e, () => f.min(N, () => f.mul(() => f.mulDiv(blocks, () => f.add(tid, 1), nth), 16)));
  (f.get(s), f.get(e), f.i32.geS(), f.if(), f.return(), f.end());
  // Row r = s / L and its outer index; each operand's row start.
  f.set(r, () => (f.get(s), f.get(L), f.i32.divU()));
  f.set(col, () => f.sub(s, () => f.mul(r, L)));
  for (let d = R - 1; d >= 0; d--) {
    f.set(idx[d], () => (f.get(r), f.get(D[d]), f.i32.remU()));
    f.set(r, () => (f.get(r), f.get(D[d]), f.i32.divU()));
  }
  row.forEach((x, k) => {
    f.set(x, base[k]);
    for (let d = 0; d < R; d++) f.inc(x, () => f.mul(idx[d], st[k][d]));
  });
  const iota = f.local("v128");
  (f.i32x4.const([0, 1, 2, 3]), f.set(iota));
  // One step of `width` vectors (tail: one vector of 1-3 elements).
  const vectors = (width: number, tail: boolean) => {
    const m = new VecMath(f, plan.fused, width, consts);
    const all = (l: Local) => m.all(l);
    const index = body.index
      ? m.map((
        j,
      ) => (f.get(flat),
        f.i32.const(4 * j),
        f.i32.add(),
        f.i32x4.splat(),
        f.get(iota),
        f.i32x4.add())
      )
      : null;
    const ins = ops.flatMap((o, k) =>
      roles[k] === "out" ? [] : [m.map((j) => load(f, classes[k], o, j, tail, tmp))]
    );
    const outs = body.emit({ f, m, ins, scalars: scalars.map(all), index, dtypes: plan.dtypes });
    let n = 0;
    ops.forEach((o, k) => {
      if (roles[k] === "in") return;
      const v = outs[n++];
      for (let j = 0; j < width; j++) store(f, classes[k], o, j, tail, v[j], tmp);
    });
  };
  const advance = (vecs: number) => {
    ops.forEach((o, k) => classes[k] !== "b" && f.inc(o.p, () => f.mul(o.step, vecs)));
    if (body.index) f.inc(flat, 4 * vecs);
  };
  const runs = f.block();
  const next = f.loop();
  f.set(seg, () => f.min(() => f.sub(L, col), () => f.sub(e, s)));
  ops.forEach((o, k) => {
    f.set(o.p, () => f.add(row[k], () => f.mul(col, o.inner)));
    if (o.splat) (f.get(o.p), f.v128.load32Splat(0, 0), f.set(o.splat));
  });
  if (body.index) f.set(flat, s);
  f.repeat(() => (f.get(seg), f.i32.const(2 + Math.log2(W)), f.i32.shrU()), () => {
    vectors(W, false);
    advance(W);
  });
  if (W > 1) {
    f.repeat(
      () => (f.get(seg), f.i32.const(2), f.i32.shrU(), f.i32.const(W - 1), f.i32.and()),
      () => {
        vectors(1, false);
        advance(1);
      },
    );
  }
  // Tail of 1-3 elements: lane j at min(j, t − 1) · stride.
  f.set(t, () => (f.get(seg), f.i32.const(3), f.i32.and()));
  f.get(t);
  f.if();
  ops.forEach((o, k) => {
    if (classes[k] === "b") return;
    for (let l = 1; l < 4; l++) {
      f.set(o.tails[l], () => f.mul(() => f.min(l, () => f.sub(t, 1)), o.inner));
    }
  });
  vectors(1, true);
  f.end();
  f.inc(s, seg);
  (f.get(s), f.get(e), f.i32.geS(), f.brIf(runs));
  f.set(col, 0);
  odometer(f, idx, D, row, st);
  f.br(next);
  f.end();
  f.end();
}

/** Advance the outer index by one row, carrying into outer dims, and each operand's row start. */
function odometer(f: FunctionBuilder, idx: Local[], D: Local[], row: Local[], st: Local[][]) {
  if (idx.length === 0) return;
  const done = f.block();
  for (let d = idx.length - 1; d >= 0; d--) {
    f.inc(idx[d]);
    row.forEach((x, o) => f.inc(x, st[o][d]));
    (f.get(idx[d]), f.get(D[d]), f.i32.ltS(), f.brIf(done));
    f.set(idx[d], 0);
    row.forEach((x, o) => f.set(x, () => f.sub(x, () => f.mul(D[d], st[o][d]))));
  }
  f.end();
}

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
