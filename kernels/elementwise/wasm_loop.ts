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
  const e = new EwEmitter(f, plan, consts);
  e.readDescriptor();
  consts.hoist(f);
  e.startRange();
  e.runs();
}

/** The locals and code of one `ew` function. */
class EwEmitter {
  readonly #i32 = () => this.f.local("i32");
  /** Elements, inner length, this thread's range [s, e), the run's start column and length. */
  readonly N = this.#i32();
  readonly L = this.#i32();
  readonly s = this.#i32();
  readonly e = this.#i32();
  readonly col = this.#i32();
  readonly seg = this.#i32();
  /** Flat index of the current vector (bodies that ask for `index`), the tail's length, and a
   * scratch register (the first row; an address in loads and stores). */
  readonly flat = this.#i32();
  readonly t = this.#i32();
  readonly tmp = this.#i32();
  /** Outer dims and the current outer index. */
  readonly D: Local[];
  readonly idx: Local[];
  /** Per operand: its locals, base address, current row start and outer byte strides. */
  readonly ops: OpLocals[];
  readonly base: Local[];
  readonly row: Local[];
  readonly st: Local[][];
  readonly scalars: Local[];
  readonly iota: Local;

  constructor(readonly f: FunctionBuilder, readonly plan: EwPlan, readonly consts: ConstPool) {
    const { roles, classes, outer: R } = plan;
    const i32 = this.#i32;
    this.D = Array.from({ length: R }, i32);
    this.idx = Array.from({ length: R }, i32);
    this.ops = roles.map((role, o) => ({
      p: i32(),
      inner: i32(),
      step: i32(),
      lanes: [i32(), i32(), i32(), i32()],
      tails: [i32(), i32(), i32(), i32()],
      splat: classes[o] === "b" && role !== "out" ? f.local("v128") : null,
    }));
    this.base = roles.map(i32);
    this.row = roles.map(i32);
    this.st = roles.map(() => Array.from({ length: R }, i32));
    this.scalars = Array.from({ length: plan.scalars }, () => f.local("v128"));
    this.iota = f.local("v128");
  }

  /** Load the launch's descriptor (wasm.ts) into locals. */
  readDescriptor(): void {
    const f = this.f;
    const desc = f.params[2];
    let w = 0;
    const word = () => (f.get(desc), f.i32.load(4 * w++));
    f.set(this.N, word);
    f.set(this.L, word);
    this.D.forEach((d) => f.set(d, word));
    this.ops.forEach((o, k) => {
      f.set(this.base[k], word);
      f.set(o.inner, word);
      this.st[k].forEach((x) => f.set(x, word));
      f.set(o.step, () => f.mul(o.inner, 4));
      for (let l = 1; l < 4; l++) f.set(o.lanes[l], () => f.mul(o.inner, l));
    });
    this.scalars.forEach((l, k) => (f.get(desc), f.v128.load32Splat(4 * (w + k)), f.set(l)));
    (f.i32x4.const([0, 1, 2, 3]), f.set(this.iota));
  }

  /** This thread's range [s, e) on 16-element boundaries; its first row and column. */
  startRange(): void {
    const { f, N, s, e, L, col, D, idx } = this;
    const [tid, nth] = f.params;
    const blocks = () => (f.add(N, 15), f.i32.const(4), f.i32.shrU());
    f.set(s, () => f.mul(() => f.mulDiv(blocks, tid, nth), 16));
    f.set(e, () => f.min(N, () => f.mul(() => f.mulDiv(blocks, () => f.add(tid, 1), nth), 16)));
    (f.get(s), f.get(e), f.i32.geS(), f.if(), f.return(), f.end());
    // Row r = s / L and its outer index; each operand's row start.
    const r = this.tmp;
    f.set(r, () => (f.get(s), f.get(L), f.i32.divU()));
    f.set(col, () => f.sub(s, () => f.mul(r, L)));
    for (let d = D.length - 1; d >= 0; d--) {
      f.set(idx[d], () => (f.get(r), f.get(D[d]), f.i32.remU()));
      f.set(r, () => (f.get(r), f.get(D[d]), f.i32.divU()));
    }
    this.row.forEach((x, k) => {
      f.set(x, this.base[k]);
      for (let d = 0; d < D.length; d++) f.inc(x, () => f.mul(idx[d], this.st[k][d]));
    });
  }

