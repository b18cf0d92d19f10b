// The pieces of the wasm matmul (wasm.ts) that touch the operands: the register-blocked
// microkernels, packing, and the copy of a partial tile into C.
//
// micro(pa, lda, pb, ldb, kc, c, ldc, accumulate): C[mr × NR] (=|+=) A[mr × kc] · B[kc × NR].
// Per k it loads NR/4 vectors of B, splats each of the mr values of A and does mr · NR/4
// f32x4 multiply-adds (relaxed_madd where the runtime has it) into accumulators that stay in
// registers for the whole k range; k is unrolled by UNROLL. Where each operand is read from:
// - A "packed": strips of MR rows, k-major (the MR values of one k contiguous), from packA.
// - A "rows": A itself, row-major (each row contiguous in k): one pointer per row, values at
//   immediate offsets within the unrolled steps. No packing: a product whose N is small
//   (attention's 64 × 64 · 64 × 32) would spend a third of its time packing A.
// - A "cols": A itself, column-major (the mr values of one k contiguous, Aᵀ·B of the weight
//   gradients): one pointer stepping lda bytes per k.
// - B "packed": strips of NR columns, k-major, from packB.
// - B "rows": B itself, row-major with a full strip of NR columns: one pointer stepping ldb
//   bytes per k.
// Every mode sums each element of C over k in the same order (k ascending, one multiply-add
// per k into the same accumulator), so the modes give the same bytes (wasm_matmul_test.ts).

import type { FuncRef, FunctionBuilder, Local, ModuleBuilder } from "../../engine/wasm/builder.ts";

/** Register block: MR rows × NR columns of C per microkernel call. */
export const MR = 6;
/** Columns per microkernel (a multiple of 4: f32x4 vectors). */
export const NR = 8;
/** k steps unrolled in the microkernel. */
const UNROLL = 4;
const NV = NR / 4;

/** Where the microkernel reads A. */
export type AMode = "packed" | "rows" | "cols";
/** Where the microkernel reads B. */
export type BMode = "packed" | "rows";

const I32 = (n: number) => Array<"i32">(n).fill("i32");

/** acc = a · b + acc (v128 locals): one fused or unfused multiply-add. */
function madd(f: FunctionBuilder, relaxed: boolean, a: Local, b: Local, acc: Local) {
  f.get(a);
  f.get(b);
  if (relaxed) {
    f.get(acc);
    f.f32x4.relaxedMadd();
  } else {
    f.f32x4.mul();
    f.get(acc);
    f.f32x4.add();
  }
  f.set(acc);
}

/** The microkernel for mr rows and these operand modes (see the header). */
export function micro(b: ModuleBuilder, mr: number, relaxed: boolean, am: AMode, bm: BMode) {
  return b.func(`micro${mr}_${am}_${bm}`, I32(8), [], (f) => {
    const [pa, lda, pb, ldb, kc, c, ldc, accumulate] = f.params;
    const acc = Array.from({ length: mr * NV }, () => f.local("v128"));
    const bv = Array.from({ length: NV }, () => f.local("v128"));
    const a = f.local("v128");
    const rows = am === "rows" ? Array.from({ length: mr }, () => f.local("i32")) : [];
    rows.forEach((p, r) => f.set(p, () => f.add(pa, () => f.mul(lda, r))));
    const step = (u: number) => {
      for (let v = 0; v < NV; v++) {
        f.get(pb);
        f.v128.load(bm === "packed" ? 16 * (u * NV + v) : 16 * v, bm === "packed" ? 4 : 2);
        f.set(bv[v]);
      }
      if (bm === "rows") f.inc(pb, ldb);
      for (let r = 0; r < mr; r++) {
        if (am === "packed") (f.get(pa), f.v128.load32Splat(4 * (u * MR + r)));
        else if (am === "rows") (f.get(rows[r]), f.v128.load32Splat(4 * u));
        else (f.get(pa), f.v128.load32Splat(4 * r));
        f.set(a);
        for (let v = 0; v < NV; v++) madd(f, relaxed, a, bv[v], acc[r * NV + v]);
      }
      if (am === "cols") f.inc(pa, lda);
    };
    const loop = (unroll: number, count: () => void) =>
      f.repeat(count, () => {
        for (let u = 0; u < unroll; u++) step(u);
        if (am === "packed") f.inc(pa, 4 * MR * unroll);
        for (const p of rows) f.inc(p, 4 * unroll);
        if (bm === "packed") f.inc(pb, 4 * NR * unroll);
      });
    loop(UNROLL, () => (f.get(kc), f.i32.const(Math.log2(UNROLL)), f.i32.shrU()));
    loop(1, () => (f.get(kc), f.i32.const(UNROLL - 1), f.i32.and()));
    // Store (first k block) or add to C, row by row.
    const stores = (add: boolean) => {
      for (let r = 0; r < mr; r++) {
        for (let v = 0; v < NV; v++) {
          f.get(c);
          if (add) {
            f.get(c);
            f.v128.load(16 * v, 2);
          }
          f.get(acc[r * NV + v]);
          if (add) f.f32x4.add();
          f.v128.store(16 * v, 2);
        }
        if (r + 1 < mr) f.inc(c, ldc);
      }
    };
    f.get(accumulate);
    f.if();
    stores(true);
    f.else();
    stores(false);
    f.end();
  });
}

