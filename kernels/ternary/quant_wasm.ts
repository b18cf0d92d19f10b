// The activation quantiser (quant.ts: RMSNorm, absmax int8 per token) on the wasm backend, both
// outputs: packed words with scale and sum (ternary_quant) or int8 levels as floats with scale
// and rstd (activation_levels). Bit-identical to the CPU reference in f32
// (format.ts's quantizeActivationLevels): the same f32 operations in the same order.
// Layout and launch: tokens [T, K] are claimed in chunks by the threads (runItems). A token
// takes three passes over its K values in f32x4 vectors: max|x·g| (NaN if any product is NaN,
// as Math.max gives), Σx² in the reference's order, then the quantisation. Σx² order: lane l of
// TERNARY_QUANT_WG = 64 sums words l, l + 64, … (a word = 4 values, in order), then the lanes
// are added in lane order. Four consecutive lanes run together: 4 words are loaded and
// transposed (8 shuffles) so that vector element i accumulates word 4G + i's values one at a
// time, each product and sum rounded to f32 (no fused multiply-add), exactly as the
// reference's loop. Levels are clamped (pmin/pmax) and rounded half to even by adding and
// subtracting 1.5·2^23; a NaN level becomes 0, as storing NaN in the reference's Int8Array
// does. Values past K are read as zeros, never loaded from past the row.
// Limits: compute, the three passes over a row in L1 (the Σx² pass's transposes the most); at
// BitGPT's [768, 128] a call takes ~70 µs (levels) or ~95 µs (packed) on one thread, the CPU
// reference on the heap ~1,800-3,000 µs.

import type { WasmArg, WasmContext } from "../../engine/wasm/context.ts";
import type { FunctionBuilder, Local, ModuleBuilder } from "../../engine/wasm/builder.ts";
import { RowGen } from "../rows/wasm_math.ts";
import { addr, runItems } from "../rows/wasm_launch.ts";
import { INT8_ACT_EPS, TERNARY_QUANT_WG } from "./format.ts";

/** Parameters as quant.ts's QuantParams. */
interface Params {
  tokens: number;
  inFeatures: number;
  eps: number;
}

const I32 = (n: number) => Array<"i32">(n).fill("i32");
const EPS_F = Math.fround(INT8_ACT_EPS);
const TINY_SCALE = Math.fround(127 / EPS_F);
/** 1.5·2^23: v + MAGIC − MAGIC rounds |v| < 2^22 to an integer, half to even. */
const MAGIC = 12582912;

/** Push word w (4 values at xr + 16w) of a row of K, values past K as 0. */
function word(f: FunctionBuilder, g: RowGen, xr: Local, w: Local, K: Local, count: Local) {
  const at = () => f.add(xr, () => f.mul(w, 16));
  f.set(count, () => f.sub(K, () => f.mul(w, 4)));
  f.get(count);
  f.i32.const(4);
  f.i32.geS();
  f.if("v128");
  at();
  f.v128.load(0, 0);
  f.else();
  f.get(count);
  f.i32.const(0);
  f.i32.gtS();
  f.if("v128");
  g.loadPart(at, count, 0);
  f.else();
  g.splat(0);
  f.end();
  f.end();
}

