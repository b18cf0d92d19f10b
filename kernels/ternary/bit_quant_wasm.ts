// BitLinear's elementwise quantiser kernels on the wasm backend (bit_quant.ts): ternary_levels
// q = clamp(round(w·s), -1, 1), reciprocal y = 1/a, and dequantize y = acc·(1/(s_w·s_x)).
// Each is bit-identical to its CPU reference: ternary_levels multiplies in float64 (f64x2: the
// product of two f32 is exact there, as in the reference's JavaScript arithmetic) and decides
// by comparison with ±0.5 (p > 0.5 gives 1, p < −0.5 gives −1, else p·0, which keeps the sign
// of a zero level and NaN, as round-half-even then clamp does); reciprocal and dequantize are
// single f32 operations, each correctly rounded as the reference's float64 result rounded once.
// Layout and launch: units of 4 elements (ternary_levels, reciprocal) or rows (dequantize) are
// claimed in chunks by the threads (runItems), walked in f32x4 vectors, a partial last one.
// These ops are elementwise and read through strides; the layouts BitLinear gives them are
// served here: w and a row-major, s a broadcast scalar; acc row-major, s_x one value per row
// ([..., 1] expanded, any row stride), s_w a broadcast scalar. Another layout runs the CPU
// reference on views of the heap (correct, on one thread). Limits: memory; on one thread
// ternary_levels at [384, 128] takes ~33 µs, dequantize at [768, 384] ~45 (the CPU reference
// on the heap: ~2,500 and ~6,300); reciprocal of one value ~1 µs, the launch itself.

import type { CpuArg, Kernel } from "../../engine/backend.ts";
import { ARRAY_TYPES } from "../../engine/dtype.ts";
import type { WasmArg, WasmContext } from "../../engine/wasm/context.ts";
import type { FunctionBuilder, Local, ModuleBuilder } from "../../engine/wasm/builder.ts";
import { RowGen } from "../rows/wasm_math.ts";
import { addr, runItems } from "../rows/wasm_launch.ts";

const I32 = (n: number) => Array<"i32">(n).fill("i32");

/**
 * `body()` for each claimed chunk of units of 4 elements (RowGen.eachChunk), with the chunk's
 * elements [4·u0, min(count, 4·u1)) as `len` from byte offset `off`.
 */
function slices(
  f: FunctionBuilder,
  g: RowGen,
  [units, chunk, claim, count]: Local[],
  [off, len]: Local[],
  body: () => void,
) {
  g.eachChunk(units, chunk, claim, (u0, u1) => {
    f.set(off, () => f.mul(u0, 16));
    f.set(len, () => f.sub(() => f.min(count, () => f.mul(u1, 4)), () => f.mul(u0, 4)));
    body();
  });
}

/** levels(tid, n, units, chunk, claim, count, w, s, y): y = clamp(round(w·s), -1, 1). */
function levels(b: ModuleBuilder): void {
  b.export("levels", I32(9), [], (f) => {
    const [, , units, chunk, claim, count, w, s, y] = f.params;
    const g = new RowGen(f, false);
    const [off, len, wp, yp] = [0, 1, 2, 3].map(() => f.local("i32"));
    const [sv, v, p] = [0, 1, 2].map(() => f.local("v128"));
    const halves = [f.local("v128"), f.local("v128")];
    f.get(s);
    f.f32.load();
    f.f64.promoteF32();
    f.f64x2.splat();
    f.set(sv);
    const d = (x: number) => (f.f64.const(x), f.f64x2.splat());
    slices(f, g, [units, chunk, claim, count], [off, len], () => {
      f.set(wp, () => f.add(w, off));
      f.set(yp, () => f.add(y, off));
      g.row(len, (o, tail) => {
        g.load(wp, o, tail);
        f.set(v);
        halves.forEach((out, i) => {
          f.get(v);
          if (i === 1) (f.get(v), f.i8x16.shuffle([8, 9, 10, 11, 12, 13, 14, 15, ...range(8)]));
          f.f64x2.promoteLowF32x4();
          f.get(sv);
          f.f64x2.mul();
          f.set(p);
          // p > 0.5: 1; p < −0.5: −1; else p·0 (±0, or NaN for NaN).
          d(1);
          d(-1);
          f.get(p);
          d(0);
          f.f64x2.mul();
          f.get(p);
          d(-0.5);
          f.f64x2.lt();
          f.v128.bitselect();
          f.get(p);
          d(0.5);
          f.f64x2.gt();
          f.v128.bitselect();
          f.f32x4.demoteF64x2Zero();
          f.set(out);
        });
        f.get(halves[0]);
        f.get(halves[1]);
        f.i8x16.shuffle([...range(8), ...range(8).map((i) => i + 16)]);
        g.store(yp, o, tail);
      });
    });
  });
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** reciprocal(tid, n, units, chunk, claim, count, a, y): y = 1/a. */
function reciprocal(b: ModuleBuilder): void {
  b.export("reciprocal", I32(8), [], (f) => {
    const [, , units, chunk, claim, count, a, y] = f.params;
    const g = new RowGen(f, false);
    const [off, len, ap, yp] = [0, 1, 2, 3].map(() => f.local("i32"));
    slices(f, g, [units, chunk, claim, count], [off, len], () => {
      f.set(ap, () => f.add(a, off));
      f.set(yp, () => f.add(y, off));
      g.row(len, (o, tail) => {
        g.splat(1);
        g.load(ap, o, tail, 1);
        f.f32x4.div();
        g.store(yp, o, tail);
      });
    });
  });
}

/**
 * dequantize(tid, n, rows, chunk, claim, len, acc, sx, sxRowBytes, sw, y):
 * y = acc·(1/(s_w·s_x[r])).
 */
function dequantize(b: ModuleBuilder): void {
  b.export("dequantize", I32(11), [], (f) => {
    const [, , rows, chunk, claim, len, acc, sx, sxRow, sw, y] = f.params;
    const g = new RowGen(f, false);
    const [ar, yr] = [f.local("i32"), f.local("i32")];
    const k = f.local("v128");
    g.eachRow(rows, chunk, claim, (r) => {
      g.rowBase(ar, acc, r, len);
      g.rowBase(yr, y, r, len);
      f.f32.const(1);
      f.get(sw);
      f.f32.load();
      f.add(sx, () => f.mul(r, sxRow));
      f.f32.load();
      f.f32.mul();
      f.f32.div();
      f.f32x4.splat();
      f.set(k);
      g.row(len, (o, tail) => {
        g.load(ar, o, tail);
        f.get(k);
        f.f32x4.mul();
        g.store(yr, o, tail);
      });
    });
  });
}

/** The module of the three kernels: its cache key and builder. */
export function bitQuantModule(): [string, (b: ModuleBuilder) => void] {
  return ["bit_quant", (b) => {
    levels(b);
    reciprocal(b);
    dequantize(b);
  }];
}

/** Is `a` row-major over `shape` (any offset)? */
function flat(a: WasmArg, shape: readonly number[]): boolean {
  let stride = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && a.strides[i] !== stride) return false;
    stride *= shape[i];
  }
  return true;
}

