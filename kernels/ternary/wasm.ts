// Ternary × int8 products on the wasm backend, on exactly the packed formats of
// format.ts: W u32 [N, KW] (KW = ceil(K/16); 2-bit codes c = q + 1, value 16j + 4g + b
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
// 0..2; on this AVX-VNNI CPU it sustains ~2 per cycle, as a single instruction would) or,
// without relaxed SIMD, i16x8.extmul of the two halves plus a pairwise add. Integer sums are
// exact, so every path gives the same bits.
//
// Blocking: GEMV (T = 1) takes 8 rows at a time: per block of 4 W words, the 4 X' vectors stay
// in registers and each row's W vector is loaded once and shifted 4 times (8 accumulators).
// GEMM unpacks a block of 4 rows' codes once ((W >> 2g) & 3 for every word and g, R·K bytes in
// L1) and runs every token block of 2 over it: per shift, 4 code vectors in registers and each
// token's X' vector loaded once, so the loop is only loads and dots (4 × 2 accumulators).
// Both stream all of K and leave sums that a scalar epilogue dequantises. Rows past N and
// tokens past T are clamped to the last one (recomputed, written twice with the same value).
// Threads split the row blocks into contiguous ranges; each thread transposes X' into its own
// scratch (T · 4·KW words: no barrier, about 1% of a GEMM).
//
// Limits (tests/bench/wasm_ternary_bench.ts, this 2-core Zen 5): GEMV streams W once and is
// bound by W bandwidth and the 12 vector ops per 64 weights (1×4096·4096×11008: 0.29 ms on 2
// threads, 39 GB/s of packed W; 1×2048·2048²: 0.030 ms, where the fork/join is a few µs);
// GEMM by the dot throughput (128×2048·2048²: 2.8 ms, ~1.4 dots per cycle a core of the
// 2 possible). Without relaxed SIMD the extmul path is 4-6× slower.

import type { WasmArg, WasmContext } from "../../engine/wasm/context.ts";
import type { WasmFeatures } from "../../engine/wasm/features.ts";
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
const GEMM_ROWS = 4;
/** Tokens of the GEMM microkernel (4 × 2 accumulators + 4 code vectors + 1 X' in registers). */
const GEMM_TOKENS = 2;
/** i32 sums a microkernel leaves. */
const SUMS = Math.ceil(Math.max(GEMV_ROWS, GEMM_ROWS * GEMM_TOKENS) / 4) * 4;
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

/** Store Σ of the 4 lanes of each accumulator to out[i]. */
function storeSums(f: FunctionBuilder, acc: Local[], out: Local) {
  acc.forEach((a, i) => {
    f.get(out);
    for (let l = 0; l < 4; l++) {
      f.get(a);
      f.i32x4.extractLane(l);
      if (l) f.i32.add();
    }
    f.i32.store(4 * i);
  });
}

/**
 * gemv(w_0..w_{R-1}, x, nb, rem, out): out[r] = Σ codes of row r · X' of one token, over nb
 * blocks of 4 words plus `rem` tail words. Each W vector is loaded once and shifted 4 times
 * against the block's 4 X' vectors, which stay in registers for all R rows.
 */
function gemvKernel(b: ModuleBuilder, R: number, relaxed: boolean) {
  return b.func(`gemv${R}`, new Array(R + 4).fill("i32"), [], (f) => {
    const w = f.params.slice(0, R);
    const [x, nb, rem, out] = f.params.slice(R);
    const acc = Array.from({ length: R }, () => f.local("v128"));
    const xv = Array.from({ length: 4 }, () => f.local("v128"));
    const [wv, c, mask] = [0, 1, 2].map(() => f.local("v128"));
    f.i32.const(3);
    f.i8x16.splat();
    f.set(mask);
    const block = (loadW: (r: number) => void) => {
      for (let g = 0; g < 4; g++) (f.get(x), f.v128.load(16 * g), f.set(xv[g]));
      for (let r = 0; r < R; r++) {
        loadW(r);
        for (let g = 0; g < 4; g++) {
          // c = (wv >> 2g) & 0x03 per byte
          f.get(wv);
          if (g) (f.i32.const(2 * g), f.i32x4.shrU());
          f.get(mask);
          f.v128.and();
          f.set(c);
          dot(f, relaxed, xv[g], c, acc[r]);
        }
      }
    };
    f.repeat(nb, () => {
      block((r) => (f.get(w[r]), f.v128.load(0, 2), f.set(wv)));
      for (const p of w) f.inc(p, 16);
      f.inc(x, 64);
    });
    f.get(rem);
    f.if();
    block((r) => loadTail(f, w[r], rem, wv));
    f.end();
    storeSums(f, acc, out);
  });
}

/**
 * unpack(w_0..w_{R-1}, nb, rem, dst): the codes of R rows, once per row block of the GEMM:
 * dst[J][g][r] = (W_r block J >> 2g) & 0x03 per byte (v128 each; the tail block included).
 */
