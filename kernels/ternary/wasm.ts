// Ternary × int8 products on the wasm backend, on exactly the packed formats of
// kernels/ternary.ts: W u32 [N, KW] (KW = ceil(K/16); 2-bit codes c = q + 1, value 16j + 4g + b
// of a row at bits 8b + 2g of word j) times activations x u32 [T, 4·KW] (int8, value k in byte
// k % 4 of word k / 4), with per-token scale s_x [T] and sum Σx [T]:
//   acc[t, n] = Σ_k c[n, k]·x[t, k] − Σx[t]   (= Σ q·x exactly, in i32)
//   y[t, n]   = f32(acc) · f32(1 / f32(s_w · s_x[t])) (+ bias[n])   (f32 ops, as the CPU reference)
// or the raw acc (i32) for tests.
//
// Layout trick: a v128 of weights holds words j..j+3 of a row; `(W >> 2g) & 0x03` per byte is
// then the codes of values 16(j+l) + 4g + b in lane l, byte b, which pair with activation words
// 4(j+l) + g. So each thread first copies every token's activations once into that order
// (X'[t][J][g] = words 16J + g, 16J + 4 + g, 16J + 8 + g, 16J + 12 + g; zeros past the row),
// and the inner loop is: load W, shift, and, dot with one contiguous X' vector. The dot is
// i32x4.relaxed_dot_i8x16_i7x16_add_s (x as i8, codes as i7: deterministic because codes are
// 0..2; V8 emits vpdpbusd on AVX-VNNI CPUs) or, without relaxed SIMD, i16x8.extmul of the two
// halves plus a pairwise add. Integer sums are exact, so every path gives the same bits.
//
// Blocking: a microkernel owns R rows × TT tokens (GEMV: 8 rows × 1 token, holding each W
// vector across its 4 shifts; GEMM: 3 rows × 3 tokens, holding TT X' vectors per shift), streams
// all of K, and leaves R·TT sums; a scalar epilogue dequantises. The row block's W (R·K/4 bytes)
// stays in L1 while the token blocks stream X' from L2. Rows past N and tokens past T are
// clamped to the last one (recomputed, written twice with the same value).
// Threads split the row blocks into contiguous ranges; each thread transposes X' into its own
// scratch (T · 4·KW words: no barrier, about 1% of a GEMM).
//
// Limits: GEMV streams W once (N·K/4 bytes) and is memory- and fork/join-bound (1-2 µs per
// call hot, 30-50 µs when the worker has gone to sleep); GEMM is bound by the dot throughput
// and the shift/and work per W vector that the TT tokens share.

import type { WasmArg, WasmContext } from "../../engine/wasm/context.ts";
import type { FunctionBuilder, Local, ModuleBuilder } from "../../engine/wasm/builder.ts";

/** What the wasm ternary product needs (structurally part of kernels' GemmParams). */
export interface TernaryDims {
  /** Output features (rows of W). */
  N: number;
  /** Input features (before padding to 16). */
  K: number;
  /** Tokens. */
  T: number;
  /** Weight scale s_w (outputs are divided by s_w · s_x). */
  scale: number;
  /** Write the raw i32 sums instead of dequantised f32. */
  raw: boolean;
  /** A bias f32 [N] is the last input. */
  bias: boolean;
}

/** Rows of the GEMV (T = 1) microkernel (8 accumulators + 4 X' vectors + 3 in registers). */
const GEMV_ROWS = 8;
/** Rows of the GEMM microkernel. */
const GEMM_ROWS = 3;
/** Tokens of the GEMM microkernel (3 × 3 accumulators + 3 X' vectors + 3 in registers). */
const GEMM_TOKENS = 3;
/** i32 sums a microkernel leaves. */
const SUMS = Math.max(GEMV_ROWS, GEMM_ROWS * GEMM_TOKENS);
/** Fewer weight words × tokens than this run on one thread. */
const SERIAL_WORK = 1 << 14;

