// Vectorised float32 math for the wasm kernels, emitted inline (no Math.* round-trips, no calls):
// exp, log, tanh, sigmoid, and erfc on z ≥ 0 for the exact GELU. Values are `V`s: one v128 local
// per interleaved vector. A VecMath of width k emits every operation k times in a row, for k
// independent vectors, so a long dependency chain (erfc: a division, a degree-10 polynomial, an
// exp) of one vector overlaps with the others': the scheduler window, not the FP pipes, limited
// the one-vector code (GELU, 768×512 on one thread: 1.37 ms one vector at a time, 0.71 ms eight
// interleaved, the best of 1-16 on this Zen 5; tests/bench/wasm_elementwise_bench.ts).
// Algorithms (single-precision Cephes, http://www.netlib.org/cephes/; erfc our own fit):
//   exp:  n = round(x·log2 e) by adding 1.5·2^23, r = x − n·ln 2 (two-part ln 2), e^r by a
//         degree-7 polynomial, times 2^n built in the exponent bits as 2^⌊n/2⌋·2^⌈n/2⌉ (so
//         denormal results and overflow to ∞ come out right); x is clamped to [−104, 89] first.
//   log:  x = m·2^e, m in [√½, √2), log(m) by a degree-9 polynomial in m − 1; denormals are
//         scaled by 2^23 first; 0 → −∞, x < 0 → NaN, ∞ → ∞, NaN → NaN.
//   tanh: |x| < 0.625: x + x³·P(x²); else sign(x)·(1 − 2/(e^{2|x|} + 1)).
//   sigmoid: e/(1 + e) below 0, 1/(1 + e) above, e = e^−|x| (no overflow, tail keeps accuracy).
//   erfc: t = 1/(1 + z/2), erfc(z) = t·e^(−z²)·Q(2t − 1), Q a degree-10 fit (1.2e-8 relative;
//         the WGSL's erfcc, t·exp(−z² + P(t)), has 1.2e-7 and needs a second exp for φ).
// Max errors against float64 over 2^20 points per range, normal f32 results (the bench's
// --accuracy for exp, log, tanh, sigmoid): exp on [−87, 88] 0.98 ulp (relative 8.2e-8); log on
// [1e−30, 1e30] 0.75 ulp, on [0.5, 2] 0.82 ulp (7.8e-8); tanh on [−10, 10] 1.2 ulp (1.3e-7);
// sigmoid on [−20, 20] 2.4 ulp (1.8e-7); erfc relative 2.7e-7 on [0, 1], 4.0e-6 on [0, 10]
// (−z² rounded to f32, 2^-24·z² relative, dominates far out). GELU: see gelu.ts.
// tests/kernels/wasm_elementwise_test.ts asserts ulp bounds with and without fused madd.
// Multiply-adds use f32x4.relaxed_madd where the runtime has relaxed SIMD (fused on FMA
// hardware), else mul + add; a kernel's key says which, and results stay deterministic.

import type { FunctionBuilder, Local } from "../../engine/wasm/builder.ts";

/** A value: one v128 local per interleaved vector. */
export type V = readonly Local[];

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
/**
 * erfc(z)·e^(z²)/t as a polynomial in u = 2t − 1, t = 1/(1 + z/2) ∈ (0, 1]: a relative least-
 * squares fit of degree 10 on 4,000 Chebyshev nodes against mpmath at 40 digits, reweighted
 * toward minimax (fit error 1.2e-8 relative; 1.6e-7 evaluated in f32).
 */
const ERFC_Q = [
  4.217288701696501e-5,
  -3.6641167163162236e-5,
  -2.994215146152196e-4,
  4.3075738408539926e-4,
  1.5292016660215652e-3,
  -3.24351559495167e-3,
  -1.0751646939894118e-2,
  1.822168655615232e-2,
  1.3973573692133867e-1,
  3.435803174835074e-1,
  5.107913568256031e-1,
];

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

  /** The local holding a lane pattern: the hoisted one, else a new one set here. */
  local(f: FunctionBuilder, bits: number): Local {
    const have = this.#locals.get(bits);
    if (have) return have;
    this.wanted.add(bits);
    const l = f.local("v128");
    f.i32x4.const([bits, bits, bits, bits]);
    f.set(l);
    return l;
  }
}

const F32_BITS = new Uint32Array(1);
const F32_VIEW = new Float32Array(F32_BITS.buffer);