function unpack(b: ModuleBuilder, R: number) {
  return b.func(`unpack${R}`, new Array(R + 3).fill("i32"), [], (f) => {
    const w = f.params.slice(0, R);
    const [nb, rem, dst] = f.params.slice(R);
    const [wv, mask] = [f.local("v128"), f.local("v128")];
    f.i32.const(3);
    f.i8x16.splat();
    f.set(mask);
    const block = (loadW: (r: number) => void) => {
      for (let r = 0; r < R; r++) {
        loadW(r);
        for (let g = 0; g < 4; g++) {
          f.get(dst);
          f.get(wv);
          if (g) (f.i32.const(2 * g), f.i32x4.shrU());
          f.get(mask);
          f.v128.and();
          f.v128.store(16 * (g * R + r));
        }
      }
      f.inc(dst, 64 * R);
    };
    f.repeat(nb, () => {
      block((r) => (f.get(w[r]), f.v128.load(0, 2), f.set(wv)));
      for (const p of w) f.inc(p, 16);
    });
    f.get(rem);
    f.if();
    block((r) => loadTail(f, w[r], rem, wv));
    f.end();
  });
}

/**
 * gemm(codes, x_0..x_{TT-1}, blocks, out): out[r·TT + t] = Σ unpacked codes of row r · X' of
 * token t. Per shift: R code vectors in registers, each token's X' vector loaded once and dotted
 * with all of them: no shift or mask in the loop, only loads and dots.
 */
