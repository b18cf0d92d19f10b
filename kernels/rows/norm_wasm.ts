// LayerNorm and RMSNorm on the wasm backend: norm_forward, norm_backward, norm_param_partial and
// norm_param_sum of norm.ts, f32 rows [N, C] row-major.
// Layout and launch: forward and backward rows are claimed in chunks by the threads
// (wasm_launch.ts's runItems); a row is walked in f32x4 vectors (the last C % 4 floats as a
// partial vector) in three passes (forward: Σx, Σ(x − mean)², write y; backward: Σ dy·w and
// Σ dy·w·x̂, write dx), all from L1 for C up to a few thousand. The weight (and bias) gradients
// are a reduction across rows: the partial kernel gives each block of rowBlock rows (64) to one
// thread (blocks are the claimed items), which adds its rows into the block's partial row in
// row order; the sum kernel adds the blocks in block order, its columns claimed in units of 4.
// So every value is summed in one fixed order whatever the thread count. Variants (layer or
// rms, with or without bias) are separate exports.
// Limits: the per-row passes (loads from L1, a few vector operations each): at GPT's C = 128 a
// row is 32 vectors; a [768, 128] forward takes ~55 µs on one thread, the backward ~40 and the
// partial sums ~30 (the CPU reference on the heap: ~560, ~190, ~250), so the fork/join
// (1-2 µs) pays.

import type { WasmArg, WasmContext } from "../../engine/wasm/context.ts";
import type { FunctionBuilder, Local, ModuleBuilder } from "../../engine/wasm/builder.ts";
import { RowGen } from "./wasm_math.ts";
import { addr, runItems } from "./wasm_launch.ts";

/** Parameters as norm.ts's NormParams. */
interface Params {
  kind: "layer" | "rms";
  rows: number;
  len: number;
  eps: number;
  hasBias: boolean;
  rowBlock?: number;
}

/** Rows per block of norm_param_partial (norm.ts's ROW_BLOCK unless the params say). */
const ROW_BLOCK = 64;

const I32 = (n: number) => Array<"i32">(n).fill("i32");

/** Set v128 `dst` = splat of the f32 at `at` + offset. */
function splatAt(f: FunctionBuilder, dst: Local, at: () => void, offset = 0): void {
  at();
  f.v128.load32Splat(offset);
  f.set(dst);
}

/** mean (layer) and rstd of row r into v128 locals, from stats. */
function loadStats(
  f: FunctionBuilder,
  layer: boolean,
  stats: Local,
  r: Local,
  mean: Local,
  rstd: Local,
) {
  if (layer) {
    splatAt(f, mean, () => f.add(stats, () => f.mul(r, 8)));
    splatAt(f, rstd, () => f.add(stats, () => f.mul(r, 8)), 4);
  } else {
    f.f32x4.const([0, 0, 0, 0]);
    f.set(mean);
    splatAt(f, rstd, () => f.add(stats, () => f.mul(r, 4)));
  }
}