/** total = Σx² of row xr in the reference's lane order (see the header). */
function sumSquares(f: FunctionBuilder, g: RowGen, xr: Local, K: Local, total: Local): void {
  const [kv, lane, w, cnt] = [0, 1, 2, 3].map(() => f.local("i32"));
  const ws = Array.from({ length: 4 }, () => f.local("v128"));
  const [s, t0, t1, e] = [f.local("v128"), f.local("v128"), f.local("v128"), f.local("v128")];
  const wi = f.local("i32");
  f.set(kv, () => (f.add(K, 3), f.i32.const(2), f.i32.shrU()));
  f.f32.const(0);
  f.set(total);
  const lo = [0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23]; // a0 b0 a1 b1
  const hi = lo.map((i) => i + 8); // a2 b2 a3 b3
  const first = [0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23];
  const second = first.map((i) => i + 8);
  const lanes = f.local("i32");
  f.set(lanes, () => f.min(kv, TERNARY_QUANT_WG));
  f.for(lane, 0, lanes, 4, () => {
    g.splat(0);
    f.set(s);
    f.for(w, lane, kv, TERNARY_QUANT_WG, () => {
      ws.forEach((v, i) => {
        f.set(wi, () => f.add(w, i));
        word(f, g, xr, wi, K, cnt);
        f.set(v);
      });
      // e_j[i] = element j of word w + i; s[i] += e_0[i]², …, e_3[i]², in that order.
      for (const half of [lo, hi]) {
        f.get(ws[0]);
        f.get(ws[1]);
        f.i8x16.shuffle(half);
        f.set(t0);
        f.get(ws[2]);
        f.get(ws[3]);
        f.i8x16.shuffle(half);
        f.set(t1);
        for (const pick of [first, second]) {
          f.get(t0);
          f.get(t1);
          f.i8x16.shuffle(pick);
          f.set(e);
          f.get(s);
          f.get(e);
          f.get(e);
          f.f32x4.mul();
          f.f32x4.add();
          f.set(s);
        }
      }
    });
    for (let i = 0; i < 4; i++) {
      f.get(total);
      f.get(s);
      f.f32x4.extractLane(i);
      f.f32.add();
      f.set(total);
    }
  });
}

/**
 * quantise(tid, n, T, chunk, claim, K, x, g, out, scale, extra, eps): packed (xq, sum) or
 * levels (q, rstd).
 */
function quantise(b: ModuleBuilder, relaxed: boolean, packed: boolean): void {
  b.export(packed ? "packed" : "levels", [...I32(11), "f32"], [], (f) => {
    const [, , T, chunk, claim, K, x, gw, out, scale, extra, eps] = f.params;
    const g = new RowGen(f, relaxed);
    const [xr, or, rw, kv, w, cnt] = Array.from({ length: 6 }, () => f.local("i32"));
    const [acc, f1, f2, q, qs, nan] = Array.from({ length: 6 }, () => f.local("v128"));
    const [m, total, r, sx] = [f.local("f32"), f.local("f32"), f.local("f32"), f.local("f32")];
    const tiny = f.local("i32");
    f.set(kv, () => (f.add(K, 3), f.i32.const(2), f.i32.shrU()));
    f.set(rw, () => (f.add(K, 15), f.i32.const(4), f.i32.shrU(), f.i32.const(2), f.i32.shl()));
    /**
     * The int8 levels of the 4 products on the stack, as floats holding integers: v = p·f1·f2
     * clamped to [−128, 127] (the bounds are integers, so clamping first rounds the same),
     * rounded half to even by adding 1.5·2^23 and taking it off again; a NaN level is 0.
     */
    const levels = () => {
      f.get(f1);
      f.f32x4.mul();
      f.get(f2);
      f.f32x4.mul();
      f.tee(q);
      g.splat(-128);
      f.f32x4.pmax();
      g.splat(127);
      f.f32x4.pmin();
      g.splat(MAGIC);
      f.f32x4.add();
      g.splat(MAGIC);
      f.f32x4.sub();
      f.get(q);
      f.get(q);
      f.f32x4.eq();
      f.v128.and();
    };
    g.eachRow(T, chunk, claim, (t) => {
      g.rowBase(xr, x, t, K);
      // m = max|x·g| (0 for an empty row; NaN if any product is NaN, as Math.max gives).
      g.splat(0);
      f.set(acc);
      g.splat(0);
      f.set(nan);
      g.row(K, (o, tail) => {
        g.load(xr, o, tail);
        g.load(gw, o, tail);
        f.f32x4.mul();
        f.tee(q);
        f.get(q);
        f.f32x4.ne();
        f.get(nan);
        f.v128.or();
        f.set(nan);
        f.get(acc);
        f.get(q);
        f.f32x4.abs();
        f.f32x4.pmax();
        f.set(acc);
      });
      f.f32.const(NaN);
      f.get(acc);
      g.hmax();
      f.get(nan);
      f.v128.anyTrue();
      f.select();
      f.set(m);
      sumSquares(f, g, xr, K, total);
      // r = 1 / sqrt(Σx²/K + eps); a = m·r; tiny = !(a >= 1e-5)
      f.f32.const(1);
      f.get(total);
      f.get(K);
      f.f32.convertI32S();
      f.f32.div();
      f.get(eps);
      f.f32.add();
      f.f32.sqrt();
      f.f32.div();
      f.set(r);
      f.get(m);
      f.get(r);
      f.f32.mul();
      f.f32.const(EPS_F);
      f.f32.ge();
      f.i32.eqz();
      f.set(tiny);
      // tiny: v = (p·r)·(127 / 1e-5); else v = (p·(127 / m))·1, the same value as p·(127 / m).
      f.f32.const(TINY_SCALE);
      f.f32.const(127);
      f.get(m);
      f.get(r);
      f.f32.mul();
      f.f32.div();
      f.get(tiny);
      f.select();
      f.set(sx);
      f.get(r);
      f.f32.const(127);
      f.get(m);
      f.f32.div();
      f.get(tiny);
      f.select();
      f.f32x4.splat();
      f.set(f1);
      f.get(sx);
      f.f32.const(1);
      f.get(tiny);
      f.select();
      f.f32x4.splat();
      f.set(f2);
      if (packed) {
        f.set(or, () => f.add(out, () => f.mul(() => f.mul(t, rw), 4)));
        f.i32x4.const([0, 0, 0, 0]);
        f.set(qs);
        f.for(w, 0, rw, 1, () => {
          f.add(or, () => f.mul(w, 4));
          f.get(w);
          f.get(kv);
          f.i32.ltS();
          f.if("i32");
          word(f, g, xr, w, K, cnt);
          word(f, g, gw, w, K, cnt);
          f.f32x4.mul();
          levels();
          f.i32x4.truncSatF32x4S(); // exact: already integers in [−128, 127]
          f.set(q);
          f.get(qs);
          f.get(q);
          f.i32x4.add();
          f.set(qs);
          f.get(q);
          f.get(q);
          f.i16x8.narrowI32x4S();
          f.get(q);
          f.get(q);
          f.i16x8.narrowI32x4S();
          f.i8x16.narrowI16x8S();
          f.i32x4.extractLane(0);
          f.else();
          f.i32.const(0);
          f.end();
          f.i32.store();
        });
        f.add(extra, () => f.mul(t, 4));
        for (let i = 0; i < 4; i++) {
          f.get(qs);
          f.i32x4.extractLane(i);
          if (i > 0) f.i32.add();
        }
        f.i32.store();
      } else {
        f.set(or, () => f.add(out, () => f.mul(() => f.mul(t, K), 4)));
        g.row(K, (o, tail) => {
          g.load(xr, o, tail);
          g.load(gw, o, tail);
          f.f32x4.mul();
          levels();
          g.store(or, o, tail);
        });
        f.add(extra, () => f.mul(t, 4));
        f.get(r);
        f.f32.store();
      }
      f.add(scale, () => f.mul(t, 4));
      f.get(sx);
      f.f32.store();
    });
  });
}

