// Copies y = x that are (batched) transposes, in 4×4 register tiles: after collapsing, y steps
// through its inner dim contiguously but x does not, and x is contiguous along some outer dim P,
// so the plane (P, L) is transposed; the elementwise loop's scalar gather would read each x
// element from another cache line. Four v128 loads along x's
// contiguous dim, a 4×4 transpose in registers (eight i8x16.shuffle), four v128 stores along y's
// rows. Work items are (batch index, 16 rows of P); a thread takes a contiguous range of items
// and walks L in steps of 4 columns, so the 4 x cache lines a step touches are used whole (four
// tiles of 4 rows each). Rows past a multiple of 4 and the last L % 4 columns are copied one
// element at a time. Launches of fewer than PARALLEL_WORK elements stay on one thread.
// Limits: memory (measured in tests/bench/wasm_elementwise_bench.ts).

import type { WasmArg, WasmContext } from "../../engine/wasm/context.ts";
import type { FunctionBuilder, Local, ModuleBuilder } from "../../engine/wasm/builder.ts";
import { collapse, requireSimd, threadsFor } from "./wasm_layout.ts";

/** Rows of P per work item (a 64-byte cache line of x along P). */
const ROWS = 16;

/** Byte shuffles of the 4×4 transpose: interleave low/high lanes, then halves. */
const LO32 = [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23];
const HI32 = [8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31];
const LO64 = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
const HI64 = [8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31];

/**
 * Copy x into y (same shape, any 4-byte dtype) when that is a transpose as above; returns false,
 * doing nothing, otherwise.
 */
export function runTranspose(ctx: WasmContext, x: WasmArg, y: WasmArg): boolean {
  const n = x.shape.reduce((a, b) => a * b, 1);
  const { dims, strides: [sx, sy] } = collapse(x.shape, [x.strides, y.strides]);
  const R = dims.length - 1;
  const p = transposeDim(dims, sx, sy);
  if (n === 0 || p < 0) return false;
  requireSimd(ctx, "transpose");
  // Batch dims: every outer dim but p, outer to inner.
  const batch = dims.map((_, d) => d).filter((d) => d < R && d !== p);
  const mod = ctx.module(`copy-transpose|b${batch.length}`, (b) => buildTranspose(b, batch.length));
  const words = 8 + 3 * batch.length;
  const desc = ctx.scratch(4 * words);
  const w = ctx.heap.i32(desc, words);
  w.set([
    x.ptr + 4 * x.offset,
    y.ptr + 4 * y.offset,
    dims[p],
    dims[R],
    4 * sx[R],
    4 * sy[p],
    Math.ceil(dims[p] / ROWS),
    batch.reduce((a, d) => a * dims[d], 1),
  ]);
  batch.forEach((d, i) => w.set([dims[d], 4 * sx[d], 4 * sy[d]], 8 + 3 * i));
  ctx.run(mod, "transpose", [desc], threadsFor(ctx, n));
  return true;
}

/**
 * The collapsed dim along which x is contiguous when copying x (strides sx) into y (sy) is a
 * transpose: y contiguous along the inner dim, x strided there; else −1.
 */
function transposeDim(dims: number[], sx: number[], sy: number[]): number {
  const R = dims.length - 1;
  if (R === 0 || sy[R] !== 1 || sx[R] === 1 || sx[R] === 0) return -1;
  return sx.findIndex((s, d) => d < R && s === 1);
}

/** Would copying x into y (these strides over `shape`) run as a transpose? */
export function isTranspose(
  shape: readonly number[],
  xStrides: readonly number[],
  yStrides: readonly number[],
): boolean {
  const { dims, strides: [sx, sy] } = collapse(shape, [xStrides, yStrides]);
  return transposeDim(dims, sx, sy) >= 0;
}

/** Copy one element (4 bytes) from x + xo to y + yo. */
function copyOne(f: FunctionBuilder, xo: () => void, yo: () => void): void {
  yo();
  xo();
  f.i32.load(0, 0);
  f.i32.store(0, 0);
}

/**
 * transpose(tid, n, desc): desc = [x, y, P, L, sxL (x's byte stride along L), syP (y's byte
 * stride along P), P blocks of ROWS, batch count, then per batch dim: size, x and y byte strides].
 */