/** Copy n f32 from p (stride sp bytes) to d (stride sd bytes), or zeros when p is null. */
function copyRun(f: FunctionBuilder, p: Local | null, sp: Local, d: Local, sd: number, n: Local) {
  const k = f.local("i32");
  f.for(k, 0, n, 1, () => {
    f.get(d);
    if (p === null) f.f32.const(0);
    else {
      f.get(p);
      f.f32.load();
      f.inc(p, sp);
    }
    f.f32.store();
    f.inc(d, sd);
  });
}

/**
 * packA(src, sr, sc, rows, kc, dst): A[rows × kc] (byte strides sr, sc) into strips of MR rows,
 * k-major within a strip (dst[s][k][r]); rows past `rows` are zeros. A full strip walks its MR
 * rows together (one pointer each), a load and a store per element.
 */
export function packA(b: ModuleBuilder): FuncRef {
  return b.func("packA", I32(6), [], (f) => {
    const [src, sr, sc, rows, kc, dst] = f.params;
    const [i, d, k, row, out] = [0, 1, 2, 3, 4].map(() => f.local("i32"));
    const rowPtr = Array.from({ length: MR }, () => f.local("i32"));
    f.for(i, 0, rows, MR, () => {
      // Strip i / MR starts at float i·kc.
      f.set(d, () => f.add(dst, () => f.mul(() => f.mul(i, kc), 4)));
      f.add(i, MR);
      f.get(rows);
      f.i32.leS();
      f.if();
      rowPtr.forEach((q, r) => f.set(q, () => f.add(src, () => f.mul(() => f.add(i, r), sr))));
      f.for(k, 0, kc, 1, () => {
        rowPtr.forEach((q, r) => {
          f.get(d);
          f.get(q);
          f.f32.load();
          f.f32.store(4 * r);
          f.inc(q, sc);
        });
        f.inc(d, 4 * MR);
      });
      f.else();
      // The last, partial strip: row by row, zeros past `rows`.
      for (let r = 0; r < MR; r++) {
        f.set(out, () => f.add(d, 4 * r));
        f.add(i, r);
        f.get(rows);
        f.i32.ltS();
        f.if();
        f.set(row, () => f.add(src, () => f.mul(() => f.add(i, r), sr)));
        copyRun(f, row, sc, out, 4 * MR, kc);
        f.else();
        copyRun(f, null, sc, out, 4 * MR, kc);
        f.end();
      }
      f.end();
    });
  });
}

/**
 * packB(src, sr, sc, kc, cols, dst): B[kc × cols] (byte strides sr, sc) into strips of NR
 * columns, k-major (dst[s][k][c]); columns past `cols` are zeros. Full strips of a row-major B
 * copy NR/4 vectors per k; of a column-major one, transpose 4 × 4 blocks of vectors.
 */