/** acc = acc + Σ4 x·c per i32 lane (x: i8 activations, c: codes 0..2), on the stack: x c acc. */
function dot(f: FunctionBuilder, relaxed: boolean, x: Local, c: Local, acc: Local) {
  if (relaxed) {
    f.get(x);
    f.get(c);
    f.get(acc);
    f.i32x4.relaxedDotI8x16I7x16AddS();
  } else {
    f.get(x);
    f.get(c);
    f.i16x8.extmulLowI8x16S();
    f.get(x);
    f.get(c);
    f.i16x8.extmulHighI8x16S();
    f.i16x8.add(); // |Σ| <= 2·2·128, fits i16
    f.i32x4.extaddPairwiseI16x8S();
    f.get(acc);
    f.i32x4.add();
  }
  f.set(acc);
}

/** v = the last `rem` (1-3) words of a W block at `p`, zeros above (no read past the row). */
function loadTail(f: FunctionBuilder, p: Local, rem: Local, v: Local) {
  f.get(rem);
  f.i32.const(1);
  f.i32.eq();
  f.if();
  f.get(p);
  f.v128.load32Zero();
  f.set(v);
  f.else();
  f.get(p);
  f.v128.load64Zero(0, 2);
  f.set(v);
  f.get(rem);
  f.i32.const(3);
  f.i32.eq();
  f.if();
  f.get(v);
  f.get(p);
  f.i32.load(8);
  f.i32x4.replaceLane(2);
  f.set(v);
  f.end();
  f.end();
}

/** Byte indices of an i8x16.shuffle that picks 32-bit words (0-3 first operand, 4-7 second). */
const words = (w: number[]) => w.flatMap((i) => [4 * i, 4 * i + 1, 4 * i + 2, 4 * i + 3]);

/**
 * micro{R}x{TT}(w_0..w_{R-1}, x_0..x_{TT-1}, nb, rem, out): for R weight rows (pointers to their
 * first word) and TT tokens (pointers into X'), out[r·TT + t] = Σ codes · x over nb blocks of 4
 * words plus `rem` tail words. With TT = 1 each W vector is loaded once and shifted 4 times;
 * otherwise the TT X' vectors of a shift are loaded once and each row's W vector reloaded.
 */
function micro(b: ModuleBuilder, R: number, TT: number, relaxed: boolean) {
  const params = new Array(R + TT + 3).fill("i32");
  return b.func(`micro${R}x${TT}`, params, [], (f) => {
    const w = f.params.slice(0, R);
    const x = f.params.slice(R, R + TT);
    const [nb, rem, out] = f.params.slice(R + TT);
    const acc = Array.from({ length: R * TT }, () => f.local("v128"));
    const xv = Array.from({ length: TT === 1 ? 4 : TT }, () => f.local("v128"));
    const [wv, c, mask] = [0, 1, 2].map(() => f.local("v128"));
    const j = f.local("i32");
    f.i32.const(3);
    f.i8x16.splat();
    f.set(mask);
    /** c = (wv >> 2g) & 0x03 per byte. */
    const codes = (g: number) => {
      f.get(wv);
      if (g) (f.i32.const(2 * g), f.i32x4.shrU());
      f.get(mask);
      f.v128.and();
      f.set(c);
    };
    /** One block of 4 W words per row; loadW(r) sets wv to row r's block. */
    const block = (loadW: (r: number) => void) => {
      if (TT === 1) {
        for (let g = 0; g < 4; g++) (f.get(x[0]), f.v128.load(16 * g), f.set(xv[g]));
        for (let r = 0; r < R; r++) {
          loadW(r);
          for (let g = 0; g < 4; g++) (codes(g), dot(f, relaxed, xv[g], c, acc[r]));
        }
        return;
      }
      for (let g = 0; g < 4; g++) {
        for (let t = 0; t < TT; t++) (f.get(x[t]), f.v128.load(16 * g), f.set(xv[t]));
        for (let r = 0; r < R; r++) {
          loadW(r);
          codes(g);
          for (let t = 0; t < TT; t++) dot(f, relaxed, xv[t], c, acc[r * TT + t]);
        }
      }
    };
    f.set(j, nb);
    const done = f.block();
    f.get(j);
    f.i32.eqz();
    f.brIf(done);
    const top = f.loop();
    block((r) => (f.get(w[r]), f.v128.load(0, 2), f.set(wv)));
    for (const p of w) f.inc(p, 16);
    for (const p of x) f.inc(p, 64);
    f.inc(j, -1);
    f.get(j);
    f.brIf(top);
    f.end();
    f.end();
    f.get(rem);
    f.if();
    block((r) => loadTail(f, w[r], rem, wv));
    f.end();
    acc.forEach((a, i) => {
      // out[i] = Σ of the 4 lanes.
      f.get(out);
      for (let l = 0; l < 4; l++) {
        f.get(a);
        f.i32x4.extractLane(l);
        if (l) f.i32.add();
      }
      f.i32.store(4 * i);
    });
  });
}