/** forward(tid, n, rows, chunk, claim, len, x, w, b, y, stats, eps). */
function forward(b: ModuleBuilder, relaxed: boolean, layer: boolean, bias: boolean): void {
  const name = `forward_${layer ? "layer" : "rms"}${bias ? "_bias" : ""}`;
  b.export(name, [...I32(11), "f32"], [], (f) => {
    const [, , rows, chunk, claim, len, x, w, bb, y, stats, eps] = f.params;
    const g = new RowGen(f, relaxed);
    const [xr, yr] = [f.local("i32"), f.local("i32")];
    const [acc, mean, rstd] = [f.local("v128"), f.local("v128"), f.local("v128")];
    const nf = f.local("f32");
    f.get(len);
    f.f32.convertI32S();
    f.set(nf);
    g.eachRow(rows, chunk, claim, (r) => {
      g.rowBase(xr, x, r, len);
      g.rowBase(yr, y, r, len);
      g.splat(0);
      f.set(mean);
      if (layer) {
        g.splat(0);
        f.set(acc);
        g.row(len, (o, tail) => {
          f.get(acc);
          g.load(xr, o, tail);
          f.f32x4.add();
          f.set(acc);
        });
        f.get(acc);
        g.hsum();
        f.get(nf);
        f.f32.div();
        f.f32x4.splat();
        f.set(mean);
      }
      g.splat(0);
      f.set(acc);
      g.row(len, (o, tail) => {
        g.load(xr, o, tail, mean); // pad lanes give x − mean = 0
        f.get(mean);
        f.f32x4.sub();
        f.set(rstd);
        f.get(rstd);
        f.get(rstd);
        f.f32x4.mul();
        f.get(acc);
        f.f32x4.add();
        f.set(acc);
      });
      // rstd = 1 / sqrt(ss / len + eps)
      f.f32.const(1);
      f.get(acc);
      g.hsum();
      f.get(nf);
      f.f32.div();
      f.get(eps);
      f.f32.add();
      f.f32.sqrt();
      f.f32.div();
      f.f32x4.splat();
      f.set(rstd);
      g.row(len, (o, tail) => {
        g.load(xr, o, tail);
        f.get(mean);
        f.f32x4.sub();
        f.get(rstd);
        f.f32x4.mul();
        g.load(w, o, tail);
        f.f32x4.mul();
        if (bias) (g.load(bb, o, tail), f.f32x4.add());
        g.store(yr, o, tail);
      });
      f.add(stats, () => f.mul(r, layer ? 8 : 4));
      if (layer) {
        f.get(mean);
        f.f32x4.extractLane(0);
        f.f32.store();
        f.add(stats, () => f.mul(r, 8));
      }
      f.get(rstd);
      f.f32x4.extractLane(0);
      f.f32.store(layer ? 4 : 0);
    });
  });
}

/** backward(tid, n, rows, chunk, claim, len, dy, x, w, stats, dx): dx = rstd·(dy·w − a − x̂·c). */
function backward(b: ModuleBuilder, relaxed: boolean, layer: boolean): void {
  b.export(`backward_${layer ? "layer" : "rms"}`, I32(11), [], (f) => {
    const [, , rows, chunk, claim, len, dy, x, w, stats, dx] = f.params;
    const g = new RowGen(f, relaxed);
    const [dyr, xr, dxr] = [f.local("i32"), f.local("i32"), f.local("i32")];
    const [sg, sgx, mean, rstd, gw, a, c] = Array.from({ length: 7 }, () => f.local("v128"));
    const nf = f.local("f32");
    f.get(len);
    f.f32.convertI32S();
    f.set(nf);
    const xhat = (o: Local, tail: Local | null) => {
      g.load(xr, o, tail);
      f.get(mean);
      f.f32x4.sub();
      f.get(rstd);
      f.f32x4.mul();
    };
    const mean1 = (acc: Local, dst: Local) => {
      f.get(acc);
      g.hsum();
      f.get(nf);
      f.f32.div();
      f.f32x4.splat();
      f.set(dst);
    };
    g.eachRow(rows, chunk, claim, (r) => {
      for (const [dst, src] of [[dyr, dy], [xr, x], [dxr, dx]]) g.rowBase(dst, src, r, len);
      loadStats(f, layer, stats, r, mean, rstd);
      g.splat(0);
      f.set(sg);
      g.splat(0);
      f.set(sgx);
      g.row(len, (o, tail) => {
        g.load(dyr, o, tail); // pad 0: the tail's extra lanes add nothing
        g.load(w, o, tail);
        f.f32x4.mul();
        f.set(gw);
        f.get(sg);
        f.get(gw);
        f.f32x4.add();
        f.set(sg);
        f.get(gw);
        xhat(o, tail);
        f.f32x4.mul();
        f.get(sgx);
        f.f32x4.add();
        f.set(sgx);
      });
      if (layer) mean1(sg, a);
      else (g.splat(0), f.set(a));
      mean1(sgx, c);
      g.row(len, (o, tail) => {
        f.get(rstd);
        g.load(dyr, o, tail);
        g.load(w, o, tail);
        f.f32x4.mul();
        f.get(a);
        f.f32x4.sub();
        xhat(o, tail);
        f.get(c);
        f.f32x4.mul();
        f.f32x4.sub();
        f.f32x4.mul();
        g.store(dxr, o, tail);
      });
    });
  });
}

