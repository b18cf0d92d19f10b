// Matrix-vector products of the wasm matmul (wasm.ts) for M = 1, the decode step of generation
// (one token: x·Wᵀ, q·Kᵀ against the cache, attention·V): memory bound, so no packing and no
// register block over rows, just one pass over B.
// - "dot": B column-major (B[k, n] contiguous in k: a weight Wᵀ, a cached Kᵀ), A's row
//   contiguous. An item is 4 columns: 8 accumulators (4 columns × 2 k phases, so multiply-adds
//   overlap their latency) stream the 4 columns and the row of A in f32x4 vectors; the last
//   K % 8 values go through one phase with a partial vector; the 8 accumulators are added
//   pairwise and transposed into one vector of the 4 results.
// - "axpy": B row-major (a cached V, a row-major weight), A read through any stride. An item is
//   32 columns: 8 accumulator vectors, each k one splat of A's value and 8 multiply-adds with
//   B's row; a last chunk of fewer columns runs vector by vector, and its last N % 4 columns
//   as scalar dot products.
// Items (batch × column groups) are claimed in chunks by the threads (RowGen.eachChunk), and
// every output is summed by one thread in a fixed order, so results never depend on the thread
// count (they may differ in the last bits from the blocked GEMM's order, which sums k one by
// one). Limits: memory (B is read once: the baby GPT's 128 × 384 weight is 196 KB).

import type { FunctionBuilder, Local, ModuleBuilder } from "../../engine/wasm/builder.ts";
import { RowGen } from "../rows/wasm_math.ts";

const I32 = (n: number) => Array<"i32">(n).fill("i32");

/** Which matrix-vector form: B column-major (dot products) or row-major (axpy). */
export type GemvForm = "dot" | "axpy";

/** Columns per item of each form. */
export const GEMV_COLUMNS: Record<GemvForm, number> = { dot: 4, axpy: 32 };

/** acc (v128 local) += a · b, the two operands pushed by `a` and `b`. */
function fma(f: FunctionBuilder, g: RowGen, acc: Local, a: () => void, b: () => void): void {
  a();
  b();
  f.get(acc);
  g.madd();
  f.set(acc);
}

/**
 * dot(tid, n, items, chunk, claim, N, K, a, aSb, b, bSb, bSn, c): c[z, n] = Σ_k a[z, k]·B[z, k, n]
 * over items of 4 columns (batch · ceil(N / 4) of them, claimed in chunks).
 */
function dot(b: ModuleBuilder, relaxed: boolean): void {
  b.export("dot", I32(13), [], (f) => {
    const [, , items, chunk, claim, N, K, a, aSb, bm, bSb, bSn, c] = f.params;
    const g = new RowGen(f, relaxed);
    const [groups, z, n0, ar, k, k8, tail, kk, cp, cnt] = Array.from(
      { length: 10 },
      () => f.local("i32"),
    );
    const cols = Array.from({ length: 4 }, () => f.local("i32"));
    const acc = Array.from({ length: 8 }, () => f.local("v128"));
    const [x, t0, t1] = [f.local("v128"), f.local("v128"), f.local("v128")];
    f.set(groups, () => (f.add(N, 3), f.i32.const(2), f.i32.shrU()));
    f.set(k8, () => (f.get(K), f.i32.const(-8), f.i32.and()));
    g.eachRow(items, chunk, claim, (lo) => {
      f.set(z, () => (f.get(lo), f.get(groups), f.i32.divU()));
      f.set(n0, () => (f.get(lo), f.get(groups), f.i32.remU(), f.i32.const(2), f.i32.shl()));
      f.set(ar, () => f.add(a, () => f.mul(z, aSb)));
      // Column pointers; columns past N read column N − 1 and are not stored.
      cols.forEach((p, j) =>
        f.set(p, () =>
          f.add(
            () => f.add(bm, () => f.mul(z, bSb)),
            () => f.mul(() => f.min(() => f.add(n0, j), () => f.sub(N, 1)), bSn),
          ))
      );
      for (const v of acc) (g.splat(0), f.set(v));
      f.for(k, 0, k8, 8, () => {
        for (let h = 0; h < 2; h++) {
          f.add(ar, () => f.mul(k, 4));
          f.v128.load(16 * h, 0);
          f.set(x);
          cols.forEach((p, j) =>
            fma(
              f,
              g,
              acc[4 * h + j],
              () => f.get(x),
              () => (f.add(p, () => f.mul(k, 4)), f.v128.load(16 * h, 0)),
            )
          );
        }
      });
      // The last K % 8 values: whole vectors, then a partial one (zeros past K).
      f.for(kk, k8, K, 4, () => {
        f.set(tail, () => f.min(4, () => f.sub(K, kk)));
        f.set(cnt, () => (f.get(tail), f.i32.const(3), f.i32.and()));
        const load = (base: Local) => () => {
          f.get(cnt);
          f.if("v128");
          g.loadPart(() => f.add(base, () => f.mul(kk, 4)), cnt, 0);
          f.else();
          f.add(base, () => f.mul(kk, 4));
          f.v128.load(0, 0);
          f.end();
        };
        load(ar)();
        f.set(x);
        cols.forEach((p, j) => fma(f, g, acc[j], () => f.get(x), load(p)));
      });
      // r[j] = Σ lanes of (acc[j] + acc[4 + j]), lanes added as (l0 + l2) + (l1 + l3).
      for (let j = 0; j < 4; j++) (f.get(acc[j]), f.get(acc[4 + j]), f.f32x4.add(), f.set(acc[j]));
      const pairs = (p: Local, q: Local, dst: Local) => {
        f.get(p);
        f.get(q);
        f.i8x16.shuffle([0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23]);
        f.get(p);
        f.get(q);
        f.i8x16.shuffle([8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31]);
        f.f32x4.add();
        f.set(dst);
      };
      pairs(acc[0], acc[1], t0); // (a0+a2, b0+b2, a1+a3, b1+b3)
      pairs(acc[2], acc[3], t1);
      f.get(t0);
      f.get(t1);
      f.i8x16.shuffle([0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23]);
      f.get(t0);
      f.get(t1);
      f.i8x16.shuffle([8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31]);
      f.f32x4.add();
      f.set(x);
      f.set(cp, () => f.add(c, () => f.mul(() => f.add(() => f.mul(z, N), n0), 4)));
      f.set(cnt, () => f.min(4, () => f.sub(N, n0)));
      f.get(cnt);
      f.i32.const(4);
      f.i32.eq();
      f.if();
      f.get(cp);
      f.get(x);
      f.v128.store(0, 0);
      f.else();
      f.get(x);
      g.storePart(() => f.get(cp), cnt);
      f.end();
    });
  });
}