/** Is `a` one value broadcast (every stride 0 where the dim is not 1)? */
function scalar(a: WasmArg): boolean {
  return a.shape.every((d, i) => d === 1 || a.strides[i] === 0);
}

/**
 * The stride between rows of `a` seen as [rows, last] with the last dim broadcast (stride 0),
 * when its leading dims fold into one row stride; else null.
 */
function rowStride(a: WasmArg): number | null {
  const n = a.shape.length;
  if (n === 0) return 0;
  if (a.shape[n - 1] !== 1 && a.strides[n - 1] !== 0) return null;
  let rs: number | null = null;
  let inner = 1;
  for (let i = n - 2; i >= 0; i--) {
    if (a.shape[i] !== 1) {
      const s = a.strides[i] / inner;
      if (rs === null) rs = s;
      else if (s !== rs || a.strides[i] % inner !== 0) return null;
    }
    inner *= a.shape[i];
  }
  return rs ?? 0;
}

/** Run `kernel`'s CPU reference on views of the heap (a layout the wasm code does not serve). */
function onHeap<P>(kernel: Kernel<P>, ins: WasmArg[], outs: WasmArg[], p: P, ctx: WasmContext) {
  const view = (a: WasmArg): CpuArg => {
    let hi = a.offset;
    a.shape.forEach((d, i) => (hi += d > 0 ? (d - 1) * a.strides[i] : 0));
    const data = new ARRAY_TYPES[a.dtype](ctx.heap.buffer as ArrayBuffer, a.ptr, hi + 1);
    return { ...a, data };
  };
  const size = outs[0].shape.reduce((x, y) => x * y, 1);
  const y = new ARRAY_TYPES[outs[0].dtype](ctx.heap.buffer as ArrayBuffer, addr(outs[0]), size);
  kernel.cpu(ins.map(view), [y], p);
}

const moduleOf = (ctx: WasmContext) => ctx.module(...bitQuantModule());
const sizeOf = (a: WasmArg) => a.shape.reduce((x, y) => x * y, 1);

/** The wasm implementation of ternary_levels (`kernel` is the op, for other layouts). */
export function ternaryLevelsWasm(kernel: () => Kernel<void>) {
  return (ins: WasmArg[], [y]: WasmArg[], p: void, ctx: WasmContext): void => {
    const [w, s] = ins;
    if (!flat(w, y.shape) || !scalar(s)) return onHeap(kernel(), ins, [y], p, ctx);
    const count = sizeOf(y);
    if (count === 0) return;
    const args = [count, addr(w), addr(s), addr(y)];
    runItems(ctx, moduleOf(ctx), "levels", Math.ceil(count / 4), 0.7 * count, args);
  };
}

/** The wasm implementation of reciprocal (`kernel` is the op, for other layouts). */
export function reciprocalWasm(kernel: () => Kernel<void>) {
  return (ins: WasmArg[], [y]: WasmArg[], p: void, ctx: WasmContext): void => {
    if (!flat(ins[0], y.shape)) return onHeap(kernel(), ins, [y], p, ctx);
    const count = sizeOf(y);
    if (count === 0) return;
    const args = [count, addr(ins[0]), addr(y)];
    runItems(ctx, moduleOf(ctx), "reciprocal", Math.ceil(count / 4), 0.5 * count, args);
  };
}

/** The wasm implementation of dequantize (`kernel` is the op, for other layouts). */
export function dequantizeWasm(kernel: () => Kernel<void>) {
  return (ins: WasmArg[], [y]: WasmArg[], p: void, ctx: WasmContext): void => {
    const [acc, sx, sw] = ins;
    const rs = rowStride(sx);
    if (!flat(acc, y.shape) || rs === null || !scalar(sw)) {
      const k = kernel();
      return k.wasm ? k.wasm(ins, [y], p, ctx) : onHeap(k, ins, [y], p, ctx);
    }
    const count = sizeOf(y);
    if (count === 0) return;
    const len = y.shape.length ? y.shape[y.shape.length - 1] : 1;
    const rows = count / len;
    const args = [len, addr(acc), addr(sx), 4 * rs, addr(sw), addr(y)];
    runItems(ctx, moduleOf(ctx), "dequantize", rows, 0.15 * count, args);
  };
}