function gemmKernel(b: ModuleBuilder, R: number, TT: number, relaxed: boolean) {
  return b.func(`gemm${R}x${TT}`, new Array(TT + 3).fill("i32"), [], (f) => {
    const [codes] = f.params;
    const x = f.params.slice(1, 1 + TT);
    const [nb, out] = f.params.slice(1 + TT);
    const acc = Array.from({ length: R * TT }, () => f.local("v128"));
    const cv = Array.from({ length: R }, () => f.local("v128"));
    const xv = f.local("v128");
    f.repeat(nb, () => {
      for (let g = 0; g < 4; g++) {
        for (let r = 0; r < R; r++) (f.get(codes), f.v128.load(16 * (g * R + r)), f.set(cv[r]));
        for (let t = 0; t < TT; t++) {
          f.get(x[t]);
          f.v128.load(16 * g);
          f.set(xv);
          for (let r = 0; r < R; r++) dot(f, relaxed, xv, cv[r], acc[r * TT + t]);
        }
      }
      f.inc(codes, 64 * R);
      for (const p of x) f.inc(p, 64);
    });
    storeSums(f, acc, out);
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

/**
 * out(sum, n, t, N, xsum, inv, bias, y, raw): y[t, n] = raw ? acc : f32(acc) · inv[t] (+ bias[n])
 * with acc = sum − xsum[t]; the f32 steps round as the CPU reference's.
 */
function epilogue(b: ModuleBuilder) {
  return b.func("out", new Array(9).fill("i32"), [], (f) => {
    const [sum, n, t, N, xsum, inv, bias, y, raw] = f.params;
    const [acc, at] = [f.local("i32"), f.local("i32")];
    f.get(sum);
    f.add(xsum, () => f.mul(t, 4));
    f.i32.load();
    f.i32.sub();
    f.set(acc);
    f.set(at, () => f.add(y, () => f.mul(() => f.add(() => f.mul(t, N), n), 4)));
    f.get(raw);
    f.if();
    f.get(at);
    f.get(acc);
    f.i32.store();
    f.return();
    f.end();
    f.get(at);
    f.get(acc);
    f.f32.convertI32S();
    f.add(inv, () => f.mul(t, 4));
    f.f32.load();
    f.f32.mul();
    f.get(bias);
    f.if("f32");
    f.add(bias, () => f.mul(n, 4));
    f.f32.load();
    f.else();
    f.f32.const(0); // + 0, as the reference adds
    f.end();
    f.f32.add();
    f.f32.store();
  });
}

const DRIVER_PARAMS = [
  ...["tid", "n", "T", "N", "KW", "w", "x", "xsum", "inv", "bias", "y", "raw"],
  ...["scratch", "perThread"],
] as const;

/**
 * The exported driver: transpose X' into this thread's scratch (then its R·TT sums, then the
 * GEMM's unpacked codes), then for this thread's row blocks: GEMV (T = 1) rows, or unpack the
 * block's codes once and run every token block; each sum goes through `out`.
 */
function buildTernary(b: ModuleBuilder, relaxed: boolean): void {
  const [xT, out] = [transpose(b), epilogue(b)];
  const gemv = gemvKernel(b, GEMV_ROWS, relaxed);
  const [unp, gemm] = [unpack(b, GEMM_ROWS), gemmKernel(b, GEMM_ROWS, GEMM_TOKENS, relaxed)];
  b.export("ternary", DRIVER_PARAMS.map(() => "i32"), [], (f) => {
    const P = Object.fromEntries(DRIVER_PARAMS.map((k, i) => [k, f.params[i]])) as Record<
      (typeof DRIVER_PARAMS)[number],
      Local
    >;
    const [xt, sums, codes, nb, rem, rb, hi, t0, tokenBytes] = Array.from(
      { length: 9 },
      () => f.local("i32"),
    );
    /** Push min(v, count − 1): rows past N and tokens past T clamp to the last. */
    const clamp = (v: () => void, count: Local) => f.min(v, () => f.add(count, -1));
    const row = (r: number, R: number) => clamp(() => f.add(() => f.mul(rb, R), r), P.N);
    const token = (t: number) => clamp(() => f.add(t0, t), P.T);
    const rowPtrs = (R: number) => {
      for (let r = 0; r < R; r++) f.add(P.w, () => f.mul(() => row(r, R), () => f.mul(P.KW, 4)));
    };
    const outputs = (R: number, TT: number) => {
      for (let r = 0; r < R; r++) {
        for (let t = 0; t < TT; t++) {
          f.get(sums);
          f.i32.load(4 * (r * TT + t));
          row(r, R);
          token(t);
          [P.N, P.xsum, P.inv, P.bias, P.y, P.raw].forEach((p) => f.get(p));
          f.call(out);
        }
      }
    };
    /** This thread's row blocks of R rows: [blocks·tid / n, blocks·(tid + 1) / n). */
    const rowBlocks = (R: number, body: () => void) => {
      const blocks = () => (f.add(P.N, R - 1), f.i32.const(R), f.i32.divU());
      f.set(rb, () => f.mulDiv(blocks, P.tid, P.n));
      f.set(hi, () => f.mulDiv(blocks, () => f.add(P.tid, 1), P.n));
      f.for(rb, rb, hi, 1, body);
    };
    f.set(xt, () => f.add(P.scratch, () => f.mul(P.tid, P.perThread)));
    f.set(
      tokenBytes,
      () => (f.add(P.KW, 3), f.i32.const(2), f.i32.shrU(), f.i32.const(64), f.i32.mul()),
    );
    f.set(sums, () => f.add(xt, () => f.mul(P.T, tokenBytes)));
    f.set(codes, () => f.add(sums, 4 * SUMS));
    f.set(nb, () => (f.get(P.KW), f.i32.const(2), f.i32.shrU()));
    f.set(rem, () => (f.get(P.KW), f.i32.const(3), f.i32.and()));
    [P.x, P.T, P.KW, xt].forEach((p) => f.get(p));
    f.call(xT);
    f.get(P.T);
    f.i32.const(1);
    f.i32.eq();
    f.if();
    rowBlocks(GEMV_ROWS, () => {
      rowPtrs(GEMV_ROWS);
      [xt, nb, rem, sums].forEach((p) => f.get(p));
      f.call(gemv);
      outputs(GEMV_ROWS, 1);
    });
    f.else();
    rowBlocks(GEMM_ROWS, () => {
      rowPtrs(GEMM_ROWS);
      [nb, rem, codes].forEach((p) => f.get(p));
      f.call(unp);
      f.for(t0, 0, P.T, GEMM_TOKENS, () => {
        f.get(codes);
        for (let t = 0; t < GEMM_TOKENS; t++) f.add(xt, () => f.mul(() => token(t), tokenBytes));
        f.add(P.KW, 3);
        f.i32.const(2);
        f.i32.shrU();
        f.get(sums);
        f.call(gemm);
        outputs(GEMM_ROWS, GEMM_TOKENS);
      });
    });
    f.end();
  });
}

/** The ternary module for a runtime: cache key and builder (see matmulModule). */
export function ternaryModule(features: WasmFeatures): [string, (b: ModuleBuilder) => void] {
  const relaxed = features.relaxedSimd;
  return [`ternary|${relaxed ? "relaxed" : "simd"}`, (b) => buildTernary(b, relaxed)];
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
  const mod = ctx.module(...ternaryModule(ctx.features));
  let inv = 0;
  if (sx) {
    // 1 / (s_w · s_x[t]) in f32, exactly as the CPU reference rounds it.
    inv = ctx.scratch(4 * p.T);
    const s = ctx.heap.f32(at(sx), p.T);
    const out = ctx.heap.f32(inv, p.T);
    for (let t = 0; t < p.T; t++) out[t] = 1 / Math.fround(p.scale * s[t]);
  }
  const threads = p.T * p.N * KW < SERIAL_WORK ? 1 : ctx.threads;
  // X' of every token, the sums, and the GEMM's unpacked codes of one row block.
  const bytes = (p.T + GEMM_ROWS) * tokenBytes(KW) + 4 * SUMS;
  const perThread = Math.ceil(bytes / 64) * 64;
  const scratch = ctx.scratch(perThread * threads);
  ctx.run(mod, "ternary", [
    ...[p.T, p.N, KW, at(w), at(x), at(xsum), inv, bias ? at(bias) : 0, at(y), p.raw ? 1 : 0],
    ...[scratch, perThread],
  ], threads);
}
