// Cross-entropy on the wasm backend: the row statistics, the mean and the gradient of
// cross_entropy.ts, over logits [N, V] f32 row-major and targets [N] i32.
// Layout and launch: rows are claimed in chunks by the threads (wasm_launch.ts's runItems; one
// thread below SERIAL_NS of estimated work); each row is walked in f32x4 vectors (the last
// V % 4 as a partial vector) with wasm_math.ts's exp and log, so a row's values never depend
// on the thread count.
// - rows: a max pass and a Σ exp(x − m) pass; lse = m + log Σ, loss = lse − x[t].
// - backward: one pass dx = exp(x − lse)·g with g = dy / count, then dx[t] = (exp(x[t] − lse)
//   − 1)·g rewritten alone (the CPU's rounding of p − 1); ignored rows are zeros.
// - mean: a reduction across rows, in fixed chunks of MEAN_CHUNK rows summed in float64 (one
//   chunk per item, items claimed by the threads), the chunk partials then added in chunk order on
//   the calling thread: the same bytes on any thread count.
// Targets are checked on the calling thread first (a scan of N i32), so a target outside
// [0, V) that is not ignoreIndex throws the CPU reference's RangeError rather than reading
// past its row. Limits: compute, one exp per logit (the forward reads each logit twice, from
// L1). At a char vocabulary (V = 65) the 768-row forward is ~55 µs and the backward ~40 µs on
// one thread (the CPU reference on the heap: ~720 and ~460 µs), the target scan ~1 µs of it.

import type { WasmArg, WasmContext } from "../../engine/wasm/context.ts";
import type { ModuleBuilder } from "../../engine/wasm/builder.ts";
import { RowGen } from "./wasm_math.ts";
import { addr, runItems } from "./wasm_launch.ts";

/** Parameters as cross_entropy.ts's CrossEntropyParams. */
interface Params {
  rows: number;
  classes: number;
  ignoreIndex: number;
}

/** Rows per partial sum of the mean. */
export const MEAN_CHUNK = 4096;

const I32 = (n: number) => Array<"i32">(n).fill("i32");

/** rows(tid, n, rows, chunk, claim, V, x, targets, stats, ignore): stats[r] = (lse, loss). */
function rowsFn(b: ModuleBuilder, relaxed: boolean): void {
  b.export("rows", I32(10), [], (f) => {
    const [, , rows, chunk, claim, V, x, targets, stats, ignore] = f.params;
    const g = new RowGen(f, relaxed);
    const [xr, t, st] = [f.local("i32"), f.local("i32"), f.local("i32")];
    const [acc, m] = [f.local("v128"), f.local("v128")];
    const lse = f.local("f32");
    g.eachRow(rows, chunk, claim, (r) => {
      g.rowBase(xr, x, r, V);
      g.rowMax(xr, V, acc, m);
      g.splat(0);
      f.set(acc);
      g.row(V, (o, tail) => {
        g.load(xr, o, tail, -Infinity);
        f.get(m);
        f.f32x4.sub();
        g.exp(false);
        f.get(acc);
        f.f32x4.add();
        f.set(acc);
      });
      f.get(acc);
      g.hsum();
      f.f32x4.splat();
      g.log();
      f.get(m);
      f.f32x4.add();
      f.f32x4.extractLane(0);
      f.set(lse);
      f.set(t, () => (f.add(targets, () => f.mul(r, 4)), f.i32.load()));
      f.set(st, () => f.add(stats, () => f.mul(r, 8)));
      f.get(st);
      f.get(lse);
      f.f32.store();
      f.get(st);
      f.get(t);
      f.get(ignore);
      f.i32.eq();
      f.if("f32");
      f.f32.const(0);
      f.else();
      f.get(lse);
      f.add(xr, () => f.mul(t, 4));
      f.f32.load();
      f.f32.sub();
      f.end();
      f.f32.store(4);
    });
  });
}

/** backward(tid, n, rows, chunk, claim, V, x, targets, stats, dx, ignore, g): the header's. */
function backwardFn(b: ModuleBuilder, relaxed: boolean): void {
  b.export("backward", [...I32(11), "f32"], [], (f) => {
    const [, , rows, chunk, claim, V, x, targets, stats, dx, ignore, gs] = f.params;
    const g = new RowGen(f, relaxed);
    const [xr, dxr, t] = [f.local("i32"), f.local("i32"), f.local("i32")];
    const [l, gv] = [f.local("v128"), f.local("v128")];
    g.eachRow(rows, chunk, claim, (r) => {
      g.rowBase(xr, x, r, V);
      g.rowBase(dxr, dx, r, V);
      f.set(t, () => (f.add(targets, () => f.mul(r, 4)), f.i32.load()));
      f.get(t);
      f.get(ignore);
      f.i32.eq();
      f.if();
      g.row(V, (o, tail) => {
        g.splat(0);
        g.store(dxr, o, tail);
      });
      f.else();
      f.add(stats, () => f.mul(r, 8));
      f.v128.load32Splat();
      f.set(l);
      f.get(gs);
      f.f32x4.splat();
      f.set(gv);
      g.row(V, (o, tail) => {
        g.load(xr, o, tail);
        f.get(l);
        f.f32x4.sub();
        g.exp(false);
        f.get(gv);
        f.f32x4.mul();
        g.store(dxr, o, tail);
      });
      // The target's own logit: (p − 1)·g, when t is a class (the CPU skips it otherwise).
      f.get(t);
      f.get(V);
      f.i32.ltU();
      f.if();
      f.add(dxr, () => f.mul(t, 4));
      f.add(xr, () => f.mul(t, 4));
      f.v128.load32Splat();
      f.get(l);
      f.f32x4.sub();
      g.exp(false);
      f.f32x4.extractLane(0);
      f.f32.const(1);
      f.f32.sub();
      f.get(gs);
      f.f32.mul();
      f.f32.store();
      f.end();
      f.end();
    });
  });
}

