// The shared wasm machinery of elementwise kernels (what elementwiseWgsl is for WebGPU): every
// operand (inputs, outputs, in-place ones) is read or written through its own strides, so views
// with offsets and stride-0 broadcasts need no copy. The launch's shape is first collapsed: size-1
// dims dropped and neighbours merged wherever every operand steps through them contiguously (a
// row-major tensor becomes one run). What remains is an inner dim of length L and R outer dims.
// Each operand's inner stride puts it in a class: contiguous (v128 loads and stores), broadcast
// (one splat per run) or strided (four scalar loads into lanes, four lane stores). One module is
// built per (kernel, variant, dtypes, classes, R, fused multiply-add) and cached under that key;
// the kernel supplies only its per-vector code (EwBody.emit, over f32x4 locals).
//
// Work split: the N output elements are cut into T contiguous ranges on 16-element boundaries,
// one per thread (results never depend on T: each element is computed alone, by the same code,
// whatever its position). A thread walks its range run by run: the run's start address per
// operand comes from an odometer over the R outer dims. In a run, whole vectors go through the
// SIMD loop; the last 1-3 elements through the same vector code, their lanes loaded from clamped
// addresses (lanes past the end repeat the last element) and stored highest lane first, so each
// element ends up with its own lane's value and nothing past the run is touched. Launches whose
// work (elements × the body's cost) is under PARALLEL_WORK run on the calling thread alone.
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
import { ConstPool, VecMath } from "./wasm_math.ts";

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
  /** Vector math helpers (transcendentals, multiply-add). */
  m: VecMath;
  /** One v128 local per read operand ("in" and "inout"), in operand order. */
  ins: Local[];
  /** One v128 local per written operand, in operand order: the code must set each. */
  outs: Local[];
  /** The scalars, splat into v128 locals (f32, or i32 words when given as a Uint32Array). */
  scalars: Local[];
  /** The lanes' flat output indices (i32x4), when the body asked for them. */
  index: Local | null;
  /** Each operand's dtype, in operand order. */
  dtypes: DType[];
}

/** An elementwise kernel's per-vector code. */
export interface EwBody {
  /** Part of the module key: what else the emitted code depends on (e.g. a baked constant). */
  variant?: string;
  /** Work per element relative to a copy (1); transcendentals are ~10. Picks single-thread. */
  cost?: number;
  /** Provide `index`: each lane's flat position in the launch (row-major over its shape). */
  index?: boolean;
  /** Emit code that sets every `outs` local from `ins`, `scalars` and `index`. */
  emit(e: EwEmit): void;
}

/**
 * A body of one output: `push` leaves it (an f32x4) on the stack, from the read operands'
 * vectors in order.
 */
export function vexpr(
  push: (e: EwEmit, ...x: Local[]) => void,
  opts: Omit<EwBody, "emit"> = {},
): EwBody {
  return {
    ...opts,
    emit(e) {
      push(e, ...e.ins);
      e.f.set(e.outs[0]);
    },
  };
}

