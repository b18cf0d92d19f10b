// Vectorised float32 transcendentals for the wasm kernels, emitted inline into a function (no
// Math.* round-trips, no calls): exp, log, tanh, sigmoid, and erfc on z ≥ 0 for the exact GELU.
// Each helper reads f32x4 locals and pushes one f32x4. Algorithms (single-precision Cephes,
// http://www.netlib.org/cephes/, and Numerical Recipes' erfcc, the WGSL kernels' erfc):
//   exp:  n = round(x·log2 e), r = x − n·ln 2 (two-part ln 2), e^r by a degree-6 polynomial,
//         times 2^n built in the exponent bits as 2^⌊n/2⌋·2^⌈n/2⌉ (so denormal results and
//         overflow to ∞ come out right); x is clamped to [−104, 89] first.
//   log:  x = m·2^e, m in [√½, √2), log(m) by a degree-9 polynomial in m − 1; denormals are
//         scaled by 2^23 first; 0 → −∞, x < 0 → NaN, ∞ → ∞, NaN → NaN.
//   tanh: |x| < 0.625: x + x³·P(x²); else sign(x)·(1 − 2/(e^{2|x|} + 1)).
//   erfc: t = 1/(1 + z/2), erfc(z) = t·exp(−z² + P(t)) (fractional error < 1.2e-7 for z ≥ 0).
// Measured against the float64 references (tests/kernels/unary_test.ts prints nothing; the
// figures are from a dense sweep, see tests/bench/wasm_elementwise_bench.ts --accuracy):
//   exp on [−87, 88]: ≤ 1.5 ulp (max relative error 1.8e-7); log on (0, 3.4e38]: ≤ 1 ulp
//   (max absolute error 1.2e-7 near 1, relative 8.9e-8 elsewhere); tanh: max relative error
//   1.8e-7; sigmoid: 2.4e-7; GELU (erf): max absolute error 2.4e-7 on [−10, 10], relative
//   1.9e-6 in the negative tail; GELU backward: absolute 3.6e-7.
// Multiply-adds use f32x4.relaxed_madd where the runtime has relaxed SIMD (fused on FMA
// hardware), else mul + add; a kernel's key says which, and results stay deterministic.

import type { FunctionBuilder, Local } from "../../engine/wasm/builder.ts";

const LOG2E = 1.4426950408889634;
/** 1.5·2^23: adding it rounds a float of magnitude < 2^22 to an integer in the low bits. */
const ROUND_MAGIC = 12582912;
const ROUND_MAGIC_BITS = 0x4b400000;
/** ln 2 in two parts: 0.693359375 is exact in f32 with 12 trailing zero bits. */
const LN2_HI = 0.693359375;
const LN2_LO = -2.12194440e-4;
const EXP_P = [
  1.9875691500e-4,
  1.3981999507e-3,
  8.3334519073e-3,
  4.1665795894e-2,
  1.6666665459e-1,
  5.0000001201e-1,
];
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
const TANH_P = [
  -5.70498872745e-3,
  2.06390887954e-2,
  -5.37397155531e-2,
  1.33314422036e-1,
  -3.33332819422e-1,
];
const ERFC_P = [
  0.17087277,
  -0.82215223,
  1.48851587,
  -1.13520398,
  0.27886807,
  -0.18628806,
  0.09678418,
  0.37409196,
  1.00002368,
  -1.26551223,
];

/** Code that pushes one v128. */
export type Push = () => void;

/**
 * Splat constants of a function: V8 materialises each v128.const with several instructions at
 * every use (inside a loop: every iteration), so a kernel emits its code once to collect them
 * (`wanted`), then again with each held in a local set before the loop (`hoist`).
 */
export class ConstPool {
  /** The 32-bit lane patterns used (f32 constants by their bits). */
  readonly wanted = new Set<number>();
  readonly #locals = new Map<number, Local>();

  /** Set a local to each wanted constant (call at the function's start). */
  hoist(f: FunctionBuilder): void {
    for (const bits of this.wanted) {
      const l = f.local("v128");
      f.i32x4.const([bits, bits, bits, bits]);
      f.set(l);
      this.#locals.set(bits, l);
    }
  }

  /** Push the splat of a lane pattern: its local once hoisted, else a v128.const. */
  push(f: FunctionBuilder, bits: number): void {
    const l = this.#locals.get(bits);
    if (l) return f.get(l);
    this.wanted.add(bits);
    f.i32x4.const([bits, bits, bits, bits]);
  }
}

const F32_BITS = new Uint32Array(1);
const F32_VIEW = new Float32Array(F32_BITS.buffer);

