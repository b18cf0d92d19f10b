// Sampling on the wasm backend (sample.ts's topk, multinomial and sample_logits), one row per
// item: rows are claimed in chunks by the threads (wasm_math.ts's runItems), each thread with
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
import { addr, RowGen, runItems, threadsFor } from "./rows/wasm_math.ts";

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
function exp64(b: ModuleBuilder) {
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
function radix(b: ModuleBuilder) {
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
function scratchLayout(len: number) {
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
function scratchOf(f: FunctionBuilder, tid: Local, scratch: Local, per: Local, len: Local) {
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
function sortRow(
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
