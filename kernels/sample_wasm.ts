// Sampling on the wasm backend (sample.ts's topk, multinomial and sample_logits), one row per
// item: rows are claimed in chunks by the threads (wasm_launch.ts's runItems), each thread with
// its own scratch.
// Draws are the CPU reference's: the same uniforms (the engine's Threefry stream, counter =
// offset + row·numSamples + sample, computed on the calling thread, one per draw) and the same
// float64 arithmetic in the same order: weights, their sums in index order, u·total and the
// inverse-CDF scan. multinomial is therefore bit-identical to the reference. sample_logits
// also needs exp(z − max): a port of fdlibm's exp (what V8's Math.exp descends from), within
// 1 ulp of Math.exp (equal in ~90% of cases; tests/kernels/sample_test.ts), so a draw can differ
// only where u·total falls within ~1e-16 (relative) of a cumulative boundary.
// Order (topk, and sample_logits' top-k and top-p): a stable LSD radix sort (4 passes of 8
// bits) of order-preserving keys of the f32 values, descending, ties by lower index, NaN last.
// The temperature-scaled z = x / T (float64) orders exactly as x does for T > 0 (a float64
// quotient of distinct f32 never collides), so sorting x gives the reference's order of z.
// The scalar float64 code is not vectorised: it mirrors the reference step for step.
// Limits: the scans and the sort are sequential float64 and integer code per row (one row is
// one thread's). At decode, one row of the char model's 65 logits takes 3-6 µs (the CPU
// reference on the heap 75-90 µs: no TypeScript path would be faster); a GPT-2 row of 50,257
// with top-k 50 and top-p 0.9 ~770 µs (the reference ~28,000 µs, its sort).

import type { FunctionBuilder, I32Expr, Local, ModuleBuilder } from "../engine/wasm/builder.ts";
import type { WasmArg, WasmContext } from "../engine/wasm/context.ts";
import { wordAt, wordToUniform } from "../engine/random.ts";
import { RowGen } from "./rows/wasm_math.ts";
import { addr, runItems, threadsFor } from "./rows/wasm_launch.ts";
import { exp64, radix, scratchLayout, scratchOf, sortRow } from "./sample_wasm_sort.ts";

const I32 = (n: number) => Array<"i32">(n).fill("i32");

/** f64 of the f32 at base + 4·j. */
function f32At(f: FunctionBuilder, base: Local, j: Local | (() => void)): void {
  f.add(base, () => f.mul(j, 4));
  f.f32.load();
  f.f64.promoteF32();
}

/** f64 at base + 8·j. */
function f64At(f: FunctionBuilder, base: Local, j: Local | (() => void)): void {
  f.add(base, () => f.mul(j, 8));
  f.f64.load();
}

/**
 * res = the first j with w_0 + … + w_j > target and w_j > 0, else the last j with w_j > 0,
 * else −1 (the reference's invCdf; `w(j)` pushes w_j as f64).
 */
function invCdf(f: FunctionBuilder, w: (j: Local) => void, V: Local, target: Local, res: Local) {
  const [j, last] = [f.local("i32"), f.local("i32")];
  const [c, wj] = [f.local("f64"), f.local("f64")];
  f.set(last, -1);
  f.f64.const(0);
  f.set(c);
  const done = f.block();
  f.for(j, 0, V, 1, () => {
    w(j);
    f.set(wj);
    f.get(wj);
    f.f64.const(0);
    f.f64.gt();
    f.if();
    f.set(last, j);
    f.end();
    f.get(c);
    f.get(wj);
    f.f64.add();
    f.set(c);
    f.get(c);
    f.get(target);
    f.f64.gt();
    f.get(wj);
    f.f64.const(0);
    f.f64.gt();
    f.i32.and();
    f.if();
    f.set(res, j);
    f.br(done);
    f.end();
  });
  f.set(res, last);
  f.end();
}

/**
 * multinomial(tid, n, rows, chunk, claim, V, ns, x, y, u): ns inverse-CDF draws per row of
 * weights x.
 */
