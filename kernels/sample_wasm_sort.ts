// The row sort and the float64 exp of the wasm sampling kernels (sample_wasm.ts), and the
// per-thread scratch they use. exp64 is fdlibm's __ieee754_exp (what V8's Math.exp descends
// from) branch for branch, within 1 ulp of Math.exp. The sort is a stable LSD radix sort (4
// passes of 8 bits) of order-preserving u32 keys of f32 values, descending, ties by lower
// index, NaN last: the reference's order.

import type { FunctionBuilder, Local, ModuleBuilder } from "../engine/wasm/builder.ts";

const I32 = (n: number) => Array<"i32">(n).fill("i32");

// fdlibm e_exp.c constants.
const LN2_HI = 6.93147180369123816490e-01;
const LN2_LO = 1.90821492927058770002e-10;
const INV_LN2 = 1.44269504088896338700e+00;
const P = [
  1.66666666666666019037e-01,
  -2.77777777770155933842e-03,
  6.61375632143793436117e-05,
  -1.65339022054652515390e-06,
  4.13813679705723846039e-08,
];
const O_THRESHOLD = 7.09782712893383973096e+02;
const U_THRESHOLD = -7.45133219101941108420e+02;
const TWO_M1000 = 9.33263618503218878990e-302;

/** exp64(x: f64) -> f64: fdlibm's __ieee754_exp, branch for branch. */
export function exp64(b: ModuleBuilder) {
  return b.func("exp64", ["f64"], ["f64"], (f) => {
    const [x0] = f.params;
    const [x, hi, lo, t, c, y] = Array.from({ length: 6 }, () => f.local("f64"));
    const [hx, xsb, k] = [f.local("i32"), f.local("i32"), f.local("i32")];
    const ret = (emit: () => void) => (emit(), f.return());
    f.set(x, x0);
    // NaN, overflow, underflow.
    f.get(x);
    f.get(x);
    f.f64.ne();
    f.if();
    ret(() => (f.get(x), f.get(x), f.f64.add()));
    f.end();
    f.get(x);
    f.f64.const(O_THRESHOLD);
    f.f64.gt();
    f.if();
    ret(() => f.f64.const(Infinity));
    f.end();
    f.get(x);
    f.f64.const(U_THRESHOLD);
    f.f64.lt();
    f.if();
    ret(() => f.f64.const(0));
    f.end();
    f.get(x);
    f.i64.reinterpretF64();
    f.i64.const(32);
    f.i64.shrU();
    f.i32.wrapI64();
    f.set(hx);
    f.set(xsb, () => (f.get(hx), f.i32.const(31), f.i32.shrU()));
    f.set(hx, () => (f.get(hx), f.i32.const(0x7fffffff), f.i32.and()));
    f.set(k, 0);
    f.f64.const(0);
    f.set(lo);
    // Argument reduction: x = hi − lo, |x| <= 0.5 ln 2.
    f.get(hx);
    f.i32.const(0x3fd62e42);
    f.i32.gtU();
    f.if();
    f.get(hx);
    f.i32.const(0x3ff0a2b2);
    f.i32.ltU();
    f.if();
    // |x| < 1.5 ln 2: k = ±1.
    // select(a, b, c) is c ? a : b: ln2HI[xsb], ln2LO[xsb], halF[xsb] are negative for xsb = 1.
    f.get(x);
    f.f64.const(-LN2_HI);
    f.f64.const(LN2_HI);
    f.get(xsb);
    f.select();
    f.f64.sub();
    f.set(hi);
    f.f64.const(-LN2_LO);
    f.f64.const(LN2_LO);
    f.get(xsb);
    f.select();
    f.set(lo);
    f.set(k, () => f.sub(1, () => f.mul(xsb, 2)));
    f.else();
    f.f64.const(INV_LN2);
    f.get(x);
    f.f64.mul();
    f.f64.const(-0.5);
    f.f64.const(0.5);
    f.get(xsb);
    f.select();
    f.f64.add();
    f.i32.truncF64S();
    f.set(k);
    f.get(k);
    f.f64.convertI32S();
    f.set(t);
    f.get(x);
    f.get(t);
    f.f64.const(LN2_HI);
    f.f64.mul();
    f.f64.sub();
    f.set(hi);
    f.get(t);
    f.f64.const(LN2_LO);
    f.f64.mul();
    f.set(lo);
    f.end();
    f.get(hi);
    f.get(lo);
    f.f64.sub();
    f.set(x);
    f.else();
    f.get(hx);
    f.i32.const(0x3e300000);
    f.i32.ltU();
    f.if();
    ret(() => (f.f64.const(1), f.get(x), f.f64.add())); // |x| < 2^-28
    f.end();
    f.end();
    // c = x − t·(P1 + t·(P2 + t·(P3 + t·(P4 + t·P5)))), t = x²
    f.get(x);
    f.get(x);
    f.f64.mul();
    f.set(t);
    f.f64.const(P[4]);
    for (const p of [P[3], P[2], P[1], P[0]]) (f.get(t), f.f64.mul(), f.f64.const(p), f.f64.add());
    f.get(t);
    f.f64.mul();
    f.set(c);
    f.get(x);
    f.get(c);
    f.f64.sub();
    f.set(c);
    f.get(k);
    f.i32.eqz();
    f.if();
    // 1 − ((x·c)/(c − 2) − x)
    ret(() => {
      f.f64.const(1);
      f.get(x);
      f.get(c);
      f.f64.mul();
      f.get(c);
      f.f64.const(2);
      f.f64.sub();
      f.f64.div();
      f.get(x);
      f.f64.sub();
      f.f64.sub();
    });
    f.end();
    // y = 1 − ((lo − (x·c)/(2 − c)) − hi), then · 2^k through the exponent bits.
    f.f64.const(1);
    f.get(lo);
    f.get(x);
    f.get(c);
    f.f64.mul();
    f.f64.const(2);
    f.get(c);
    f.f64.sub();
    f.f64.div();
    f.f64.sub();
    f.get(hi);
    f.f64.sub();
    f.f64.sub();
    f.set(y);
    const scaled = (by: number) => {
      f.get(y);
      f.i64.reinterpretF64();
      f.get(k);
      if (by) (f.i32.const(by), f.i32.add());
      f.i64.extendI32S();
      f.i64.const(52);
      f.i64.shl();
      f.i64.add();
      f.f64.reinterpretI64();
    };
    f.get(k);
    f.i32.const(-1021);
    f.i32.geS();
    f.if("f64");
    scaled(0);
    f.else();
    scaled(1000);
    f.f64.const(TWO_M1000);
    f.f64.mul();
    f.end();
  });
}