/**
 * transpose(x, T, KW, dst): every token's activation words into X' order (see the header):
 * dst[t][J][g][l] = x[t][16J + 4l + g] for words 4J + l < KW of the weight row, else 0.
 */
function transpose(b: ModuleBuilder) {
  return b.func("transpose", ["i32", "i32", "i32", "i32"], [], (f) => {
    const [x, T, KW, dst] = f.params;
    const [t, jb, l, g, src, d, full] = [0, 1, 2, 3, 4, 5, 6].map(() => f.local("i32"));
    const rows = [0, 1, 2, 3].map(() => f.local("v128"));
    const [lo, hi] = [f.local("v128"), f.local("v128")];
    f.set(src, x);
    f.set(d, dst);
    f.set(full, () => (f.get(KW), f.i32.const(2), f.i32.shrU()));
    f.for(t, 0, T, 1, () => {
      f.for(jb, 0, full, 1, () => {
        // A 4 × 4 transpose of words: rows[l] = words 16J + 4l .. + 3.
        rows.forEach((r, i) => (f.get(src), f.v128.load(16 * i, 2), f.set(r)));
        for (const [p, q, lo4, hi4] of [[0, 1, lo, hi], [2, 3, rows[0], rows[1]]] as const) {
          f.get(rows[p]);
          f.get(rows[q]);
          f.i8x16.shuffle(words([0, 4, 1, 5]));
          f.get(rows[p]);
          f.get(rows[q]);
          f.i8x16.shuffle(words([2, 6, 3, 7]));
          f.set(hi4);
          f.set(lo4);
        }
        // lo = a0 b0 a1 b1, hi = a2 b2 a3 b3; rows[0] = c0 d0 c1 d1, rows[1] = c2 d2 c3 d3.
        const out: [Local, Local, number[]][] = [
          [lo, rows[0], [0, 1, 4, 5]],
          [lo, rows[0], [2, 3, 6, 7]],
          [hi, rows[1], [0, 1, 4, 5]],
          [hi, rows[1], [2, 3, 6, 7]],
        ];
        out.forEach(([p, q, sel], i) => {
          f.get(d);
          f.get(p);
          f.get(q);
          f.i8x16.shuffle(words(sel));
          f.v128.store(16 * i);
        });
        f.inc(src, 64);
        f.inc(d, 64);
      });
      // The tail block (KW % 4 words of W): word by word, zeros past the row.
      f.get(KW);
      f.i32.const(3);
      f.i32.and();
      f.if();
      f.for(g, 0, 4, 1, () => {
        f.for(l, 0, 4, 1, () => {
          f.add(d, () => f.mul(() => f.add(() => f.mul(g, 4), l), 4));
          f.add(() => f.mul(full, 4), l);
          f.get(KW);
          f.i32.ltU();
          f.if("i32");
          f.add(src, () => f.mul(() => f.add(() => f.mul(l, 4), g), 4));
          f.i32.load();
          f.else();
          f.i32.const(0);
          f.end();
          f.i32.store();
        });
      });
      f.inc(d, 64);
      f.inc(src, () => (f.get(KW), f.i32.const(3), f.i32.and(), f.i32.const(16), f.i32.mul()));
      f.end();
    });
  });
}