/** Emits vector math into `f`; `fused`: multiply-adds use f32x4.relaxed_madd. */
export class VecMath {
  constructor(
    readonly f: FunctionBuilder,
    readonly fused: boolean,
    readonly consts: ConstPool = new ConstPool(),
  ) {}

  /** A fresh v128 local. */
  tmp(): Local {
    return this.f.local("v128");
  }

  /** Push a local. */
  get(x: Local): Push {
    return () => this.f.get(x);
  }

  /** Push the splat of an f32 constant. */
  k(c: number): Push {
    F32_VIEW[0] = c;
    const bits = F32_BITS[0] | 0;
    return () => this.consts.push(this.f, bits);
  }

  /** Push the splat of an i32 constant. */
  ki(c: number): Push {
    return () => this.consts.push(this.f, c | 0);
  }

  /** Evaluate `x` into a new local. */
  let(x: Push): Local {
    const l = this.tmp();
    x();
    this.f.set(l);
    return l;
  }

  /** Push a·b + c. */
  madd(a: Push, b: Push, c: Push): void {
    a();
    b();
    if (this.fused) {
      c();
      this.f.f32x4.relaxedMadd();
    } else {
      this.f.f32x4.mul();
      c();
      this.f.f32x4.add();
    }
  }

  /** Push a op b for a binary f32x4 instruction. */
  bin(op: "add" | "sub" | "mul" | "div" | "min" | "max", a: Push, b: Push): void {
    a();
    b();
    this.f.f32x4[op]();
  }

  /** Push Σ c[i]·x^(n−1−i) by Horner's rule (coefficients highest degree first). */
  poly(x: Local, coeffs: readonly number[]): void {
    const acc = this.let(this.k(coeffs[0]));
    for (const c of coeffs.slice(1)) {
      this.madd(this.get(acc), this.get(x), this.k(c));
      this.f.set(acc);
    }
    this.f.get(acc);
  }

  /** Push mask ? a : b (mask all-ones or all-zeros per lane). */
  select(mask: Push, a: Push, b: Push): void {
    a();
    b();
    mask();
    this.f.v128.bitselect();
  }

  /** Push e^x. */
  exp(x: Local): void {
    const f = this.f;
    const xc = this.let(() =>
      this.bin("min", () => this.bin("max", this.get(x), this.k(-104)), this.k(89))
    );
    // t = x·log2 e + 1.5·2^23 rounds n = round(x·log2 e) into t's low mantissa bits, so
    // n = t − 1.5·2^23 exactly, and the integer n is bits(t) − bits(1.5·2^23).
    const t = this.let(() => this.madd(this.get(xc), this.k(LOG2E), this.k(ROUND_MAGIC)));
    const n = this.let(() => this.bin("sub", this.get(t), this.k(ROUND_MAGIC)));
    // r = x − n·ln2_hi − n·ln2_lo (n·ln2_hi is exact: n has at most 8 bits)
    const r1 = this.let(() => this.madd(this.get(n), this.k(-LN2_HI), this.get(xc)));
    const r2 = this.let(() => this.madd(this.get(n), this.k(-LN2_LO), this.get(r1)));
    const rr = this.let(() => this.bin("mul", this.get(r2), this.get(r2)));
    // e^r = 1 + r + r²·P(r)
    const p = this.let(() => {
      this.madd(() => this.poly(r2, EXP_P), this.get(rr), this.get(r2));
      this.k(1)();
      f.f32x4.add();
    });
    const ni = this.let(() => (f.get(t), this.ki(ROUND_MAGIC_BITS)(), f.i32x4.sub()));
    const n1 = this.let(() => (f.get(ni), f.i32.const(1), f.i32x4.shrS()));
    const pow2 = (e: Push) => () => {
      e();
      this.ki(127)();
      f.i32x4.add();
      f.i32.const(23);
      f.i32x4.shl();
    };
    this.bin(
      "mul",
      () => this.bin("mul", this.get(p), pow2(this.get(n1))),
      pow2(() => (f.get(ni), f.get(n1), f.i32x4.sub())),
    );
  }