function buildTranspose(b: ModuleBuilder, nb: number): void {
  b.export("transpose", ["i32", "i32", "i32"], [], (f) => {
    const [tid, nth, desc] = f.params;
    const i32 = () => f.local("i32");
    const [x0, y0, P, L, sxL, syP, pBlocks, count] = Array.from({ length: 8 }, i32);
    const [item, end, rest, xb, yb, p0, rows, l, q, r, xp, yp, full] = Array.from(
      { length: 13 },
      i32,
    );
    const bd = Array.from({ length: nb }, () => [i32(), i32(), i32()]);
    [x0, y0, P, L, sxL, syP, pBlocks, count].forEach((l, k) =>
      f.set(l, () => (f.get(desc), f.i32.load(4 * k)))
    );
    bd.forEach((loc, i) =>
      loc.forEach((l, k) => f.set(l, () => (f.get(desc), f.i32.load(4 * (8 + 3 * i + k)))))
    );
    const v = Array.from({ length: 4 }, () => f.local("v128"));
    const t = Array.from({ length: 4 }, () => f.local("v128"));
    const total = () => f.mul(count, pBlocks);
    f.set(item, () => f.mulDiv(total, tid, nth));
    f.set(end, () => f.mulDiv(total, () => f.add(tid, 1), nth));
    f.for(item, item, end, 1, () => {
      // Batch index → x and y bases (innermost batch dim last), and this item's rows.
      f.set(rest, () => (f.get(item), f.get(pBlocks), f.i32.divU()));
      f.set(xb, x0);
      f.set(yb, y0);
      for (let i = nb - 1; i >= 0; i--) {
        const [size, sx, sy] = bd[i];
        const k = () => (f.get(rest), f.get(size), f.i32.remU());
        f.inc(xb, () => f.mul(k, sx));
        f.inc(yb, () => f.mul(k, sy));
        f.set(rest, () => (f.get(rest), f.get(size), f.i32.divU()));
      }
      f.set(p0, () => f.mul(() => (f.get(item), f.get(pBlocks), f.i32.remU()), ROWS));
      f.set(rows, () => f.min(ROWS, () => f.sub(P, p0)));
      f.set(full, () => (f.get(rows), f.i32.const(-4), f.i32.and()));
      f.inc(xb, () => f.mul(p0, 4));
      f.inc(yb, () => f.mul(p0, syP));
      // Columns l..l+3 while they last: 4×4 tiles down the rows, then single rows.
      f.for(l, 0, () => f.sub(L, 3), 4, () => {
        f.for(q, 0, full, 4, () => {
          f.set(xp, () => f.add(xb, () => f.add(() => f.mul(q, 4), () => f.mul(l, sxL))));
          v.forEach((vc, c) => {
            f.get(xp);
            f.v128.load(0, 0);
            f.set(vc);
            if (c < 3) f.inc(xp, sxL);
          });
          transpose4(f, v, t);
          f.set(yp, () => f.add(yb, () => f.add(() => f.mul(q, syP), () => f.mul(l, 4))));
          v.forEach((row, k) => {
            f.get(yp);
            f.get(row);
            f.v128.store(0, 0);
            if (k < 3) f.inc(yp, syP);
          });
        });
        f.for(r, full, rows, 1, () => {
          for (let c = 0; c < 4; c++) {
            copyOne(
              f,
              () => f.add(xb, () => f.add(() => f.mul(r, 4), () => f.mul(() => f.add(l, c), sxL))),
              () => f.add(yb, () => f.add(() => f.mul(r, syP), () => f.mul(() => f.add(l, c), 4))),
            );
          }
        });
      });
      // The last L % 4 columns (l continues from where the loop stopped).
      f.set(l, () => (f.get(L), f.i32.const(-4), f.i32.and()));
      f.for(l, l, L, 1, () => {
        f.for(r, 0, rows, 1, () => {
          copyOne(
            f,
            () => f.add(xb, () => f.add(() => f.mul(r, 4), () => f.mul(l, sxL))),
            () => f.add(yb, () => f.add(() => f.mul(r, syP), () => f.mul(l, 4))),
          );
        });
      });
    });
  });
}

/** v[c] = x rows r of column c → v[r] = y row r (columns c), through t. */
function transpose4(f: FunctionBuilder, v: Local[], t: Local[]): void {
  const shuffle = (a: Local, b: Local, idx: number[], out: Local) => {
    f.get(a);
    f.get(b);
    f.i8x16.shuffle(idx);
    f.set(out);
  };
  shuffle(v[0], v[1], LO32, t[0]);
  shuffle(v[0], v[1], HI32, t[1]);
  shuffle(v[2], v[3], LO32, t[2]);
  shuffle(v[2], v[3], HI32, t[3]);
  shuffle(t[0], t[2], LO64, v[0]);
  shuffle(t[0], t[2], HI64, v[1]);
  shuffle(t[1], t[3], LO64, v[2]);
  shuffle(t[1], t[3], HI64, v[3]);
}