/** The quantiser module for a runtime: its cache key and builder. */
export function quantModule(relaxed: boolean): [string, (b: ModuleBuilder) => void] {
  return [`ternary_quant|${relaxed ? "relaxed" : "simd"}`, (b) => {
    quantise(b, relaxed, true);
    quantise(b, relaxed, false);
  }];
}

function launch(fn: string, [x, g]: WasmArg[], outs: WasmArg[], p: Params, ctx: WasmContext) {
  if (p.tokens === 0) return;
  const mod = ctx.module(...quantModule(ctx.features.relaxedSimd));
  const args = [p.inFeatures, addr(x), addr(g), ...outs.map(addr), Math.fround(p.eps)];
  runItems(ctx, mod, fn, p.tokens, 0.9 * p.tokens * p.inFeatures, args);
}

/** The wasm implementation of ternary_quant: x [T, K], g [K] -> xq, scale, sum. */
export function ternaryQuantWasm(ins: WasmArg[], outs: WasmArg[], p: Params, ctx: WasmContext) {
  launch("packed", ins, outs, p, ctx);
}

/** The wasm implementation of activation_levels: x [T, K], g [K] -> q, scale, rstd. */
export function activationLevelsWasm(ins: WasmArg[], outs: WasmArg[], p: Params, ctx: WasmContext) {
  launch("levels", ins, outs, p, ctx);
}