  /** Push ln x. */
  log(x: Local): void {
    const f = this.f;
    // Denormals: scale into the normal range first.
    const tiny = this.let(() => (f.get(x), this.k(1.17549435e-38)(), f.f32x4.lt()));
    const xs = this.let(() =>
      this.select(this.get(tiny), () => this.bin("mul", this.get(x), this.k(8388608)), this.get(x))
    );
    // e = exponent − 126, m in [0.5, 1)
    const e0 = this.let(() => {
      f.get(xs);
      f.i32.const(23);
      f.i32x4.shrU();
      this.ki(126)();
      f.i32x4.sub();
      f.get(tiny);
      this.ki(23)();
      f.v128.and();
      f.i32x4.sub();
    });
    const m0 = this.let(() => {
      f.get(xs);
      this.ki(0x807fffff)();
      f.v128.and();
      this.ki(0x3f000000)();
      f.v128.or();
    });
    // m < √½: e −= 1, m = 2m − 1; else m = m − 1
    const small = this.let(() => (f.get(m0), this.k(0.707106781186547524)(), f.f32x4.lt()));
    const e = this.let(() => {
      f.get(e0);
      f.get(small); // −1 where small
      f.i32x4.add();
      f.f32x4.convertI32x4S();
    });
    const m = this.let(() => {
      this.bin("add", this.get(m0), () => (f.get(m0), f.get(small), f.v128.and()));
      this.k(1)();
      f.f32x4.sub();
    });
    const z = this.let(() => this.bin("mul", this.get(m), this.get(m)));
    // y = m·z·P(m) + e·ln2_lo − z/2; log = m + y + e·ln2_hi
    const y = this.let(() => {
      this.bin("mul", () => this.bin("mul", this.get(m), this.get(z)), () => this.poly(m, LOG_P));
    });
    const y1 = this.let(() => this.madd(this.get(e), this.k(LN2_LO), this.get(y)));
    const r = this.let(() => this.madd(this.get(z), this.k(-0.5), this.get(y1)));
    const out = this.let(() => {
      this.madd(this.get(e), this.k(LN2_HI), () => this.bin("add", this.get(m), this.get(r)));
    });
    // Specials: 0 → −∞, negative → NaN, +∞ → +∞, NaN → NaN.
    const special = (mask: Push, value: Push, acc: Local) => {
      this.select(mask, value, this.get(acc));
      f.set(acc);
    };
    special(() => (f.get(x), this.k(0)(), f.f32x4.eq()), this.k(-Infinity), out);
    special(() => (f.get(x), this.k(0)(), f.f32x4.lt()), this.k(NaN), out);
    special(() => (f.get(x), this.k(Infinity)(), f.f32x4.eq()), this.k(Infinity), out);
    special(() => (f.get(x), f.get(x), f.f32x4.ne()), this.get(x), out);
    f.get(out);
  }

  /** Push tanh x. */
  tanh(x: Local): void {
    const f = this.f;
    const ax = this.let(() => (f.get(x), f.f32x4.abs()));
    const x2 = this.let(() => this.bin("mul", this.get(x), this.get(x)));
    // small: x + x·x²·P(x²)
    const small = this.let(() =>
      this.madd(
        () => this.bin("mul", this.get(x), this.get(x2)),
        () => this.poly(x2, TANH_P),
        this.get(x),
      )
    );
    // large: 1 − 2/(e^{2|x|} + 1), with x's sign
    const e2 = this.let(() => this.bin("add", this.get(ax), this.get(ax)));
    const ex = this.let(() => this.exp(e2));
    const large = this.let(() => {
      this.k(1)();
      this.bin("div", this.k(2), () => this.bin("add", this.get(ex), this.k(1)));
      f.f32x4.sub();
      f.get(x);
      this.ki(0x80000000)();
      f.v128.and();
      f.v128.or();
    });
    this.select(() => (f.get(ax), this.k(0.625)(), f.f32x4.lt()), this.get(small), this.get(large));
  }

  /**
   * Push 1 / (1 + e^−x), as e/(1 + e) with e = e^−|x| below 0 (no overflow, and the negative
   * tail keeps its relative accuracy down to the denormals).
   */
  sigmoid(x: Local): void {
    const f = this.f;
    const nax = this.let(() => (f.get(x), f.f32x4.abs(), f.f32x4.neg()));
    const e = this.let(() => this.exp(nax));
    const num = () =>
      this.select(() => (f.get(x), this.k(0)(), f.f32x4.lt()), this.get(e), this.k(1));
    this.bin("div", num, () => this.bin("add", this.k(1), this.get(e)));
  }

  /** Push erfc(z) for z ≥ 0 (Numerical Recipes' erfcc). */
  erfcPos(z: Local): void {
    const t = this.let(() =>
      this.bin("div", this.k(1), () => this.madd(this.get(z), this.k(0.5), this.k(1)))
    );
    const arg = this.let(() => {
      this.poly(t, ERFC_P);
      this.bin("mul", this.get(z), this.get(z));
      this.f.f32x4.sub();
    });
    const e = this.let(() => this.exp(arg));
    this.bin("mul", this.get(t), this.get(e));
  }
}