function multinomial(b: ModuleBuilder): void {
  b.export("multinomial", I32(10), [], (f) => {
    const [, , rows, chunk, claim, V, ns, x, y, u] = f.params;
    const g = new RowGen(f, false);
    const [xr, j, s, res, at] = Array.from({ length: 5 }, () => f.local("i32"));
    const [total, target] = [f.local("f64"), f.local("f64")];
    const w = (k: Local) => {
      // max(x, 0) as the reference's (x > 0 ? x : 0): NaN gives 0.
      f32At(f, xr, k);
      f.f64.const(0);
      f32At(f, xr, k);
      f.f64.const(0);
      f.f64.gt();
      f.select();
    };
    g.eachRow(rows, chunk, claim, (r) => {
      g.rowBase(xr, x, r, V);
      f.f64.const(0);
      f.set(total);
      f.for(j, 0, V, 1, () => (f.get(total), w(j), f.f64.add(), f.set(total)));
      f.for(s, 0, ns, 1, () => {
        f.set(at, () => f.add(() => f.mul(r, ns), s));
        f64At(f, u, at);
        f.get(total);
        f.f64.mul();
        f.set(target);
        invCdf(f, w, V, target, res);
        f.add(y, () => f.mul(at, 4));
        f.get(res);
        f.i32.store();
      });
    });
  });
}

/**
 * topk(tid, n, rows, chunk, claim, L, k, x, vals, idx, scratch, perThread): the k largest of
 * each row.
 */
function topk(b: ModuleBuilder, sort: ReturnType<typeof radix>): void {
  b.export("topk", I32(12), [], (f) => {
    const [tid, , rows, chunk, claim, L, k, x, vals, idx, scratch, per] = f.params;
    const g = new RowGen(f, false);
    const sc = scratchOf(f, tid, scratch, per, L);
    const [xr, s, o, at] = Array.from({ length: 4 }, () => f.local("i32"));
    g.eachRow(rows, chunk, claim, (r) => {
      g.rowBase(xr, x, r, L);
      sortRow(f, sort, xr, L, sc);
      f.for(s, 0, k, 1, () => {
        f.set(o, () => (f.add(sc.idx, () => f.mul(s, 4)), f.i32.load()));
        f.set(at, () => f.mul(() => f.add(() => f.mul(r, k), s), 4));
        f.add(vals, at);
        f.add(xr, () => f.mul(o, 4));
        f.f32.load();
        f.f32.store();
        f.add(idx, at);
        f.get(o);
        f.i32.store();
      });
    });
  });
}

/**
 * sample(tid, n, rows, chunk, claim, V, x, y, u, topK, T, P, scratch, perThread): one draw per
 * row from softmax(x / T) under top-k and top-p, as the reference's keepMask and invCdf.
 */