/**
 * partial(tid, n, blocks, chunk, claim, rows, len, block, dy, x, stats, part): part[blk, 0] =
 * Σ dy·x̂ and (bias) part[blk, 1] = Σ dy over the block's rows, added in row order.
 */
function partial(b: ModuleBuilder, relaxed: boolean, layer: boolean, bias: boolean): void {
  const name = `partial_${layer ? "layer" : "rms"}${bias ? "_bias" : ""}`;
  b.export(name, I32(12), [], (f) => {
    const [, , blocks, chunk, claim, rows, len, block, dy, x, stats, part] = f.params;
    const g = new RowGen(f, relaxed);
    const [r, r1, dyr, xr, pw, pb] = Array.from({ length: 6 }, () => f.local("i32"));
    const [mean, rstd, v] = [f.local("v128"), f.local("v128"), f.local("v128")];
    const rowBytes = () => f.mul(len, 4);
    g.eachRow(blocks, chunk, claim, (blk) => {
      f.set(pw, () => f.add(part, () => f.mul(() => f.mul(blk, bias ? 2 : 1), rowBytes)));
      f.set(pb, () => f.add(pw, rowBytes));
      f.set(r1, () => f.min(rows, () => f.mul(() => f.add(blk, 1), block)));
      f.for(r, () => f.mul(blk, block), r1, 1, () => {
        g.rowBase(dyr, dy, r, len);
        g.rowBase(xr, x, r, len);
        loadStats(f, layer, stats, r, mean, rstd);
        const first = () => (f.get(r), f.mul(blk, block), f.i32.eq());
        const accumulate = (dst: Local, o: Local, tail: Local | null) => {
          // The block's first row stores; later rows add, in row order.
          first();
          f.if();
          f.get(v);
          g.store(dst, o, tail);
          f.else();
          g.load(dst, o, tail);
          f.get(v);
          f.f32x4.add();
          g.store(dst, o, tail);
          f.end();
        };
        g.row(len, (o, tail) => {
          g.load(dyr, o, tail);
          g.load(xr, o, tail);
          f.get(mean);
          f.f32x4.sub();
          f.f32x4.mul();
          f.get(rstd);
          f.f32x4.mul();
          f.set(v);
          accumulate(pw, o, tail);
          if (bias) {
            g.load(dyr, o, tail);
            f.set(v);
            accumulate(pb, o, tail);
          }
        });
      });
    });
  });
}

/**
 * sum(tid, n, units, chunk, claim, len, blocks, k, part, dw, db): out[c] = Σ_blk part[blk, k, c]
 * over the claimed units of 4 columns.
 */
function sumFn(b: ModuleBuilder, relaxed: boolean): void {
  b.export("sum", I32(11), [], (f) => {
    const [, , units, chunk, claim, len, blocks, k, part, dw, db] = f.params;
    const g = new RowGen(f, relaxed);
    const [cols, kk, blk, src, dst, pk] = Array.from({ length: 6 }, () => f.local("i32"));
    const acc = f.local("v128");
    g.eachChunk(units, chunk, claim, (u0, u1) => {
      // Columns [4·u0, min(len, 4·u1)).
      f.set(cols, () => f.sub(() => f.min(len, () => f.mul(u1, 4)), () => f.mul(u0, 4)));
      f.for(kk, 0, k, 1, () => {
        f.set(dst, () =>
          f.add(
            () => (f.get(kk), f.i32.eqz(), f.if("i32"), f.get(dw), f.else(), f.get(db), f.end()),
            () => f.mul(u0, 16),
          ));
        f.set(
          pk,
          () => f.add(part, () => f.add(() => f.mul(() => f.mul(kk, len), 4), () => f.mul(u0, 16))),
        );
        g.row(cols, (o, tail) => {
          g.splat(0);
          f.set(acc);
          f.set(src, pk);
          f.for(blk, 0, blocks, 1, () => {
            f.get(acc);
            g.load(src, o, tail);
            f.f32x4.add();
            f.set(acc);
            f.inc(src, () => f.mul(() => f.mul(k, len), 4));
          });
          f.get(acc);
          g.store(dst, o, tail);
        });
      });
    });
  });
}

