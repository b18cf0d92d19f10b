// The loop of the wasm elementwise machinery (wasm.ts): the exported `ew(tid, n, desc)` of one
// module, specialised on each operand's role, dtype and inner-stride class and on the number of
// outer dims R. A thread takes its range of the N output elements on 16-element boundaries
// (results never depend on the thread count: each element is computed alone, by the same code,
// whatever its position) and walks it run by run; an odometer over the R outer dims gives each
// operand's row start. In a run, groups of `width` vectors go through the body emitted `width`
// times interleaved, the remaining whole vectors one at a time, and the last 1-3 elements through
// the same one-vector code: their lanes are loaded from clamped addresses (lanes past the end
// repeat the last element) and stored highest lane first, so each element ends up with its own
// lane's value and nothing past the run is touched. Contiguous operands move as v128, broadcast
// ones are one splat per run, strided ones four scalar loads into lanes and four lane stores.

import type { DType } from "../../engine/dtype.ts";
import {
  FunctionBuilder,
  type Local,
  type ModuleBuilder,
  type ValType,
} from "../../engine/wasm/builder.ts";
import { ConstPool, VecMath } from "./wasm_math.ts";
import type { EwBody, Role } from "./wasm.ts";

/** An operand's inner-stride class: contiguous, broadcast (stride 0) or strided. */
export type Cls = "c" | "b" | "s";

/** Plan of one module: what the code is specialised on. */
export interface EwPlan {
  roles: Role[];
  classes: Cls[];
  dtypes: DType[];
  outer: number;
  scalars: number;
  fused: boolean;
  body: EwBody;
}

/** The per-operand locals of one function. */
interface OpLocals {
  /** Current address (bytes). */
  p: Local;
  /** Inner stride (bytes) and 4 · it. */
  inner: Local;
  step: Local;
  /** Lane byte offsets: j · inner (main loops) and min(j, t − 1) · inner (tail). */
  lanes: Local[];
  tails: Local[];
  /** The splat of a broadcast operand's element in the current run. */
  splat: Local | null;
}

/** Load vector j (of a group) of an operand: whole, gathered lane by lane, or the run's splat. */
function load(f: FunctionBuilder, cls: Cls, o: OpLocals, j: number, tail: boolean, tmp: Local) {
  if (cls === "b") return f.get(o.splat!);
  if (cls === "c" && !tail) return (f.get(o.p), f.v128.load(16 * j, 0));
  const lanes = tail ? o.tails : o.lanes;
  f.set(tmp, () => f.add(o.p, () => f.mul(o.step, j)));
  (f.get(tmp), f.v128.load32Zero(0, 0));
  for (let l = 1; l < 4; l++) (f.add(tmp, lanes[l]), f.i32.load(0, 0), f.i32x4.replaceLane(l));
}

/** Store vector j of a group to an operand, lane by lane highest first when not contiguous. */
function store(
  f: FunctionBuilder,
  cls: Cls,
  o: OpLocals,
  j: number,
  tail: boolean,
  v: Local,
  tmp: Local,
) {
  if (cls === "c" && !tail) return (f.get(o.p), f.get(v), f.v128.store(16 * j, 0));
  const lanes = tail ? o.tails : o.lanes;
  f.set(tmp, () => f.add(o.p, () => f.mul(o.step, j)));
  for (let l = 3; l >= 0; l--) {
    if (l === 0) f.get(tmp);
    else f.add(tmp, lanes[l]);
    (f.get(v), f.i32x4.extractLane(l), f.i32.store(0, 0));
  }
}

const EW_PARAMS: ValType[] = ["i32", "i32", "i32"];

/**
 * The exported `ew(tid, n, desc)` of one plan, emitted twice: once into a scratch function to
 * collect the body's constants, then for real with them hoisted out of the loops.
 */
export function buildEw(b: ModuleBuilder, plan: EwPlan): void {
  const consts = new ConstPool();
  const probe = new FunctionBuilder({ index: 0, name: "probe", params: EW_PARAMS, results: [] });
  emitEw(probe, plan, consts);
  b.export("ew", EW_PARAMS, [], (f) => emitEw(f, plan, consts));
}