const DRIVER_PARAMS = [
  ...["tid", "n", "T", "N", "KW", "w", "x", "xsum", "inv", "bias", "y", "raw"],
  ...["scratch", "perThread"],
] as const;

/**
 * The exported driver: transpose X' into this thread's scratch, then for this thread's row
 * blocks and every token block, the microkernel and the epilogue
 * y[t, n] = raw ? acc : f32(acc) · inv[t] (+ bias[n]), acc = sum − xsum[t].
 */
function buildTernary(b: ModuleBuilder, relaxed: boolean): void {
  const xT = transpose(b);
  const kernels = [micro(b, GEMV_ROWS, 1, relaxed), micro(b, GEMM_ROWS, GEMM_TOKENS, relaxed)];
  b.export("ternary", DRIVER_PARAMS.map(() => "i32"), [], (f) => {
    const P = Object.fromEntries(DRIVER_PARAMS.map((k, i) => [k, f.params[i]])) as Record<
      (typeof DRIVER_PARAMS)[number],
      Local
    >;
    const [xt, res, nbFull, rem, blocks, rb, hi, t0, tokenBytes, acc, off, ti, ni] = Array.from(
      { length: 13 },
      () => f.local("i32"),
    );
    const minLast = (v: () => void, count: Local) => () => {
      // min(v, count - 1)
      v();
      f.add(count, -1);
      v();
      f.add(count, -1);
      f.i32.ltS();
      f.select();
    };
    f.set(xt, () => f.add(P.scratch, () => f.mul(P.tid, P.perThread)));
    f.set(
      tokenBytes,
      () => (f.add(P.KW, 3), f.i32.const(2), f.i32.shrU(), f.i32.const(64), f.i32.mul()),
    );
    f.set(res, () => f.add(xt, () => f.mul(P.T, tokenBytes)));
    f.set(nbFull, () => (f.get(P.KW), f.i32.const(2), f.i32.shrU()));
    f.set(rem, () => (f.get(P.KW), f.i32.const(3), f.i32.and()));
    [P.x, P.T, P.KW, xt].forEach((p) => f.get(p));
    f.call(xT);
    kernels.forEach((k, variant) => {
      const [R, TT] = variant === 0 ? [GEMV_ROWS, 1] : [GEMM_ROWS, GEMM_TOKENS];
      f.get(P.T);
      f.i32.const(1);
      f.i32[variant === 0 ? "eq" : "ne"]();
      f.if();
      f.set(blocks, () => (f.add(P.N, R - 1), f.i32.const(R), f.i32.divU()));
      // This thread's row blocks: [blocks·tid / n, blocks·(tid + 1) / n).
      f.set(rb, () => (f.mul(blocks, P.tid), f.get(P.n), f.i32.divU()));
      f.set(hi, () => (f.mul(blocks, () => f.add(P.tid, 1)), f.get(P.n), f.i32.divU()));
      f.for(rb, rb, hi, 1, () => {
        f.for(t0, 0, P.T, TT, () => {
          for (let r = 0; r < R; r++) {
            minLast(() => f.add(() => f.mul(rb, R), r), P.N)();
            f.get(P.KW);
            f.i32.mul();
            f.i32.const(4);
            f.i32.mul();
            f.get(P.w);
            f.i32.add();
          }
          for (let t = 0; t < TT; t++) {
            f.add(xt, () => f.mul(minLast(() => f.add(t0, t), P.T), tokenBytes));
          }
          [nbFull, rem, res].forEach((p) => f.get(p));
          f.call(k);
          for (let r = 0; r < R; r++) {
            for (let t = 0; t < TT; t++) {
              f.set(ni, minLast(() => f.add(() => f.mul(rb, R), r), P.N));
              f.set(ti, minLast(() => f.add(t0, t), P.T));
              f.get(res);
              f.i32.load(4 * (r * TT + t));
              f.add(P.xsum, () => f.mul(ti, 4));
              f.i32.load();
              f.i32.sub();
              f.set(acc);
              f.set(off, () => f.mul(() => f.add(() => f.mul(ti, P.N), ni), 4));
              f.get(P.raw);
              f.if();
              f.add(P.y, off);
              f.get(acc);
              f.i32.store();
              f.else();
              f.add(P.y, off);
              f.get(acc);
              f.f32.convertI32S();
              f.add(P.inv, () => f.mul(ti, 4));
              f.f32.load();
              f.f32.mul();
              f.get(P.bias);
              f.if("f32");
              f.add(P.bias, () => f.mul(ni, 4));
              f.f32.load();
              f.else();
              f.f32.const(0); // + 0 as the reference adds
              f.end();
              f.f32.add();
              f.f32.store();
              f.end();
            }
          }
        });
      });
      f.end();
    });
  });
}