type F32Op =
  | "add"
  | "sub"
  | "mul"
  | "div"
  | "min"
  | "max"
  | "eq"
  | "ne"
  | "lt"
  | "gt"
  | "le"
  | "ge";
type F32Un = "neg" | "abs" | "sqrt" | "nearest" | "floor" | "ceil" | "trunc";
type I32Op = "add" | "sub" | "eq" | "ne" | "ltS" | "ltU" | "gtS" | "geS";
type BitOp = "and" | "or" | "xor" | "andnot";

/**
 * Emits vector math into `f`, each operation `width` times over independent vectors; `fused`:
 * multiply-adds use f32x4.relaxed_madd.
 */
export class VecMath {
  constructor(
    readonly f: FunctionBuilder,
    readonly fused: boolean,
    readonly width = 1,
    readonly consts: ConstPool = new ConstPool(),
  ) {}

  /** A value whose vector j is what `emit(j)` pushes. */
  map(emit: (j: number) => void): V {
    return Array.from({ length: this.width }, (_, j) => {
      emit(j);
      const l = this.f.local("v128");
      this.f.set(l);
      return l;
    });
  }

  /** The same local in every vector (a splat held in a local). */
  all(l: Local): V {
    return Array.from({ length: this.width }, () => l);
  }

  /** The splat of an f32 constant. */
  k(c: number): V {
    F32_VIEW[0] = c;
    return this.all(this.consts.local(this.f, F32_BITS[0] | 0));
  }

  /** The splat of an i32 constant. */
  ki(c: number): V {
    return this.all(this.consts.local(this.f, c | 0));
  }

  /** a op b, lane-wise f32 (comparisons give all-ones or zero lanes). */
  op(op: F32Op, a: V, b: V): V {
    return this.map((j) => (this.f.get(a[j]), this.f.get(b[j]), this.f.f32x4[op]()));
  }

  /** op a, lane-wise f32. */
  un(op: F32Un, a: V): V {
    return this.map((j) => (this.f.get(a[j]), this.f.f32x4[op]()));
  }

  /** a op b, lane-wise i32. */
  iop(op: I32Op, a: V, b: V): V {
    return this.map((j) => (this.f.get(a[j]), this.f.get(b[j]), this.f.i32x4[op]()));
  }

  /** a op b, bitwise (andnot: a & ~b). */
  bit(op: BitOp, a: V, b: V): V {
    return this.map((j) => (this.f.get(a[j]), this.f.get(b[j]), this.f.v128[op]()));
  }

  /** Lane-wise i32 shift by a constant. */
  shift(op: "shl" | "shrS" | "shrU", a: V, by: number): V {
    return this.map((j) => (this.f.get(a[j]), this.f.i32.const(by), this.f.i32x4[op]()));
  }

  /** i32 lanes to f32. */
  toF32(a: V): V {
    return this.map((j) => (this.f.get(a[j]), this.f.f32x4.convertI32x4S()));
  }

  /** a·b + c. */
  madd(a: V, b: V, c: V): V {
    return this.map((j) => {
      this.f.get(a[j]);
      this.f.get(b[j]);
      if (this.fused) {
        this.f.get(c[j]);
        this.f.f32x4.relaxedMadd();
      } else {
        this.f.f32x4.mul();
        this.f.get(c[j]);
        this.f.f32x4.add();
      }
    });
  }

  /** mask ? a : b, lane by lane (mask lanes all-ones or zero). */
  select(mask: V, a: V, b: V): V {
    return this.map((
      j,
    ) => (this.f.get(a[j]), this.f.get(b[j]), this.f.get(mask[j]), this.f.v128.bitselect()));
  }

  /** Σ c[i]·x^(n−1−i) by Horner's rule (coefficients highest degree first). */
  poly(x: V, coeffs: readonly number[]): V {
    let acc = this.k(coeffs[0]);
    for (const c of coeffs.slice(1)) acc = this.madd(acc, x, this.k(c));
    return acc;
  }