/**
 * radix(keys, idx, tk, ti, hist, n): sort (keys, idx) by key ascending, stable, with tk, ti
 * as the other buffers (4 passes: the result ends in keys, idx).
 */
export function radix(b: ModuleBuilder) {
  return b.func("radix", I32(6), [], (f) => {
    const [keys, idx, tk, ti, hist, n] = f.params;
    const [pass, j, d, pos, sum, t, src, srcI, dst, dstI] = Array.from(
      { length: 10 },
      () => f.local("i32"),
    );
    const digit = (p: Local) => () => {
      f.add(src, () => f.mul(p, 4));
      f.i32.load();
      f.mul(pass, 8);
      f.i32.shrU();
      f.i32.const(255);
      f.i32.and();
    };
    const h = (at: () => void) => f.add(hist, () => f.mul(at, 4));
    f.for(pass, 0, 4, 1, () => {
      f.set(
        src,
        () => (f.get(pass),
          f.i32.const(1),
          f.i32.and(),
          f.if("i32"),
          f.get(tk),
          f.else(),
          f.get(keys),
          f.end()),
      );
      f.set(
        srcI,
        () => (f.get(pass),
          f.i32.const(1),
          f.i32.and(),
          f.if("i32"),
          f.get(ti),
          f.else(),
          f.get(idx),
          f.end()),
      );
      f.set(
        dst,
        () => (f.get(pass),
          f.i32.const(1),
          f.i32.and(),
          f.if("i32"),
          f.get(keys),
          f.else(),
          f.get(tk),
          f.end()),
      );
      f.set(
        dstI,
        () => (f.get(pass),
          f.i32.const(1),
          f.i32.and(),
          f.if("i32"),
          f.get(idx),
          f.else(),
          f.get(ti),
          f.end()),
      );
      f.for(j, 0, 256, 1, () => (h(() => f.get(j)), f.i32.const(0), f.i32.store()));
      f.for(j, 0, n, 1, () => {
        f.set(d, digit(j));
        h(() => f.get(d));
        h(() => f.get(d));
        f.i32.load();
        f.i32.const(1);
        f.i32.add();
        f.i32.store();
      });
      f.set(sum, 0);
      f.for(j, 0, 256, 1, () => {
        f.set(t, () => (h(() => f.get(j)), f.i32.load()));
        h(() => f.get(j));
        f.get(sum);
        f.i32.store();
        f.inc(sum, t);
      });
      f.for(j, 0, n, 1, () => {
        f.set(d, digit(j));
        f.set(pos, () => (h(() => f.get(d)), f.i32.load()));
        h(() => f.get(d));
        f.add(pos, 1);
        f.i32.store();
        f.add(dst, () => f.mul(pos, 4));
        f.add(src, () => f.mul(j, 4));
        f.i32.load();
        f.i32.store();
        f.add(dstI, () => f.mul(pos, 4));
        f.add(srcI, () => f.mul(j, 4));
        f.i32.load();
        f.i32.store();
      });
    });
  });
}