/** Element-cost units under which a launch stays on the calling thread (see the bench). */
export const PARALLEL_WORK = 1 << 15;

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
  const keep = shape.map((_, d) => d).filter((d) => shape[d] !== 1);
  const dims: number[] = [];
  const st: number[][] = strides.map(() => []);
  for (const d of keep) {
    const last = dims.length - 1;
    const merge = last >= 0 && strides.every((s, o) => st[o][last] === s[d] * shape[d]);
    if (merge) {
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

/** Emit the load of operand vectors at clamped lane addresses (tail) or whole (main loop). */
function loadOperand(
  f: FunctionBuilder,
  cls: Cls,
  p: Local,
  lanes: Local[] | null,
  splat: Local | null,
): void {
  if (cls === "b") return f.get(splat!);
  if (lanes === null && cls === "c") {
    f.get(p);
    f.v128.load(0, 0);
    return;
  }
  // Four scalar loads: lane j at p + off[j] (off from `lanes`, or j·stride in the main loop).
  f.get(p);
  f.v128.load32Zero(0, 0);
  for (let j = 1; j < 4; j++) {
    f.add(p, lanes![j]);
    f.i32.load(0, 0);
    f.i32x4.replaceLane(j);
  }
}

/** Emit the store of a vector to an operand, highest lane first (see the header). */
function storeOperand(f: FunctionBuilder, cls: Cls, p: Local, lanes: Local[] | null, v: Local) {
  if (lanes === null && cls === "c") {
    f.get(p);
    f.get(v);
    f.v128.store(0, 0);
    return;
  }
  for (let j = 3; j >= 0; j--) {
    if (j === 0) f.get(p);
    else f.add(p, lanes![j]);
    f.get(v);
    f.i32x4.extractLane(j);
    f.i32.store(0, 0);
  }
}

const EW_PARAMS: ValType[] = ["i32", "i32", "i32"];

/**
 * The exported `ew(tid, n, desc)` of one plan, emitted twice: once into a scratch function to
 * collect the body's constants, then for real with them hoisted out of the loops.
 */
function buildEw(b: ModuleBuilder, plan: EwPlan): void {
  const consts = new ConstPool();
  emitEw(
    new FunctionBuilder({ index: 0, name: "probe", params: EW_PARAMS, results: [] }),
    plan,
    consts,
  );
  b.export("ew", EW_PARAMS, [], (f) => emitEw(f, plan, consts));
}

/** The body of `ew` (see the header). */
function emitEw(f: FunctionBuilder, plan: EwPlan, consts: ConstPool): void {
  const { roles, classes, outer: R, body } = plan;
  const nOps = roles.length;
  {
    const [tid, nth, desc] = f.params;
    const i32 = () => f.local("i32");
    const [N, L, s, e, r, col, seg, cnt, t, flat] = Array.from({ length: 10 }, i32);
    const D = Array.from({ length: R }, i32);
    const idx = Array.from({ length: R }, i32);
    const base = roles.map(i32);
    const inner = roles.map(i32);
    const st = roles.map(() => Array.from({ length: R }, i32));
    const row = roles.map(i32);
    const p = roles.map(i32);
    const step = roles.map(i32); // 4 · inner stride (bytes)
    const lanes = roles.map(() => [i32(), i32(), i32(), i32()]); // strided: j · inner stride
    const tails = roles.map(() => [i32(), i32(), i32(), i32()]); // tail: min(j, t − 1) · stride
    const word = (k: number) => (f.get(desc), f.i32.load(4 * k));
    let w = 0;
    f.set(N, () => word(w++));
    f.set(L, () => word(w++));
    D.forEach((d) => f.set(d, () => word(w++)));
    for (let o = 0; o < nOps; o++) {
      f.set(base[o], () => word(w++));
      f.set(inner[o], () => word(w++));
      st[o].forEach((x) => f.set(x, () => word(w++)));
      f.set(step[o], () => f.mul(inner[o], 4));
    }
    const scalars = Array.from({ length: plan.scalars }, (_, k) => {
      const l = f.local("v128");
      f.get(desc);
      f.v128.load32Splat(4 * (w + k));
      f.set(l);
      return l;
    });
    // This thread's range [s, e), on 16-element boundaries.
    const blocks = () => (f.add(N, 15), f.i32.const(4), f.i32.shrU());
    f.set(s, () => f.mul(() => f.mulDiv(blocks, tid, nth), 16));
    f.set(e, () => f.min(N, () => f.mul(() => f.mulDiv(blocks, () => f.add(tid, 1), nth), 16)));
    f.get(s);
    f.get(e);
    f.i32.geS();
    f.if();
    f.return();
    f.end();
    // Row r = s / L and its outer index; each operand's row start.
    f.set(r, () => (f.get(s), f.get(L), f.i32.divU()));
    f.set(col, () => f.sub(s, () => f.mul(r, L)));
    for (let d = R - 1; d >= 0; d--) {
      f.set(idx[d], () => (f.get(r), f.get(D[d]), f.i32.remU()));
      f.set(r, () => (f.get(r), f.get(D[d]), f.i32.divU()));
    }
    for (let o = 0; o < nOps; o++) {
      f.set(row[o], base[o]);
      for (let d = 0; d < R; d++) f.inc(row[o], () => f.mul(idx[d], st[o][d]));
    }
    const vin = roles.map((ro) => (ro === "out" ? null : f.local("v128")));
    const vout = roles.map((ro) => (ro === "in" ? null : f.local("v128")));
    const splat = classes.map((c, o) => (c === "b" && roles[o] !== "out" ? f.local("v128") : null));
    const index = body.index ? f.local("v128") : null;
    const m = new VecMath(f, plan.fused, consts);
    consts.hoist(f);
    const iota = m.let(() => f.i32x4.const([0, 1, 2, 3]));
    const emit = () =>
      body.emit({
        f,
        m,
        ins: vin.filter((v): v is Local => v !== null),
        outs: vout.filter((v): v is Local => v !== null),
        scalars,
        index,
        dtypes: plan.dtypes,
      });
    const vector = (tail: boolean) => {
      if (index) {
        f.get(flat);
        f.i32x4.splat();
        f.get(iota);
        f.i32x4.add();
        f.set(index);
      }
      for (let o = 0; o < nOps; o++) {
        if (vin[o] === null) continue;
        loadOperand(
          f,
          classes[o],
          p[o],
          tail ? tails[o] : classes[o] === "s" ? lanes[o] : null,
          splat[o],
        );
        f.set(vin[o]!);
      }
      emit();
      for (let o = 0; o < nOps; o++) {
        if (vout[o] === null) continue;
        storeOperand(
          f,
          classes[o],
          p[o],
          tail ? tails[o] : classes[o] === "s" ? lanes[o] : null,
          vout[o]!,
        );
      }
    };
    // Strided operands: lane offsets j·stride for the main loop.
    for (let o = 0; o < nOps; o++) {
      if (classes[o] !== "s") continue;
      for (let j = 1; j < 4; j++) f.set(lanes[o][j], () => f.mul(inner[o], j));
    }
    const runs = f.block();
    const next = f.loop();
    f.set(seg, () => f.min(() => f.sub(L, col), () => f.sub(e, s)));
    for (let o = 0; o < nOps; o++) {
      f.set(p[o], () => f.add(row[o], () => f.mul(col, inner[o])));
      if (splat[o]) {
        f.get(p[o]);
        f.v128.load32Splat(0, 0);
        f.set(splat[o]!);
      }
    }
    if (index) f.set(flat, s);
    f.set(cnt, () => (f.get(seg), f.i32.const(2), f.i32.shrU()));
    f.repeat(cnt, () => {
      vector(false);
      for (let o = 0; o < nOps; o++) if (classes[o] !== "b") f.inc(p[o], step[o]);
      if (index) f.inc(flat, 4);
    });
    // Tail of 1-3 elements: lane j at min(j, t − 1) · stride.
    f.set(t, () => (f.get(seg), f.i32.const(3), f.i32.and()));
    f.get(t);
    f.if();
    for (let o = 0; o < nOps; o++) {
      if (classes[o] === "b") continue;
      for (let j = 1; j < 4; j++) {
        f.set(tails[o][j], () => f.mul(() => f.min(j, () => f.sub(t, 1)), inner[o]));
      }
    }
    vector(true);
    f.end();
    f.inc(s, seg);
    f.get(s);
    f.get(e);
    f.i32.geS();
    f.brIf(runs);
    f.set(col, 0);
    odometer(f, R, idx, D, row, st);
    f.br(next);
    f.end();
    f.end();
  }
}

/** Advance the outer index by one row, carrying into outer dims, and each operand's row start. */
function odometer(
  f: FunctionBuilder,
  R: number,
  idx: Local[],
  D: Local[],
  row: Local[],
  st: Local[][],
) {
  if (R === 0) return;
  const done = f.block();
  for (let d = R - 1; d >= 0; d--) {
    f.inc(idx[d]);
    row.forEach((x, o) => f.inc(x, st[o][d]));
    f.get(idx[d]);
    f.get(D[d]);
    f.i32.ltS();
    f.brIf(done);
    f.set(idx[d], 0);
    row.forEach((x, o) => f.set(x, () => f.sub(x, () => f.mul(D[d], st[o][d]))));
  }
  f.end();
}

/**
 * Run an elementwise body over operands of one shape (the launch's), with `scalars` (numbers as
 * f32, or a Uint32Array of raw words).
 * `name` keys the module (with the body's variant, dtypes and layout classes).
 */
export function runElementwise(
  ctx: WasmContext,
  name: string,
  operands: EwOperand[],
  body: EwBody,
  scalars: readonly number[] | Uint32Array = [],
): void {
  const shape = operands[0].arg.shape;
  const n = shape.reduce((a, b) => a * b, 1);
  if (n === 0) return;
  const { dims, strides } = collapse(shape, operands.map((o) => o.arg.strides));
  const R = dims.length - 1;
  const classes = strides.map((s) => classOf(s[R]));
  operands.forEach((o, k) => {
    if (o.role !== "in" && classes[k] === "b" && dims[R] > 1) {
      throw new Error(`${name} (wasm): output ${k} has stride 0 (a broadcast view)`);
    }
  });
  const dtypes = operands.map((o) => o.arg.dtype);
  const fused = ctx.features.relaxedSimd;
  const key = `ew|${name}|${body.variant ?? ""}|${dtypes.join(",")}|${
    operands.map((o, k) => `${o.role}:${classes[k]}`).join(",")
  }|r${R}|${fused ? "fma" : "simd"}|${body.index ? "idx" : ""}`;
  const plan = { roles: operands.map((o) => o.role), classes, dtypes, outer: R, fused, body };
  const mod = ctx.module(key, (b) => buildEw(b, { ...plan, scalars: scalars.length }));
  const words = 2 + R + operands.length * (2 + R) + scalars.length;
  const desc = ctx.scratch(4 * words);
  const w = ctx.heap.i32(desc, words);
  let k = 0;
  w[k++] = n;
  w[k++] = dims[R];
  for (let d = 0; d < R; d++) w[k++] = dims[d];
  operands.forEach((o, i) => {
    w[k++] = o.arg.ptr + 4 * o.arg.offset;
    w[k++] = 4 * strides[i][R];
    for (let d = 0; d < R; d++) w[k++] = 4 * strides[i][d];
  });
  if (scalars instanceof Uint32Array) w.set(scalars, k);
  else new Float32Array(w.buffer, w.byteOffset + 4 * k, scalars.length).set(scalars);
  const parallel = n * (body.cost ?? 1) >= PARALLEL_WORK ? ctx.threads : 1;
  ctx.run(mod, "ew", [desc], parallel);
}

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
  const data = new ARRAY_TYPES[a.dtype](
    ctx.heap.buffer as ArrayBuffer,
    a.ptr + 4 * lo,
    hi - lo + 1,
  );
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
