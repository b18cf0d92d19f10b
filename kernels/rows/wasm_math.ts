// Code generators shared by the wasm row kernels (softmax, cross-entropy, norms, quantisers):
// f32x4 exp and log written out in WebAssembly SIMD, horizontal sums and maxima, loops over one
// row in vectors of 4 with a partial vector for the last len % 4 floats, and each thread's share
// of rows. Everything is emitted inline into the calling function (no calls in inner loops).
// How launches are split over threads is wasm_launch.ts's.
//
// exp: Cephes' expf scheme. n = nearest(x·log2 e) (read from the bits of x·log2 e + 1.5·2^23),
// r = x − n·ln 2 (ln 2 in two parts, so r is exact to f32), e^r by a degree-7 polynomial
// (1 + r + r²·P(r)), times 2^n built in the exponent bits. x < −87.33654 (e^x below the smallest
// normal f32) gives 0, x > 88.37626 (e^x over 2.4e38, the last 0.35 of the f32 range) gives
// +inf, NaN stays NaN. About 20 vector instructions per 4 floats: 0.75 ns per float on one
// core here (a copy is 0.13). Measured against Math.exp (float64) over 2^20 points of
// [−87.3, 88.37] and of [−2, 0]: at most 0.98 ulp of the f32 result, 0.06 ulp on average.
// log: Cephes' logf. x = m·2^e with m in [√½, √2), log m by a degree-9 polynomial in m − 1,
// plus e·ln 2 in two parts. 0 and inputs below the smallest normal give −inf, negatives and NaN
// give NaN, +inf gives +inf. Measured against Math.log over [1e-30, 1e30] and [1, 2^17]: at most
// 0.80 ulp. Both bounds are checked by tests/kernels/wasm_math_test.ts.
// Multiply-adds use f32x4.relaxed_madd where the module is built for relaxed SIMD (a runtime
// fuses or not once for all threads, so results still do not depend on the thread count).

import type { FunctionBuilder, I32Expr, Local } from "../../engine/wasm/builder.ts";

const LOG2E = 1.44269504088896341;
/** 127.5·ln 2, a little under: n = nearest(x·log2 e) stays at most 127. */
const EXP_HI = 88.37626;
const EXP_LO = -87.33654022216797;
const EXP_C1 = 0.693359375;
const EXP_C2 = -2.12194440e-4;
const EXP_P = [
  1.9875691500e-4,
  1.3981999507e-3,
  8.3334519073e-3,
  4.1665795894e-2,
  1.6666665459e-1,
  5.0000001201e-1,
];
/** 1.5·2^23: added to |v| < 2^22, the sum's low mantissa bits hold nearest(v). */
const MAGIC = 12582912;
const SQRTHF = 0.707106781186547524;
const LOG_P = [
  7.0376836292e-2,
  -1.1514610310e-1,
  1.1676998740e-1,
  -1.2420140846e-1,
  1.4249322787e-1,
  -1.6668057665e-1,
  2.0000714765e-1,
  -2.4999993993e-1,
  3.3333331174e-1,
];
const FLT_MIN = 1.1754943508222875e-38;

/** Helpers for one function being generated: vector math, reductions, row loops. */
export class RowGen {
  #tmp: Local[] = [];
  #itmp: Local[] = [];
  readonly #consts = new Map<string, Local>();

  /**
   * Helpers for `f`; emits, at this point (the function's start), the vector constants of exp
   * and log into locals, so loops reuse them instead of rebuilding each (a v128.const is
   * several instructions on x64).
   */
  constructor(readonly f: FunctionBuilder, readonly relaxed: boolean) {
    const floats = [EXP_LO, EXP_HI, LOG2E, MAGIC, EXP_C1, EXP_C2, ...EXP_P, 1, Infinity];
    const ints = [127 << 23];
    for (const v of floats) this.#constant(`f${v}`, () => f.f32x4.const([v, v, v, v]));
    for (const v of ints) this.#constant(`i${v}`, () => f.i32x4.const([v, v, v, v]));
  }