/** Bytes of a token's X' (4·KW words rounded up to whole blocks of 16). */
const tokenBytes = (KW: number) => 64 * Math.ceil(KW / 4);

/**
 * The wasm ternary product. Inputs as ternaryMatmulOp's: packed W u32 [N, KW], x u32 [T, 4·KW],
 * then (unless raw) s_x f32 [T], then Σx i32 [T], then (with bias) f32 [N]; output [T, N] f32
 * (or i32 when raw), row-major. Every input must be contiguous.
 */
export function ternaryWasm(
  inputs: WasmArg[],
  [y]: WasmArg[],
  p: TernaryDims,
  ctx: WasmContext,
): void {
  const KW = Math.ceil(p.K / 16);
  const at = (a: WasmArg) => a.ptr + 4 * a.offset;
  const [w, x] = inputs;
  const sx = p.raw ? null : inputs[2];
  const xsum = inputs[p.raw ? 2 : 3];
  const bias = p.bias && !p.raw ? inputs[4] : null;
  if (y.dtype !== (p.raw ? "i32" : "f32")) {
    throw new TypeError(`ternary (wasm): output ${y.dtype}; f64 output exists only on the cpu`);
  }
  if (!ctx.features.simd) throw new Error("ternary (wasm): this runtime lacks WebAssembly SIMD");
  const relaxed = ctx.features.relaxedSimd;
  const mod = ctx.module(
    `ternary|${relaxed ? "relaxed" : "simd"}`,
    (m) => buildTernary(m, relaxed),
  );
  let inv = 0;
  if (sx) {
    // 1 / (s_w · s_x[t]) in f32, exactly as the CPU reference rounds it.
    inv = ctx.scratch(4 * p.T);
    const s = ctx.heap.f32(at(sx), p.T);
    const out = ctx.heap.f32(inv, p.T);
    for (let t = 0; t < p.T; t++) out[t] = 1 / Math.fround(p.scale * s[t]);
  }
  const threads = p.T * p.N * KW < SERIAL_WORK ? 1 : ctx.threads;
  const perThread = Math.ceil((p.T * tokenBytes(KW) + 4 * SUMS) / 64) * 64;
  const scratch = ctx.scratch(perThread * threads);
  ctx.run(mod, "ternary", [
    ...[p.T, p.N, KW, at(w), at(x), at(xsum), inv, bias ? at(bias) : 0, at(y), p.raw ? 1 : 0],
    ...[scratch, perThread],
  ], threads);
}