/** The norm module for a runtime: its cache key and builder. */
export function normModule(relaxed: boolean): [string, (b: ModuleBuilder) => void] {
  return [`norm|${relaxed ? "relaxed" : "simd"}`, (b) => {
    for (const layer of [true, false]) {
      for (const bias of [false, true]) {
        forward(b, relaxed, layer, bias);
        partial(b, relaxed, layer, bias);
      }
      backward(b, relaxed, layer);
    }
    sumFn(b, relaxed);
  }];
}

const moduleOf = (ctx: WasmContext) => ctx.module(...normModule(ctx.features.relaxedSimd));
const variant = (p: Params) => `${p.kind}${p.hasBias ? "_bias" : ""}`;

/** The wasm implementation of norm_forward: y and stats from x, weight (and bias). */
export function normForwardWasm(
  inputs: WasmArg[],
  [y, stats]: WasmArg[],
  p: Params,
  ctx: WasmContext,
): void {
  if (p.rows === 0 || p.len === 0) return;
  const [x, w, b] = inputs;
  const args = [p.len, addr(x), addr(w), b ? addr(b) : 0, addr(y), addr(stats), p.eps];
  runItems(ctx, moduleOf(ctx), `forward_${variant(p)}`, p.rows, 0.55 * p.rows * p.len, args);
}

/** The wasm implementation of norm_backward: dx from dy, x, weight and stats. */
export function normBackwardWasm(
  [dy, x, w, stats]: WasmArg[],
  [dx]: WasmArg[],
  p: Params,
  ctx: WasmContext,
): void {
  if (p.rows === 0 || p.len === 0) return;
  const args = [p.len, ...[dy, x, w, stats, dx].map(addr)];
  runItems(ctx, moduleOf(ctx), `backward_${p.kind}`, p.rows, 0.4 * p.rows * p.len, args);
}

/** The wasm implementation of norm_param_partial: per-block sums of dy·x̂ (and dy). */
export function normParamPartialWasm(
  [dy, x, stats]: WasmArg[],
  [part]: WasmArg[],
  p: Params,
  ctx: WasmContext,
): void {
  const block = p.rowBlock ?? ROW_BLOCK;
  const blocks = Math.ceil(p.rows / block);
  if (blocks === 0 || p.len === 0) return;
  const args = [p.rows, p.len, block, ...[dy, x, stats, part].map(addr)];
  const ns = 0.35 * p.rows * p.len;
  runItems(ctx, moduleOf(ctx), `partial_${variant(p)}`, blocks, ns, args);
}

/** The wasm implementation of norm_param_sum: dweight (and dbias) from the partial sums. */
export function normParamSumWasm(
  [part]: WasmArg[],
  outs: WasmArg[],
  p: Params,
  ctx: WasmContext,
): void {
  if (p.len === 0) return;
  const blocks = Math.ceil(p.rows / (p.rowBlock ?? ROW_BLOCK));
  const units = Math.ceil(p.len / 4);
  const [dw, db] = outs;
  const args = [p.len, blocks, outs.length, addr(part), addr(dw), db ? addr(db) : 0];
  runItems(ctx, moduleOf(ctx), "sum", units, 0.5 * blocks * p.len, args);
}