  #constant(key: string, emit: () => void): void {
    const l = this.f.local("v128");
    emit();
    this.f.set(l);
    this.#consts.set(key, l);
  }

  #v(i: number): Local {
    while (this.#tmp.length <= i) this.#tmp.push(this.f.local("v128"));
    return this.#tmp[i];
  }

  #i(i: number): Local {
    while (this.#itmp.length <= i) this.#itmp.push(this.f.local("i32"));
    return this.#itmp[i];
  }

  /** Push a splat f32 constant. */
  splat(v: number): void {
    const l = this.#consts.get(`f${v}`);
    if (l) this.f.get(l);
    else this.f.f32x4.const([v, v, v, v]);
  }

  /** Push a splat i32 constant. */
  isplat(v: number): void {
    const l = this.#consts.get(`i${v}`);
    if (l) this.f.get(l);
    else this.f.i32x4.const([v, v, v, v]);
  }

  /** a·b + c for the three v128 on the stack (fused where the module uses relaxed SIMD). */
  madd(): void {
    if (this.relaxed) this.f.f32x4.relaxedMadd();
    else {
      const c = this.#v(15);
      this.f.set(c);
      this.f.f32x4.mul();
      this.f.get(c);
      this.f.f32x4.add();
    }
  }

  /** −(a·b) + c for the three v128 on the stack (fused where relaxed). */
  nmadd(): void {
    if (this.relaxed) this.f.f32x4.relaxedNmadd();
    else {
      const c = this.#v(15);
      this.f.set(c);
      this.f.f32x4.mul();
      this.f.get(c);
      this.f.f32x4.sub(); // a·b − c
      this.f.f32x4.neg();
    }
  }

  /** Horner: push P(x) for coefficients highest degree first. */
  #poly(x: Local, coeffs: number[]): void {
    this.splat(coeffs[0]);
    for (const c of coeffs.slice(1)) {
      this.f.get(x);
      this.splat(c);
      this.madd();
    }
  }

  /**
   * Replace the v128 on the stack by e^x lane-wise (see the header). With `bounded` false the
   * caller promises x <= EXP_HI (x − max, x − logsumexp, a log-probability): the top clamp and
   * the +inf mask are left out, a fifth of the work.
   */
  exp(bounded = true): void {
    const f = this.f;
    const [x, r, t, n] = [0, 1, 2, 3].map((i) => this.#v(i));
    f.set(x);
    // r = clamp(x) with x first in pmax/pmin, so a NaN x stays NaN.
    f.get(x);
    this.splat(EXP_LO);
    f.f32x4.pmax();
    if (bounded) (this.splat(EXP_HI), f.f32x4.pmin());
    f.set(r);
    // t = r·log2 e + 1.5·2^23: its low mantissa bits are n = nearest(r·log2 e).
    f.get(r);
    this.splat(LOG2E);
    this.splat(MAGIC);
    this.madd();
    f.tee(t);
    this.splat(MAGIC);
    f.f32x4.sub();
    f.set(n);
    for (const c of [EXP_C1, EXP_C2]) {
      // r −= n·c
      f.get(n);
      this.splat(c);
      f.get(r);
      this.nmadd();
      f.set(r);
    }
    // (1 + r + r²·P(r)) · 2^n, 2^n built from n's bits in t.
    this.#poly(r, EXP_P);
    f.get(r);
    f.get(r);
    f.f32x4.mul();
    f.f32x4.mul();
    f.get(r);
    f.f32x4.add();
    this.splat(1);
    f.f32x4.add();
    f.get(t);
    f.i32.const(23);
    f.i32x4.shl();
    this.isplat(127 << 23);
    f.i32x4.add();
    f.f32x4.mul();
    // x > EXP_HI: +inf; x < EXP_LO: 0 (NaN compares false: stays NaN).
    if (bounded) {
      f.set(n);
      this.splat(Infinity);
      f.get(n);
      f.get(x);
      this.splat(EXP_HI);
      f.f32x4.gt();
      f.v128.bitselect();
    }
    f.get(x);
    this.splat(EXP_LO);
    f.f32x4.lt();
    f.v128.andnot();
  }

  /** Replace the v128 on the stack by ln x lane-wise (see the header). */
  log(): void {
    const f = this.f;
    const [x, m, e, z, y] = [4, 5, 6, 7, 8].map((i) => this.#v(i));
    f.set(x);
    // e = exponent − 126, m = mantissa in [0.5, 1)
    f.get(x);
    f.i32.const(23);
    f.i32x4.shrU();
    this.isplat(126);
    f.i32x4.sub();
    f.set(e);
    f.get(x);
    this.isplat(0x007fffff);
    f.v128.and();
    this.isplat(0x3f000000);
    f.v128.or();
    f.set(m);
    // m < √½: e −= 1, m = 2m − 1; else m − 1.
    f.get(m);
    this.splat(SQRTHF);
    f.f32x4.lt();
    f.set(z);
    f.get(e);
    f.get(z);
    f.i32x4.add();
    f.set(e);
    f.get(m);
    f.get(m);
    f.get(z);
    f.v128.and();
    f.f32x4.add();
    this.splat(1);
    f.f32x4.sub();
    f.set(m);
    f.get(m);
    f.get(m);
    f.f32x4.mul();
    f.set(z);
    // y = P(m)·m·z + e·C2 − z/2; result m + y + e·C1.
    this.#poly(m, LOG_P);
    f.get(m);
    f.f32x4.mul();
    f.get(z);
    f.f32x4.mul();
    f.set(y);
    f.get(e);
    f.f32x4.convertI32x4S();
    f.set(e);
    f.get(e);
    this.splat(EXP_C2);
    f.get(y);
    this.madd();
    f.get(z);
    this.splat(0.5);
    f.f32x4.mul();
    f.f32x4.sub();
    f.get(m);
    f.f32x4.add();
    f.get(e);
    this.splat(EXP_C1);
    f.f32x4.mul();
    f.f32x4.add();
    f.set(y);
    // Specials: x < FLT_MIN -> −inf, x < 0 or NaN -> NaN, +inf -> +inf.
    this.splat(-Infinity);
    f.get(y);
    f.get(x);
    this.splat(FLT_MIN);
    f.f32x4.lt();
    f.v128.bitselect();
    f.set(y);
    this.splat(NaN);
    f.get(y);
    f.get(x);
    this.splat(0);
    f.f32x4.lt();
    f.get(x);
    f.get(x);
    f.f32x4.ne();
    f.v128.or();
    f.v128.bitselect();
    f.set(y);
    this.splat(Infinity);
    f.get(y);
    f.get(x);
    this.splat(Infinity);
    f.f32x4.eq();
    f.v128.bitselect();
  }

  /** Replace the v128 on the stack by the f32 sum of its lanes ((l0 + l2) + (l1 + l3)). */
  hsum(): void {
    this.#horizontal(() => this.f.f32x4.add());
  }

  /**
   * Replace the v128 on the stack by the f32 max of its lanes, by pmax (one instruction: a NaN
   * lane may be dropped; the row kernels' sums carry NaN on instead).
   */
  hmax(): void {
    this.#horizontal(() => this.f.f32x4.pmax());
  }

  #horizontal(op: () => void): void {
    const f = this.f;
    const t = this.#v(9);
    f.set(t);
    f.get(t);
    f.get(t);
    f.get(t);
    f.i8x16.shuffle([8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7]);
    op();
    f.set(t);
    f.get(t);
    f.get(t);
    f.get(t);
    f.i8x16.shuffle([4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11]);
    op();
    f.f32x4.extractLane(0);
  }

  /** Push `count` (1-3) f32 at `addr` as a vector whose other lanes are `pad` (a v128 local). */
  loadPart(addr: () => void, count: Local, pad: number | Local): void {
    const f = this.f;
    const [v, a] = [this.#v(10), this.#i(0)];
    f.set(a, addr);
    if (typeof pad === "number") this.splat(pad);
    else f.get(pad);
    f.get(a);
    f.f32.load();
    f.f32x4.replaceLane(0);
    f.set(v);
    for (const lane of [1, 2]) {
      f.get(count);
      f.i32.const(lane);
      f.i32.gtU();
      f.if();
      f.get(v);
      f.get(a);
      f.f32.load(4 * lane);
      f.f32x4.replaceLane(lane);
      f.set(v);
      f.end();
    }
    f.get(v);
  }

  /** Store the first `count` (1-3) lanes of the v128 on the stack at `addr`. */
  storePart(addr: () => void, count: Local): void {
    const f = this.f;
    const [v, a] = [this.#v(11), this.#i(1)];
    f.set(v);
    f.set(a, addr);
    for (const lane of [0, 1, 2]) {
      if (lane > 0) (f.get(count), f.i32.const(lane), f.i32.gtU(), f.if());
      f.get(a);
      f.get(v);
      f.f32x4.extractLane(lane);
      f.f32.store(4 * lane);
      if (lane > 0) f.end();
    }
  }

  /**
   * One pass over a row of `len` floats: `body(o, tail)` for byte offsets o = 0, 16, ... of
   * whole vectors (tail null), then once for the last len % 4 floats (tail = that count).
   */
  row(len: Local, body: (o: Local, tail: Local | null) => void): void {
    const f = this.f;
    const [o, end, tail] = [f.local("i32"), f.local("i32"), f.local("i32")];
    f.set(end, () => (f.get(len), f.i32.const(-4), f.i32.and(), f.i32.const(2), f.i32.shl()));
    f.for(o, 0, end, 16, () => body(o, null));
    f.set(o, end);
    f.set(tail, () => (f.get(len), f.i32.const(3), f.i32.and()));
    f.get(tail);
    f.if();
    body(o, tail);
    f.end();
  }

  /**
   * One pass for a row's max: the row of `len` floats at `base` (tail lanes −inf) reduced by
   * pmax into `acc`, its lanes' max splatted into `m` (a NaN may be dropped here; the row
   * kernels' sums of exp(x − m) carry it on). Softmax's and cross-entropy's first pass.
   */
  rowMax(base: Local, len: Local, acc: Local, m: Local): void {
    const f = this.f;
    this.splat(-Infinity);
    f.set(acc);
    this.row(len, (o, tail) => {
      f.get(acc);
      this.load(base, o, tail, -Infinity);
      f.f32x4.pmax();
      f.set(acc);
    });
    f.get(acc);
    this.hmax();
    f.f32x4.splat();
    f.set(m);
  }

  /** Push the vector at base + o (or the partial one of a tail, other lanes `pad`). */
  load(base: Local, o: Local, tail: Local | null, pad: number | Local = 0): void {
    const at = () => this.f.add(base, o);
    if (tail) this.loadPart(at, tail, pad);
    else (at(), this.f.v128.load(0, 0));
  }

  /** Store the v128 on the stack at base + o (only the tail's lanes for a tail). */
  store(base: Local, o: Local, tail: Local | null): void {
    const f = this.f;
    if (tail) {
      this.storePart(() => f.add(base, o), tail);
      return;
    }
    const v = this.#v(12);
    f.set(v);
    f.add(base, o);
    f.get(v);
    f.v128.store(0, 0);
  }

  /**
   * Claim chunks of `chunk` items from the shared counter at `claim` (an i32 zeroed before the
   * launch) until all `count` are taken: `body(lo, hi)` for each claimed range. Every thread
   * runs this loop, so a thread that the OS deschedules holds up at most its current chunk;
   * which thread takes a chunk never changes what the chunk computes.
   */
  eachChunk(count: I32Expr, chunk: Local, claim: Local, body: (lo: Local, hi: Local) => void) {
    const f = this.f;
    const [lo, hi, total] = [f.local("i32"), f.local("i32"), f.local("i32")];
    f.set(total, count);
    const done = f.block();
    const next = f.loop();
    f.get(claim);
    f.i32.const(1);
    f.i32.atomic.rmwAdd();
    f.get(chunk);
    f.i32.mul();
    f.tee(lo);
    f.get(total);
    f.i32.geU();
    f.brIf(done);
    f.set(hi, () => f.min(total, () => f.add(lo, chunk)));
    body(lo, hi);
    f.br(next);
    f.end();
    f.end();
  }

  /** Run `body(r)` for each claimed item r (see eachChunk), in order within a chunk. */
  eachRow(count: I32Expr, chunk: Local, claim: Local, body: (r: Local) => void): void {
    this.eachChunk(count, chunk, claim, (lo, hi) => {
      const r = this.f.local("i32");
      this.f.for(r, lo, hi, 1, () => body(r));
    });
  }

  /** Set `dst` = base + r·len·4 (the byte address of row r of f32 rows of `len`). */
  rowBase(dst: Local, base: Local, r: Local, len: Local): void {
    const f = this.f;
    f.set(dst, () => f.add(base, () => f.mul(() => f.mul(r, len), 4)));
  }

  /** [lo, hi) = this thread's share of `count` items: [count·tid/n, count·(tid+1)/n). */
  share(tid: Local, n: Local, count: I32Expr, lo: Local, hi: Local): void {
    const f = this.f;
    f.set(lo, () => f.mulDiv(count, tid, n));
    f.set(hi, () => f.mulDiv(count, () => f.add(tid, 1), n));
  }
}