/**
 * axpy(tid, n, items, chunk, claim, N, K, a, aSb, aSc, b, bSb, bSr, c): c[z] = Σ_k a[z, k]·B[z,
 * k, :] over items of 32 columns (batch · ceil(N / 32) of them, claimed in chunks).
 */
function axpy(b: ModuleBuilder, relaxed: boolean): void {
  b.export("axpy", I32(14), [], (f) => {
    const [, , items, chunk, claim, N, K, a, aSb, aSc, bm, bSb, bSr, c] = f.params;
    const g = new RowGen(f, relaxed);
    const [groups, z, n0, w, k, ap, bp, cp, j, v4] = Array.from(
      { length: 10 },
      () => f.local("i32"),
    );
    const acc = Array.from({ length: 8 }, () => f.local("v128"));
    const s = f.local("v128");
    const sc = f.local("f32");
    f.set(groups, () => (f.add(N, 31), f.i32.const(5), f.i32.shrU()));
    g.eachRow(items, chunk, claim, (lo) => {
      f.set(z, () => (f.get(lo), f.get(groups), f.i32.divU()));
      f.set(n0, () => (f.get(lo), f.get(groups), f.i32.remU(), f.i32.const(5), f.i32.shl()));
      f.set(w, () => f.min(32, () => f.sub(N, n0)));
      f.set(cp, () => f.add(c, () => f.mul(() => f.add(() => f.mul(z, N), n0), 4)));
      const start = () => {
        f.set(ap, () => f.add(a, () => f.mul(z, aSb)));
        f.set(bp, () => f.add(() => f.add(bm, () => f.mul(z, bSb)), () => f.mul(n0, 4)));
      };
      f.get(w);
      f.i32.const(32);
      f.i32.eq();
      f.if();
      // A full chunk: 8 vectors of B's row per k.
      start();
      for (const v of acc) (g.splat(0), f.set(v));
      f.for(k, 0, K, 1, () => {
        f.get(ap);
        f.v128.load32Splat();
        f.set(s);
        acc.forEach((v, i) =>
          fma(f, g, v, () => f.get(s), () => (f.get(bp), f.v128.load(16 * i, 0)))
        );
        f.inc(ap, aSc);
        f.inc(bp, bSr);
      });
      acc.forEach((v, i) => (f.get(cp), f.get(v), f.v128.store(16 * i, 0)));
      f.else();
      // A last chunk: whole vectors one by one, then the last w % 4 columns as scalars.
      f.set(v4, () => (f.get(w), f.i32.const(-4), f.i32.and()));
      f.for(j, 0, v4, 4, () => {
        start();
        f.inc(bp, () => f.mul(j, 4));
        g.splat(0);
        f.set(acc[0]);
        f.for(k, 0, K, 1, () => {
          fma(
            f,
            g,
            acc[0],
            () => (f.get(ap), f.v128.load32Splat()),
            () => (f.get(bp), f.v128.load(0, 0)),
          );
          f.inc(ap, aSc);
          f.inc(bp, bSr);
        });
        f.add(cp, () => f.mul(j, 4));
        f.get(acc[0]);
        f.v128.store(0, 0);
      });
      f.for(j, v4, w, 1, () => {
        start();
        f.inc(bp, () => f.mul(j, 4));
        f.f32.const(0);
        f.set(sc);
        f.for(k, 0, K, 1, () => {
          f.get(sc);
          f.get(ap);
          f.f32.load();
          f.get(bp);
          f.f32.load();
          f.f32.mul();
          f.f32.add();
          f.set(sc);
          f.inc(ap, aSc);
          f.inc(bp, bSr);
        });
        f.add(cp, () => f.mul(j, 4));
        f.get(sc);
        f.f32.store();
      });
      f.end();
    });
  });
}

/** The matrix-vector module for a runtime: its cache key and builder. */
export function gemvModule(relaxed: boolean): [string, (b: ModuleBuilder) => void] {
  return [`gemv|${relaxed ? "relaxed" : "simd"}`, (b) => {
    dot(b, relaxed);
    axpy(b, relaxed);
  }];
}
