// reduce_rows on the wasm backend: x [R, L] row-major -> y [R] (sum, max: f32; argmax: i32).
// A row of at most CHUNK elements is reduced by one thread; the rows are split into contiguous
// ranges over the threads. Longer rows are cut into chunks of CHUNK elements (fixed, whatever
// the thread count): the (row, chunk) items are split over the threads, each leaves a partial
// in scratch, and a second launch combines each row's partials in chunk order. So every result
// is the same for any thread count.
// A run of elements: sum keeps four f32x4 accumulators (16 elements a step; then single vectors
// into the first), adds them pairwise ((a0 + a1) + (a2 + a3), then the lanes likewise) and adds
// the last L % 4 elements in order; f32 throughout. max and argmax keep the best value and its
// index per lane (a strictly greater value replaces it, so NaN never does and the first of equal
// values stays), then lanes are merged with ties to the lower index, then the tail in order: the
// CPU reference's result bit for bit (a row of only −∞ or NaN gives −∞ at index 0).
// Limits: memory for sum (the four accumulators hide the add latency), the compare-select chain
// for max; launches of fewer than PARALLEL_WORK elements (elementwise/wasm.ts) stay on one thread.

import type { WasmArg, WasmContext } from "../engine/wasm/context.ts";
import type { FunctionBuilder, Local, ModuleBuilder } from "../engine/wasm/builder.ts";
import { requireSimd, threadsFor } from "./elementwise/wasm.ts";

/** The reductions of reduce_rows. */
export type WasmReduceKind = "sum" | "max" | "argmax";

/** Elements per partial of a long row. */
export const CHUNK = 2048;

/** The locals of one run's result: its value and (max, argmax) the index of the value. */
interface RunLocals {
  val: Local;
  idx: Local;
}

/** Reduce `count` f32 at `p` (element index of the first: `start`) into r.val (and r.idx). */
function run(
  f: FunctionBuilder,
  kind: WasmReduceKind,
  p: Local,
  count: Local,
  start: Local,
  r: RunLocals,
) {
  const v = Array.from({ length: 4 }, () => f.local("v128"));
  const lane = (x: Local, l: number) => (f.get(x), f.f32x4.extractLane(l));
  if (kind === "sum") {
    v.forEach((a) => (f.f32x4.const([0, 0, 0, 0]), f.set(a)));
    f.repeat(() => (f.get(count), f.i32.const(4), f.i32.shrU()), () => {
      v.forEach((a, j) => {
        f.get(a);
        f.get(p);
        f.v128.load(16 * j, 0);
        f.f32x4.add();
        f.set(a);
      });
      f.inc(p, 64);
    });
    f.repeat(
      () => (f.get(count), f.i32.const(2), f.i32.shrU(), f.i32.const(3), f.i32.and()),
      () => {
        (f.get(v[0]), f.get(p), f.v128.load(0, 0), f.f32x4.add(), f.set(v[0]));
        f.inc(p, 16);
      },
    );
    (f.get(v[0]), f.get(v[1]), f.f32x4.add(), f.get(v[2]), f.get(v[3]), f.f32x4.add());
    (f.f32x4.add(), f.set(v[0]));
    (lane(v[0], 0), lane(v[0], 1), f.f32.add(), lane(v[0], 2), lane(v[0], 3), f.f32.add());
    (f.f32.add(), f.set(r.val));
    f.repeat(() => (f.get(count), f.i32.const(3), f.i32.and()), () => {
      (f.get(r.val), f.get(p), f.f32.load(0, 0), f.f32.add(), f.set(r.val));
      f.inc(p, 4);
    });
    return;
  }
  const [best, bi, idx, x] = v;
  const gt = f.local("v128");
  (f.f32.const(-Infinity), f.f32x4.splat(), f.set(best));
  (f.i32x4.const([0, 0, 0, 0]), f.set(bi));
  (f.get(start), f.i32x4.splat(), f.i32x4.const([0, 1, 2, 3]), f.i32x4.add(), f.set(idx));
  f.repeat(() => (f.get(count), f.i32.const(2), f.i32.shrU()), () => {
    (f.get(p), f.v128.load(0, 0), f.set(x));
    (f.get(x), f.get(best), f.f32x4.gt(), f.set(gt));
    (f.get(x), f.get(best), f.get(gt), f.v128.bitselect(), f.set(best));
    (f.get(idx), f.get(bi), f.get(gt), f.v128.bitselect(), f.set(bi));
    (f.get(idx), f.i32x4.const([4, 4, 4, 4]), f.i32x4.add(), f.set(idx));
    f.inc(p, 16);
  });
  // Lanes: greater, or equal at a lower index; then the tail in order (strictly greater).
  (lane(best, 0), f.set(r.val), f.get(bi), f.i32x4.extractLane(0), f.set(r.idx));
  const lv = f.local("f32");
  const li = f.local("i32");
  const take = () => {
    f.if();
    (f.get(lv), f.set(r.val), f.get(li), f.set(r.idx));
    f.end();
  };
  for (let l = 1; l < 4; l++) {
    (lane(best, l), f.set(lv), f.get(bi), f.i32x4.extractLane(l), f.set(li));
    (f.get(lv), f.get(r.val), f.f32.gt());
    (f.get(lv), f.get(r.val), f.f32.eq(), f.get(li), f.get(r.idx), f.i32.ltS(), f.i32.and());
    f.i32.or();
    take();
  }
  f.set(li, () => f.add(start, () => (f.get(count), f.i32.const(-4), f.i32.and())));
  f.repeat(() => (f.get(count), f.i32.const(3), f.i32.and()), () => {
    (f.get(p), f.f32.load(0, 0), f.set(lv));
    (f.get(lv), f.get(r.val), f.f32.gt());
    take();
    f.inc(p, 4);
    f.inc(li);
  });
}