function sample(b: ModuleBuilder, sort: ReturnType<typeof radix>, exp: ReturnType<typeof exp64>) {
  b.export("sample", [...I32(10), "f64", "f64", "i32", "i32"], [], (f) => {
    const [tid, , rows, chunk, claim, V, x, y, u, topK, T, P, scratch, per] = f.params;
    const g = new RowGen(f, false);
    const sc = scratchOf(f, tid, scratch, per, V);
    const [xr, j, i, gi, sorted, byK, res] = Array.from({ length: 7 }, () => f.local("i32"));
    const [m, kth, S, thr, above, mass, zi, total, target] = Array.from(
      { length: 9 },
      () => f.local("f64"),
    );
    const z = (k: Local | (() => void)) => f64At(f, sc.z, k);
    const e = (k: Local | (() => void)) => f64At(f, sc.e, k);
    const order = (k: I32Expr) => () => (f.add(sc.idx, () => f.mul(k, 4)), f.i32.load());
    // topK in (0, V) filters by rank; either filter needs the order.
    f.set(
      byK,
      () => (f.get(topK),
        f.i32.const(0),
        f.i32.gtS(),
        f.get(topK),
        f.get(V),
        f.i32.ltS(),
        f.i32.and()),
    );
    f.set(sorted, () => (f.get(byK), f.get(P), f.f64.const(1), f.f64.lt(), f.i32.or()));
    g.eachRow(rows, chunk, claim, (r) => {
      g.rowBase(xr, x, r, V);
      f.for(j, 0, V, 1, () => {
        f.add(sc.z, () => f.mul(j, 8));
        f32At(f, xr, j);
        f.get(T);
        f.f64.div();
        f.f64.store();
      });
      // m = the largest z; kth = the topK-th largest (−inf without top-k).
      f.get(sorted);
      f.if();
      sortRow(f, sort, xr, V, sc);
      z(order(0));
      f.set(m);
      f.else();
      f.f64.const(-Infinity);
      f.set(m);
      f.for(j, 0, V, 1, () => {
        z(j);
        f.get(m);
        f.f64.gt();
        f.if();
        z(j);
        f.set(m);
        f.end();
      });
      f.end();
      f.f64.const(-Infinity);
      f.set(kth);
      f.get(byK);
      f.if();
      z(() => (f.add(sc.idx, () => f.mul(() => f.sub(topK, 1), 4)), f.i32.load()));
      f.set(kth);
      f.end();
      // e = z >= kth ? exp(z − m) : 0, S = Σ e in index order.
      f.f64.const(0);
      f.set(S);
      f.for(j, 0, V, 1, () => {
        f.add(sc.e, () => f.mul(j, 8));
        z(j);
        f.get(kth);
        f.f64.ge();
        f.if("f64");
        z(j);
        f.get(m);
        f.f64.sub();
        f.call(exp);
        f.else();
        f.f64.const(0);
        f.end();
        f.f64.store();
        f.get(S);
        e(j);
        f.f64.add();
        f.set(S);
      });
      f.get(kth);
      f.set(thr);
      // Top-p: walk groups of equal z from the top while the mass above them is below p·S.
      f.get(P);
      f.f64.const(1);
      f.f64.lt();
      f.if();
      f.f64.const(0);
      f.set(above);
      f.set(i, 0);
      const walk = f.block();
      const next = f.loop();
      f.get(i);
      f.get(V);
      f.i32.geS();
      f.brIf(walk);
      z(order(i));
      f.set(zi);
      f.set(gi, i);
      f.f64.const(0);
      f.set(mass);
      const group = f.block();
      const more = f.loop();
      f.get(gi);
      f.get(V);
      f.i32.geS();
      f.brIf(group);
      z(order(gi));
      f.get(zi);
      f.f64.ne();
      f.brIf(group);
      f.get(mass);
      e(order(gi));
      f.f64.add();
      f.set(mass);
      f.inc(gi);
      f.br(more);
      f.end();
      f.end();
      f.get(above);
      f.get(P);
      f.get(S);
      f.f64.mul();
      f.f64.ge();
      e(order(i));
      f.f64.const(0);
      f.f64.eq();
      f.i32.or();
      f.brIf(walk);
      f.get(zi);
      f.set(thr);
      f.get(above);
      f.get(mass);
      f.f64.add();
      f.set(above);
      f.set(i, gi);
      f.br(next);
      f.end();
      f.end();
      f.end();
      // Keep z >= thr; total in index order; draw.
      f.f64.const(0);
      f.set(total);
      f.for(j, 0, V, 1, () => {
        z(j);
        f.get(thr);
        f.f64.ge();
        f.i32.eqz();
        f.if();
        f.add(sc.e, () => f.mul(j, 8));
        f.f64.const(0);
        f.f64.store();
        f.end();
        f.get(total);
        e(j);
        f.f64.add();
        f.set(total);
      });
      f64At(f, u, r);
      f.get(total);
      f.f64.mul();
      f.set(target);
      invCdf(f, (k) => e(k), V, target, res);
      f.add(y, () => f.mul(r, 4));
      f.get(res);
      f.i32.store();
    });
  });
}