  /** e^x. */
  exp(x: V): V {
    const xc = this.op("min", this.op("max", x, this.k(-104)), this.k(89));
    // t = x·log2 e + 1.5·2^23 rounds n = round(x·log2 e) into t's low mantissa bits, so
    // n = t − 1.5·2^23 exactly, and the integer n is bits(t) − bits(1.5·2^23).
    const t = this.madd(xc, this.k(LOG2E), this.k(ROUND_MAGIC));
    const n = this.op("sub", t, this.k(ROUND_MAGIC));
    // r = x − n·ln2_hi − n·ln2_lo (n·ln2_hi is exact: n has at most 8 bits)
    const r = this.madd(n, this.k(-LN2_LO), this.madd(n, this.k(-LN2_HI), xc));
    // e^r = 1 + r + r²·P(r)
    const p = this.madd(this.poly(r, EXP_P), this.op("mul", r, r), r);
    const er = this.op("add", p, this.k(1));
    const ni = this.iop("sub", t, this.ki(ROUND_MAGIC_BITS));
    const n1 = this.shift("shrS", ni, 1);
    const pow2 = (e: V) => this.shift("shl", this.iop("add", e, this.ki(127)), 23);
    return this.op("mul", this.op("mul", er, pow2(n1)), pow2(this.iop("sub", ni, n1)));
  }

  /** ln x. */
  log(x: V): V {
    // Denormals: scale into the normal range first.
    const tiny = this.op("lt", x, this.k(1.17549435e-38));
    const xs = this.select(tiny, this.op("mul", x, this.k(8388608)), x);
    // e = exponent − 126 (− 23 for scaled denormals), m in [0.5, 1)
    const e0 = this.iop(
      "sub",
      this.iop("sub", this.shift("shrU", xs, 23), this.ki(126)),
      this.bit("and", tiny, this.ki(23)),
    );
    const m0 = this.bit("or", this.bit("and", xs, this.ki(0x807fffff)), this.ki(0x3f000000));
    // m < √½: e −= 1, m = 2m − 1; else m = m − 1
    const small = this.op("lt", m0, this.k(0.707106781186547524));
    const e = this.toF32(this.iop("add", e0, small)); // small lanes are −1
    const m = this.op("sub", this.op("add", m0, this.bit("and", m0, small)), this.k(1));
    const z = this.op("mul", m, m);
    // y = m·z·P(m) + e·ln2_lo − z/2; log = m + y + e·ln2_hi
    const y = this.op("mul", this.op("mul", m, z), this.poly(m, LOG_P));
    const r = this.madd(z, this.k(-0.5), this.madd(e, this.k(LN2_LO), y));
    let out = this.madd(e, this.k(LN2_HI), this.op("add", m, r));
    // Specials: 0 → −∞, negative → NaN, +∞ → +∞, NaN → NaN.
    out = this.select(this.op("eq", x, this.k(0)), this.k(-Infinity), out);
    out = this.select(this.op("lt", x, this.k(0)), this.k(NaN), out);
    out = this.select(this.op("eq", x, this.k(Infinity)), this.k(Infinity), out);
    return this.select(this.op("ne", x, x), x, out);
  }

  /** tanh x. */
  tanh(x: V): V {
    const ax = this.un("abs", x);
    const x2 = this.op("mul", x, x);
    // small: x + x·x²·P(x²)
    const small = this.madd(this.op("mul", x, x2), this.poly(x2, TANH_P), x);
    // large: 1 − 2/(e^{2|x|} + 1), with x's sign
    const ex = this.exp(this.op("add", ax, ax));
    const mag = this.op("sub", this.k(1), this.op("div", this.k(2), this.op("add", ex, this.k(1))));
    const large = this.bit("or", mag, this.bit("and", x, this.ki(0x80000000)));
    return this.select(this.op("lt", ax, this.k(0.625)), small, large);
  }

  /** 1 / (1 + e^−x), as e/(1 + e) below 0 with e = e^−|x|. */
  sigmoid(x: V): V {
    const e = this.exp(this.un("neg", this.un("abs", x)));
    const num = this.select(this.op("lt", x, this.k(0)), e, this.k(1));
    return this.op("div", num, this.op("add", this.k(1), e));
  }

  /**
   * erfc(z) for z ≥ 0, and e^(−z²) along (GELU's backward needs it: φ(x) = e^(−x²/2)/√(2π)):
   * erfc(z) = t·e^(−z²)·Q(2t − 1), t = 1/(1 + z/2).
   */
  erfcPos(z: V): [erfc: V, gauss: V] {
    const t = this.op("div", this.k(1), this.madd(z, this.k(0.5), this.k(1)));
    const gauss = this.exp(this.un("neg", this.op("mul", z, z)));
    const q = this.poly(this.madd(t, this.k(2), this.k(-1)), ERFC_Q);
    return [this.op("mul", this.op("mul", t, gauss), q), gauss];
  }
}