  /** Every run of the range: whole groups, single vectors, then the tail. */
  runs(): void {
    const { f, plan, ops, seg, L, col, s, e } = this;
    const W = plan.body.width ?? 1;
    const outer = f.block();
    const next = f.loop();
    f.set(seg, () => f.min(() => f.sub(L, col), () => f.sub(e, s)));
    ops.forEach((o, k) => {
      f.set(o.p, () => f.add(this.row[k], () => f.mul(col, o.inner)));
      if (o.splat) (f.get(o.p), f.v128.load32Splat(0, 0), f.set(o.splat));
    });
    if (plan.body.index) f.set(this.flat, s);
    f.repeat(() => (f.get(seg), f.i32.const(2 + Math.log2(W)), f.i32.shrU()), () => {
      this.step(W, false);
      this.advance(W);
    });
    if (W > 1) {
      const singles = () => (f.get(seg), f.i32.const(2), f.i32.shrU(), f.i32.const(W - 1));
      f.repeat(() => (singles(), f.i32.and()), () => {
        this.step(1, false);
        this.advance(1);
      });
    }
    this.tail();
    f.inc(s, seg);
    (f.get(s), f.get(e), f.i32.geS(), f.brIf(outer));
    f.set(col, 0);
    this.odometer();
    f.br(next);
    f.end();
    f.end();
  }

  /** The last 1-3 elements of a run: lane j at min(j, t − 1) · stride. */
  tail(): void {
    const { f, ops, plan, t } = this;
    f.set(t, () => (f.get(this.seg), f.i32.const(3), f.i32.and()));
    f.get(t);
    f.if();
    ops.forEach((o, k) => {
      if (plan.classes[k] === "b") return;
      for (let l = 1; l < 4; l++) {
        f.set(o.tails[l], () => f.mul(() => f.min(l, () => f.sub(t, 1)), o.inner));
      }
    });
    this.step(1, true);
    f.end();
  }

  /** Load, compute and store `width` vectors (tail: one vector of 1-3 elements). */
  step(width: number, tail: boolean): void {
    const { f, plan, ops } = this;
    const { roles, classes, body } = plan;
    const m = new VecMath(f, plan.fused, width, this.consts);
    const index = body.index
      ? m.map((j) => {
        (f.get(this.flat), f.i32.const(4 * j), f.i32.add(), f.i32x4.splat());
        (f.get(this.iota), f.i32x4.add());
      })
      : null;
    const ins = ops.flatMap((o, k) =>
      roles[k] === "out" ? [] : [m.map((j) => load(f, classes[k], o, j, tail, this.tmp))]
    );
    const scalars = this.scalars.map((l) => m.all(l));
    const outs = body.emit({ f, m, ins, scalars, index, dtypes: plan.dtypes });
    let n = 0;
    ops.forEach((o, k) => {
      if (roles[k] === "in") return;
      const v = outs[n++];
      for (let j = 0; j < width; j++) store(f, classes[k], o, j, tail, v[j], this.tmp);
    });
  }

  /** Move every non-broadcast operand (and the flat index) past `vecs` vectors. */
  advance(vecs: number): void {
    const { f, ops, plan } = this;
    ops.forEach((o, k) => plan.classes[k] !== "b" && f.inc(o.p, () => f.mul(o.step, vecs)));
    if (plan.body.index) f.inc(this.flat, 4 * vecs);
  }

  /** Advance the outer index by one row, carrying into outer dims, and each row start. */
  odometer(): void {
    const { f, idx, D, row, st } = this;
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
}