/** The body of `ew` (see the header). */
function emitEw(f: FunctionBuilder, plan: EwPlan, consts: ConstPool): void {
  const { roles, classes, outer: R, body } = plan;
  const W = body.width ?? 1;
  const [tid, nth, desc] = f.params;
  const i32 = () => f.local("i32");
  const [N, L, s, e, r, col, seg, t, flat, tmp] = Array.from({ length: 10 }, i32);
  const D = Array.from({ length: R }, i32);
  const idx = Array.from({ length: R }, i32);
  const ops: OpLocals[] = roles.map((_, o) => ({
    p: i32(),
    inner: i32(),
    step: i32(),
    lanes: [i32(), i32(), i32(), i32()],
    tails: [i32(), i32(), i32(), i32()],
    splat: classes[o] === "b" && roles[o] !== "out" ? f.local("v128") : null,
  }));
  const base = roles.map(i32);
  const row = roles.map(i32);
  const st = roles.map(() => Array.from({ length: R }, i32));
  let w = 0;
  const word = () => (f.get(desc), f.i32.load(4 * w++));
  f.set(N, word);
  f.set(L, word);
  D.forEach((d) => f.set(d, word));
  ops.forEach((o, k) => {
    f.set(base[k], word);
    f.set(o.inner, word);
    st[k].forEach((x) => f.set(x, word));
    f.set(o.step, () => f.mul(o.inner, 4));
    for (let l = 1; l < 4; l++) f.set(o.lanes[l], () => f.mul(o.inner, l));
  });
  const scalars = Array.from({ length: plan.scalars }, (_, k) => {
    const l = f.local("v128");
    (f.get(desc), f.v128.load32Splat(4 * (w + k)), f.set(l));
    return l;
  });
  consts.hoist(f);
  // This thread's range [s, e), on 16-element boundaries.
  const blocks = () => (f.add(N, 15), f.i32.const(4), f.i32.shrU());
  f.set(s, () => f.mul(() => f.mulDiv(blocks, tid, nth), 16));
  f.set(e, () => f.min(N, () => f.mul(() => f.mulDiv(blocks, () => f.add(tid, 1), nth), 16)));
  (f.get(s), f.get(e), f.i32.geS(), f.if(), f.return(), f.end());
  // Row r = s / L and its outer index; each operand's row start.
  f.set(r, () => (f.get(s), f.get(L), f.i32.divU()));
  f.set(col, () => f.sub(s, () => f.mul(r, L)));
  for (let d = R - 1; d >= 0; d--) {
    f.set(idx[d], () => (f.get(r), f.get(D[d]), f.i32.remU()));
    f.set(r, () => (f.get(r), f.get(D[d]), f.i32.divU()));
  }
  row.forEach((x, k) => {
    f.set(x, base[k]);
    for (let d = 0; d < R; d++) f.inc(x, () => f.mul(idx[d], st[k][d]));
  });
  const iota = f.local("v128");
  (f.i32x4.const([0, 1, 2, 3]), f.set(iota));
  // One step of `width` vectors (tail: one vector of 1-3 elements).
  const vectors = (width: number, tail: boolean) => {
    const m = new VecMath(f, plan.fused, width, consts);
    const all = (l: Local) => m.all(l);
    const index = body.index
      ? m.map((
        j,
      ) => (f.get(flat),
        f.i32.const(4 * j),
        f.i32.add(),
        f.i32x4.splat(),
        f.get(iota),
        f.i32x4.add())
      )
      : null;
    const ins = ops.flatMap((o, k) =>
      roles[k] === "out" ? [] : [m.map((j) => load(f, classes[k], o, j, tail, tmp))]
    );
    const outs = body.emit({ f, m, ins, scalars: scalars.map(all), index, dtypes: plan.dtypes });
    let n = 0;
    ops.forEach((o, k) => {
      if (roles[k] === "in") return;
      const v = outs[n++];
      for (let j = 0; j < width; j++) store(f, classes[k], o, j, tail, v[j], tmp);
    });
  };
  const advance = (vecs: number) => {
    ops.forEach((o, k) => classes[k] !== "b" && f.inc(o.p, () => f.mul(o.step, vecs)));
    if (body.index) f.inc(flat, 4 * vecs);
  };
  const runs = f.block();
  const next = f.loop();
  f.set(seg, () => f.min(() => f.sub(L, col), () => f.sub(e, s)));
  ops.forEach((o, k) => {
    f.set(o.p, () => f.add(row[k], () => f.mul(col, o.inner)));
    if (o.splat) (f.get(o.p), f.v128.load32Splat(0, 0), f.set(o.splat));
  });
  if (body.index) f.set(flat, s);
  f.repeat(() => (f.get(seg), f.i32.const(2 + Math.log2(W)), f.i32.shrU()), () => {
    vectors(W, false);
    advance(W);
  });
  if (W > 1) {
    f.repeat(
      () => (f.get(seg), f.i32.const(2), f.i32.shrU(), f.i32.const(W - 1), f.i32.and()),
      () => {
        vectors(1, false);
        advance(1);
      },
    );
  }
  // Tail of 1-3 elements: lane j at min(j, t − 1) · stride.
  f.set(t, () => (f.get(seg), f.i32.const(3), f.i32.and()));
  f.get(t);
  f.if();
  ops.forEach((o, k) => {
    if (classes[k] === "b") return;
    for (let l = 1; l < 4; l++) {
      f.set(o.tails[l], () => f.mul(() => f.min(l, () => f.sub(t, 1)), o.inner));
    }
  });
  vectors(1, true);
  f.end();
  f.inc(s, seg);
  (f.get(s), f.get(e), f.i32.geS(), f.brIf(runs));
  f.set(col, 0);
  odometer(f, idx, D, row, st);
  f.br(next);
  f.end();
  f.end();
}

/** Advance the outer index by one row, carrying into outer dims, and each operand's row start. */
function odometer(f: FunctionBuilder, idx: Local[], D: Local[], row: Local[], st: Local[][]) {
  if (idx.length === 0) return;
  const done = f.block();
  for (let d = idx.length - 1; d >= 0; d--) {
    f.inc(idx[d]);
    row.forEach((x, o) => f.inc(x, st[o][d]));
    (f.get(idx[d]), f.get(D[d]), f.i32.ltS(), f.brIf(done));
    f.set(idx[d], 0);
    row.forEach((x, o) => f.set(x, () => f.sub(x, () => f.mul(D[d], st[o][d]))));
  }
  f.end();
}