/** Scratch of one thread for rows of `len`: keys, idx, their copies, z and e (f64), hist. */
export function scratchLayout(len: number) {
  const words = Math.ceil(len / 2) * 2; // keep the f64 arrays 8-byte aligned
  const keys = 0;
  const idx = 4 * words;
  const tk = 8 * words;
  const ti = 12 * words;
  const z = 16 * words;
  const e = z + 8 * len;
  const hist = e + 8 * len;
  return { keys, idx, tk, ti, z, e, hist, bytes: Math.ceil((hist + 1024) / 64) * 64 };
}

/** Locals with this thread's scratch addresses, from (scratch, perThread, len). */
export function scratchOf(f: FunctionBuilder, tid: Local, scratch: Local, per: Local, len: Local) {
  const base = f.local("i32");
  f.set(base, () => f.add(scratch, () => f.mul(tid, per)));
  const words = f.local("i32");
  f.set(words, () => (f.add(len, 1), f.i32.const(-2), f.i32.and()));
  const at = (bytesPerWord: number, lenBytes = 0) => {
    const l = f.local("i32");
    f.set(
      l,
      () => f.add(() => f.add(base, () => f.mul(words, bytesPerWord)), () => f.mul(len, lenBytes)),
    );
    return l;
  };
  const keys = at(0);
  const idx = at(4);
  const tk = at(8);
  const ti = at(12);
  const z = at(16);
  const e = at(16, 8);
  const hist = at(16, 16);
  return { keys, idx, tk, ti, z, e, hist };
}

/**
 * Sort row x (f32, `len`) descending, ties by lower index, NaN last: s.idx holds the order.
 * Stored keys are the inverted order-preserving map of each float (−0 as +0), NaN's all ones.
 */
export function sortRow(
  f: FunctionBuilder,
  sort: ReturnType<typeof radix>,
  x: Local,
  len: Local,
  s: ReturnType<typeof scratchOf>,
) {
  const [j, bits] = [f.local("i32"), f.local("i32")];
  const v = f.local("f32");
  f.for(j, 0, len, 1, () => {
    f.set(v, () => (f.add(x, () => f.mul(j, 4)), f.f32.load()));
    f.set(bits, () => (f.get(v), f.i32.reinterpretF32()));
    // −0 -> +0
    f.get(bits);
    f.i32.const(-1);
    f.i32.const(0);
    f.get(bits);
    f.i32.const(0x7fffffff);
    f.i32.and();
    f.select();
    f.i32.and();
    f.set(bits);
    f.add(s.keys, () => f.mul(j, 4));
    f.get(v);
    f.get(v);
    f.f32.ne();
    f.if("i32");
    f.i32.const(-1);
    f.else();
    // negative: key ~bits, stored bits; else key bits | 2^31, stored its complement
    f.get(bits);
    f.get(bits);
    f.i32.const(0x80000000 | 0);
    f.i32.or();
    f.i32.const(-1);
    f.i32.xor();
    f.get(bits);
    f.i32.const(0);
    f.i32.ltS();
    f.select();
    f.end();
    f.i32.store();
    f.add(s.idx, () => f.mul(j, 4));
    f.get(j);
    f.i32.store();
  });
  [s.keys, s.idx, s.tk, s.ti, s.hist, len].forEach((l) => f.get(l));
  f.call(sort);
}