/** The sampling module: its cache key and builder. */
export function sampleModule(): [string, (b: ModuleBuilder) => void] {
  return ["sample", (b) => {
    const sort = radix(b);
    const exp = exp64(b);
    multinomial(b);
    topk(b, sort);
    sample(b, sort, exp);
    // exp(tid, n, count, x, y): exp64 over f64 arrays (its accuracy test).
    b.export("exp", I32(5), [], (f) => {
      const [, , count, x, y] = f.params;
      const j = f.local("i32");
      f.for(j, 0, count, 1, () => {
        f.add(y, () => f.mul(j, 8));
        f64At(f, x, j);
        f.call(exp);
        f.f64.store();
      });
    });
  }];
}

/** Where one sampling call's uniforms sit in the Threefry stream (sample.ts's SampleDrawParams). */
interface DrawParams {
  key: [number, number];
  offset: number;
  numSamples: number;
}

/** The uniforms of `rows` × numSamples draws (the reference's drawUniform), in scratch (f64). */
function uniforms(ctx: WasmContext, p: DrawParams, rows: number): number {
  const n = rows * p.numSamples;
  const ptr = ctx.scratch(8 * Math.max(1, n));
  const u = ctx.heap.f64(ptr, n);
  for (let i = 0; i < n; i++) u[i] = wordToUniform(wordAt(p.key, p.offset + i)[0]);
  return ptr;
}

const moduleOf = (ctx: WasmContext) => ctx.module(...sampleModule());

/** Per-thread scratch for sorting rows of `len`: [address, bytes per thread]. */
function sortScratch(ctx: WasmContext, len: number, threads: number): [number, number] {
  const per = scratchLayout(len).bytes;
  return [ctx.scratch(per * threads), per];
}

/** The wasm implementation of multinomial: probs [N, V] -> i32 [N, numSamples]. */
export function multinomialWasm([p]: WasmArg[], [y]: WasmArg[], d: DrawParams, ctx: WasmContext) {
  const [N, V] = p.shape;
  if (N === 0) return;
  const u = uniforms(ctx, d, N);
  const args = [V, d.numSamples, addr(p), addr(y), u];
  runItems(ctx, moduleOf(ctx), "multinomial", N, 2 * N * V * (1 + d.numSamples), args);
}

/** Parameters of sample_logits (sample.ts's SampleLogitsParams). */
interface SampleParams extends DrawParams {
  temperature: number;
  topK: number;
  topP: number;
}

/** The wasm implementation of sample_logits: logits [N, V] -> i32 [N]. */
export function sampleLogitsWasm(
  [x]: WasmArg[],
  [y]: WasmArg[],
  p: SampleParams,
  ctx: WasmContext,
) {
  const [N, V] = x.shape;
  if (N === 0) return;
  const u = uniforms(ctx, p, N);
  const ns = N * (2000 + 15 * V);
  const threads = threadsFor(ctx.threads, N, ns);
  const [scratch, per] = sortScratch(ctx, V, threads);
  // The reference reads temperature and p as f32, as the WGSL does.
  const [T, P] = [Math.fround(p.temperature), Math.fround(p.topP)];
  const args = [V, addr(x), addr(y), u, p.topK, T, P, scratch, per];
  runItems(ctx, moduleOf(ctx), "sample", N, ns, args, threads);
}

/** The wasm implementation of topk: x [R, L] -> values [R, k], indices [R, k]. */
export function topkWasm(
  [x]: WasmArg[],
  [vals, idx]: WasmArg[],
  { k }: { k: number },
  ctx: WasmContext,
) {
  const [R, L] = x.shape;
  if (R === 0 || k === 0) return;
  const ns = R * (1500 + 10 * L);
  const threads = threadsFor(ctx.threads, R, ns);
  const [scratch, per] = sortScratch(ctx, L, threads);
  const args = [L, k, addr(x), addr(vals), addr(idx), scratch, per];
  runItems(ctx, moduleOf(ctx), "topk", R, ns, args, threads);
}