/** Store a result: sum and max write the value (f32), argmax the index (i32), at y + 4·i. */
function store(f: FunctionBuilder, kind: WasmReduceKind, y: Local, i: () => void, r: RunLocals) {
  f.add(y, () => f.mul(i, 4));
  if (kind === "argmax") (f.get(r.idx), f.i32.store(0, 0));
  else (f.get(r.val), f.f32.store(0, 0));
}

/**
 * The module of one kind: rows(tid, n, x, y, R, L) reduces whole rows; partials(tid, n, x, part,
 * R, L, chunks) leaves (value, index) pairs, chunk-major within a row; combine(tid, n, part, y,
 * R, chunks) merges each row's pairs in order.
 */
function buildReduce(b: ModuleBuilder, kind: WasmReduceKind): void {
  const locals = (f: FunctionBuilder): RunLocals => ({ val: f.local("f32"), idx: f.local("i32") });
  // Max and argmax: nothing beat −∞ (all −∞ or NaN) → index 0, as the CPU loop.
  const settle = (f: FunctionBuilder, r: RunLocals) => {
    if (kind === "sum") return;
    (f.get(r.val), f.f32.const(-Infinity), f.f32.gt(), f.i32.eqz(), f.if());
    f.set(r.idx, 0);
    f.end();
  };
  b.export("rows", ["i32", "i32", "i32", "i32", "i32", "i32"], [], (f) => {
    const [tid, nth, x, y, R, L] = f.params;
    const [row, end, p, zero] = [0, 1, 2, 3].map(() => f.local("i32"));
    const r = locals(f);
    f.set(row, () => f.mulDiv(R, tid, nth));
    f.set(end, () => f.mulDiv(R, () => f.add(tid, 1), nth));
    f.for(row, row, end, 1, () => {
      f.set(p, () => f.add(x, () => f.mul(() => f.mul(row, L), 4)));
      run(f, kind, p, L, zero, r);
      settle(f, r);
      store(f, kind, y, () => f.get(row), r);
    });
  });
  b.export("partials", ["i32", "i32", "i32", "i32", "i32", "i32", "i32"], [], (f) => {
    const [tid, nth, x, part, R, L, chunks] = f.params;
    const [item, end, row, start, count, p] = [0, 1, 2, 3, 4, 5].map(() => f.local("i32"));
    const r = locals(f);
    const total = () => f.mul(R, chunks);
    f.set(item, () => f.mulDiv(total, tid, nth));
    f.set(end, () => f.mulDiv(total, () => f.add(tid, 1), nth));
    f.for(item, item, end, 1, () => {
      f.set(row, () => (f.get(item), f.get(chunks), f.i32.divU()));
      f.set(start, () => f.mul(() => (f.get(item), f.get(chunks), f.i32.remU()), CHUNK));
      f.set(count, () => f.min(CHUNK, () => f.sub(L, start)));
      f.set(p, () => f.add(x, () => f.mul(() => f.add(() => f.mul(row, L), start), 4)));
      run(f, kind, p, count, start, r);
      (f.add(part, () => f.mul(item, 8)), f.get(r.val), f.f32.store(0, 0));
      (f.add(part, () => f.mul(item, 8)), f.get(r.idx), f.i32.store(4, 0));
    });
  });
  b.export("combine", ["i32", "i32", "i32", "i32", "i32", "i32"], [], (f) => {
    const [tid, nth, part, y, R, chunks] = f.params;
    const [row, end, c, q] = [0, 1, 2, 3].map(() => f.local("i32"));
    const r = locals(f);
    const v = f.local("f32");
    f.set(row, () => f.mulDiv(R, tid, nth));
    f.set(end, () => f.mulDiv(R, () => f.add(tid, 1), nth));
    f.for(row, row, end, 1, () => {
      f.set(q, () => f.add(part, () => f.mul(() => f.mul(row, chunks), 8)));
      (f.f32.const(kind === "sum" ? 0 : -Infinity), f.set(r.val), f.set(r.idx, 0));
      f.for(c, 0, chunks, 1, () => {
        (f.get(q), f.f32.load(0, 0), f.set(v));
        if (kind === "sum") (f.get(r.val), f.get(v), f.f32.add(), f.set(r.val));
        else {
          (f.get(v), f.get(r.val), f.f32.gt(), f.if());
          (f.get(v), f.set(r.val), f.get(q), f.i32.load(4, 0), f.set(r.idx));
          f.end();
        }
        f.inc(q, 8);
      });
      store(f, kind, y, () => f.get(row), r);
    });
  });
}

/** reduce_rows of an f32 x [R, L] (row-major from its offset) into y [R]. */
export function reduceRowsWasm(
  x: WasmArg,
  y: WasmArg,
  kind: WasmReduceKind,
  L: number,
  ctx: WasmContext,
): void {
  const R = y.shape[0];
  if (R === 0) return;
  requireSimd(ctx, "reduce_rows");
  const mod = ctx.module(`reduce_rows|${kind}`, (b) => buildReduce(b, kind));
  const [xp, yp] = [x.ptr + 4 * x.offset, y.ptr + 4 * y.offset];
  const threads = threadsFor(ctx, R * L);
  if (L <= CHUNK) return ctx.run(mod, "rows", [xp, yp, R, L], threads);
  const chunks = Math.ceil(L / CHUNK);
  const part = ctx.scratch(8 * R * chunks);
  ctx.run(mod, "partials", [xp, part, R, L, chunks], threads);
  ctx.run(mod, "combine", [part, yp, R, chunks], threadsFor(ctx, R * chunks));
}