export function packB(b: ModuleBuilder): FuncRef {
  return b.func("packB", I32(6), [], (f) => {
    const [src, sr, sc, kc, cols, dst] = f.params;
    const [j, k, p, d, d0, k4, rest] = [0, 1, 2, 3, 4, 5, 6].map(() => f.local("i32"));
    const colv = Array.from({ length: 4 }, () => f.local("v128"));
    const tv = Array.from({ length: 4 }, () => f.local("v128"));
    f.for(j, 0, cols, NR, () => {
      f.set(d0, () => f.add(dst, () => f.mul(() => f.mul(j, kc), 4)));
      f.get(sc);
      f.i32.const(4);
      f.i32.eq();
      f.add(j, NR);
      f.get(cols);
      f.i32.leS();
      f.i32.and();
      f.if();
      f.set(p, () => f.add(src, () => f.mul(j, 4)));
      f.set(d, d0);
      f.for(k, 0, kc, 1, () => {
        for (let v = 0; v < NV; v++) {
          f.get(d);
          f.get(p);
          f.v128.load(16 * v, 2);
          f.v128.store(16 * v);
        }
        f.inc(p, sr);
        f.inc(d, 4 * NR);
      });
      f.else();
      // A full strip of a column-major B (Wᵀ of x·Wᵀ): 4 k of each of 8 columns are 8 vector
      // loads, transposed in 4 × 4 blocks into 4 rows of the strip; the last kc % 4 by scalars.
      f.get(sr);
      f.i32.const(4);
      f.i32.eq();
      f.add(j, NR);
      f.get(cols);
      f.i32.leS();
      f.i32.and();
      f.if();
      f.set(k4, () => (f.get(kc), f.i32.const(-4), f.i32.and()));
      f.for(k, 0, k4, 4, () => {
        f.set(d, () => f.add(d0, () => f.mul(k, 4 * NR)));
        for (let h = 0; h < NV; h++) {
          colv.forEach((v, c) => {
            f.add(() => f.add(src, () => f.mul(() => f.add(j, 4 * h + c), sc)), () => f.mul(k, 4));
            f.v128.load(0, 2);
            f.set(v);
          });
          transpose4(f, colv, tv);
          tv.forEach((v, t) => {
            f.get(d);
            f.get(v);
            f.v128.store(4 * NR * t + 16 * h, 2);
          });
        }
      });
      for (let c = 0; c < NR; c++) {
        f.set(d, () => f.add(() => f.add(d0, 4 * c), () => f.mul(k4, 4 * NR)));
        f.set(
          p,
          () => f.add(() => f.add(src, () => f.mul(() => f.add(j, c), sc)), () => f.mul(k4, 4)),
        );
        f.set(rest, () => f.sub(kc, k4));
        copyRun(f, p, sr, d, 4 * NR, rest);
      }
      f.else();
      for (let c = 0; c < NR; c++) {
        f.set(d, () => f.add(d0, 4 * c));
        f.add(j, c);
        f.get(cols);
        f.i32.ltS();
        f.if();
        f.set(p, () => f.add(src, () => f.mul(() => f.add(j, c), sc)));
        copyRun(f, p, sr, d, 4 * NR, kc);
        f.else();
        copyRun(f, null, sr, d, 4 * NR, kc);
        f.end();
      }
      f.end();
      f.end();
    });
  });
}

/** out[t] lane c = in[c] lane t: a 4 × 4 transpose of v128 locals in 8 shuffles. */
function transpose4(f: FunctionBuilder, inp: Local[], out: Local[]): void {
  const lo = [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23]; // a0 b0 a1 b1
  const hi = lo.map((i) => i + 8); // a2 b2 a3 b3
  const first = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
  const second = first.map((i) => i + 8);
  const t = [f.local("v128"), f.local("v128"), f.local("v128"), f.local("v128")];
  [[inp[0], inp[1], lo, t[0]], [inp[2], inp[3], lo, t[1]], [inp[0], inp[1], hi, t[2]], [
    inp[2],
    inp[3],
    hi,
    t[3],
  ]].forEach(([a, b, idx, dst]) => {
    f.get(a as Local);
    f.get(b as Local);
    f.i8x16.shuffle(idx as number[]);
    f.set(dst as Local);
  });
  // out0 = a0 b0 c0 d0, out1 = a1 b1 c1 d1, out2 = a2 .., out3 = a3 ..
  [[t[0], t[1], first, out[0]], [t[0], t[1], second, out[1]], [t[2], t[3], first, out[2]], [
    t[2],
    t[3],
    second,
    out[3],
  ]].forEach(([a, b, idx, dst]) => {
    f.get(a as Local);
    f.get(b as Local);
    f.i8x16.shuffle(idx as number[]);
    f.set(dst as Local);
  });
}

/** copyEdge(tile, c, rows, cols, ldc, accumulate): C[rows × cols] (=|+=) tile (row stride NR). */
export function copyEdge(b: ModuleBuilder): FuncRef {
  return b.func("copyEdge", I32(6), [], (f) => {
    const [tile, c, rows, cols, ldc, accumulate] = f.params;
    const [r, j, dst] = [0, 1, 2].map(() => f.local("i32"));
    const v = f.local("f32");
    f.for(r, 0, rows, 1, () => {
      f.for(j, 0, cols, 1, () => {
        f.set(dst, () => f.add(() => f.add(c, () => f.mul(r, ldc)), () => f.mul(j, 4)));
        f.add(tile, () => f.mul(() => f.add(() => f.mul(r, NR), j), 4));
        f.f32.load();
        f.set(v);
        f.get(accumulate);
        f.if();
        f.get(dst);
        f.f32.load();
        f.get(v);
        f.f32.add();
        f.set(v);
        f.end();
        f.get(dst);
        f.get(v);
        f.f32.store();
      });
    });
  });
}