/**
 * mean(tid, n, chunks, per, claim, rows, stats, targets, ignore, out): out[c] = (Σ loss, count)
 * in f64 over the rows of chunk c (MEAN_CHUNK rows each).
 */
function meanFn(b: ModuleBuilder): void {
  b.export("mean", I32(10), [], (f) => {
    const [, , chunks, per, claim, rows, stats, targets, ignore, out] = f.params;
    const g = new RowGen(f, false);
    const [r, end] = [0, 1].map(() => f.local("i32"));
    const [s, c] = [f.local("f64"), f.local("f64")];
    g.eachRow(chunks, per, claim, (lo) => {
      f.f64.const(0);
      f.set(s);
      f.f64.const(0);
      f.set(c);
      f.set(end, () => f.min(rows, () => f.mul(() => f.add(lo, 1), MEAN_CHUNK)));
      f.for(r, () => f.mul(lo, MEAN_CHUNK), end, 1, () => {
        f.add(targets, () => f.mul(r, 4));
        f.i32.load();
        f.get(ignore);
        f.i32.ne();
        f.if();
        f.get(s);
        f.add(stats, () => f.mul(r, 8));
        f.f32.load(4);
        f.f64.promoteF32();
        f.f64.add();
        f.set(s);
        f.get(c);
        f.f64.const(1);
        f.f64.add();
        f.set(c);
        f.end();
      });
      f.add(out, () => f.mul(lo, 16));
      f.get(s);
      f.f64.store();
      f.add(out, () => f.mul(lo, 16));
      f.get(c);
      f.f64.store(8);
    });
  });
}

/** The cross-entropy module for a runtime: its cache key and builder. */
export function crossEntropyModule(relaxed: boolean): [string, (b: ModuleBuilder) => void] {
  return [`cross_entropy|${relaxed ? "relaxed" : "simd"}`, (b) => {
    rowsFn(b, relaxed);
    backwardFn(b, relaxed);
    meanFn(b);
  }];
}

/** Throw the CPU reference's error for a target that is neither a class nor ignoreIndex. */
function checkTargets(ctx: WasmContext, targets: WasmArg, p: Params): void {
  const t = ctx.heap.i32(addr(targets), p.rows);
  for (let r = 0; r < p.rows; r++) {
    const target = t[r];
    if (target !== p.ignoreIndex && (target < 0 || target >= p.classes)) {
      throw new RangeError(
        `crossEntropy: target ${target} at row ${r} is out of range [0, ${p.classes}) ` +
          `(ignoreIndex ${p.ignoreIndex})`,
      );
    }
  }
}

function moduleOf(ctx: WasmContext) {
  return ctx.module(...crossEntropyModule(ctx.features.relaxedSimd));
}

/** The wasm implementation of cross_entropy_rows: stats [N, 2] from logits and targets. */
export function crossEntropyRowsWasm(
  [logits, targets]: WasmArg[],
  [stats]: WasmArg[],
  p: Params,
  ctx: WasmContext,
): void {
  if (p.rows === 0) return;
  checkTargets(ctx, targets, p);
  const args = [p.classes, addr(logits), addr(targets), addr(stats), p.ignoreIndex];
  runItems(ctx, moduleOf(ctx), "rows", p.rows, 1.1 * p.rows * p.classes, args);
}

/** The wasm implementation of cross_entropy_mean: sums [2] = (mean loss, count). */
export function crossEntropyMeanWasm(
  [stats, targets]: WasmArg[],
  [sums]: WasmArg[],
  p: Params,
  ctx: WasmContext,
): void {
  const chunks = Math.max(1, Math.ceil(p.rows / MEAN_CHUNK));
  const out = ctx.scratch(16 * chunks);
  const args = [p.rows, addr(stats), addr(targets), p.ignoreIndex, out];
  runItems(ctx, moduleOf(ctx), "mean", chunks, 3 * p.rows, args);
  const part = ctx.heap.f64(out, 2 * chunks);
  let s = 0;
  let count = 0;
  for (let c = 0; c < chunks; c++) {
    s += part[2 * c];
    count += part[2 * c + 1];
  }
  ctx.heap.f32(addr(sums), 2).set([s / Math.max(count, 1), count]);
}

/** The wasm implementation of cross_entropy_backward: dlogits [N, V]. */
export function crossEntropyBackwardWasm(
  [logits, targets, stats, sums, dy]: WasmArg[],
  [dx]: WasmArg[],
  p: Params,
  ctx: WasmContext,
): void {
  if (p.rows === 0) return;
  checkTargets(ctx, targets, p);
  const g = ctx.heap.f32(addr(dy), 1)[0] / Math.max(ctx.heap.f32(addr(sums), 2)[1], 1);
  const args = [p.classes, addr(logits), addr(targets), addr(stats), addr(dx), p.ignoreIndex, g];
  runItems(ctx, moduleOf(ctx), "backward", p.rows, 0.8 * p.rows * p.classes, args);
}
