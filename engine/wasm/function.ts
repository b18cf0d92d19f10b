// The function half of the module builder (builder.ts): a FunctionBuilder emits one function's
// locals and code in stack-machine order, with structured control flow (labels are objects;
// `br` computes the depth) and the instructions of ops.ts as typed methods grouped by type
// (`f.i32.add()`, `f.f32x4.relaxedMadd()`, `f.v128.load(16)`), plus small helpers for generated
// loops (`for`, `repeat`, `inc`) that keep kernel generators readable.

import {
  ATOMIC_MEM,
  F32_OPS,
  F32X4_OPS,
  F64_OPS,
  F64X2_OPS,
  I16X8_OPS,
  I32_OPS,
  I32X4_OPS,
  I64_OPS,
  I64X2_OPS,
  I8X16_OPS,
  LANE_OPS,
  type MemSpec,
  type OpSpec,
  SCALAR_MEM,
  V128_MEM,
  V128_OPS,
} from "./ops.ts";
import { sleb, uleb, type ValType, VALTYPE_CODE, vec } from "./encoding.ts";

/** A parameter or local of the function being built. */
export interface Local {
  /** Index in the function's local space (parameters first). */
  readonly index: number;
  /** Its value type. */
  readonly type: ValType;
}

/** A function of the module (imported or defined), for `call`. */
export interface FuncRef {
  /** Index in the module's function space (imports first). */
  readonly index: number;
  /** Export or debug name. */
  readonly name: string;
  /** Parameter types. */
  readonly params: readonly ValType[];
  /** Result types. */
  readonly results: readonly ValType[];
}

/** A branch target: a block, loop or if opened by the function builder. */
export interface Label {
  /** What opened it (a `br` to a loop jumps to its start, to a block or if past its end). */
  readonly kind: "block" | "loop" | "if";
}

/** An i32 operand: a constant, a local's value, or code that pushes one i32. */
export type I32Expr = number | Local | (() => void);

// ---- instruction namespaces -------------------------------------------------------------------

type Plain<T> = { readonly [K in keyof T]: () => void };
type Mem<T> = { readonly [K in keyof T]: (offset?: number, align?: number) => void };

function plain<T extends Record<string, OpSpec>>(emit: (b: number[]) => void, t: T, pre?: number) {
  const out: Record<string, () => void> = {};
  for (const [k, [op]] of Object.entries(t)) {
    out[k] = pre === undefined ? () => emit([op]) : () => emit([pre, ...uleb(op)]);
  }
  return out as Plain<T>;
}

function mem<T extends Record<string, MemSpec>>(emit: (b: number[]) => void, t: T, pre?: number) {
  const out: Record<string, (offset?: number, align?: number) => void> = {};
  for (const [k, [op, natural]] of Object.entries(t)) {
    const head = pre === undefined ? [op] : [pre, ...uleb(op)];
    out[k] = (offset = 0, align = natural) => {
      if (align > natural) throw new RangeError(`${k}: alignment 2^${align} over natural`);
      emit([...head, ...uleb(align), ...uleb(offset)]);
    };
  }
  return out as Mem<T>;
}

function lanes(emit: (b: number[]) => void, key: keyof typeof LANE_OPS) {
  const [op, count] = LANE_OPS[key];
  return (lane: number) => {
    if (!(lane >= 0 && lane < count)) throw new RangeError(`${key}: lane ${lane} of ${count}`);
    emit([0xfd, ...uleb(op), lane]);
  };
}

function f32Bytes(v: number): number[] {
  return [...new Uint8Array(new Float32Array([v]).buffer)];
}

function f64Bytes(v: number): number[] {
  return [...new Uint8Array(new Float64Array([v]).buffer)];
}

/** Builds one function body: locals, control flow and instructions, in stack-machine order. */
export class FunctionBuilder {
  /** The parameters as locals 0..n-1. */
  readonly params: readonly Local[];
  readonly #code: number[] = [];
  readonly #locals: ValType[] = [];
  readonly #labels: Label[] = [];

  constructor(readonly ref: FuncRef) {
    this.params = ref.params.map((type, index) => ({ index, type }));
  }

  /** Append raw bytes (an instruction the typed methods lack). */
  emit(bytes: readonly number[]): void {
    for (const b of bytes) this.#code.push(b);
  }

  readonly #e = (b: number[]) => this.emit(b);

  /** Scalar i32: arithmetic, comparisons, loads/stores, atomics. */
  readonly i32 = {
    ...plain(this.#e, I32_OPS),
    ...mem(this.#e, SCALAR_MEM.i32),
    const: (v: number) => this.emit([0x41, ...sleb(v | 0)]),
    /** Atomic accesses, wait and notify on shared memory (prefix 0xfe). */
    atomic: mem(this.#e, ATOMIC_MEM, 0xfe),
  };
  /** Scalar i64. */
  readonly i64 = {
    ...plain(this.#e, I64_OPS),
    ...mem(this.#e, SCALAR_MEM.i64),
    const: (v: number | bigint) => this.emit([0x42, ...sleb(v)]),
  };
  /** Scalar f32. */
  readonly f32 = {
    ...plain(this.#e, F32_OPS),
    ...mem(this.#e, SCALAR_MEM.f32),
    const: (v: number) => this.emit([0x43, ...f32Bytes(v)]),
  };
  /** Scalar f64. */
  readonly f64 = {
    ...plain(this.#e, F64_OPS),
    ...mem(this.#e, SCALAR_MEM.f64),
    const: (v: number) => this.emit([0x44, ...f64Bytes(v)]),
  };
  /** Whole-vector operations, v128 loads/stores and constants. */
  readonly v128 = {
    ...plain(this.#e, V128_OPS, 0xfd),
    ...mem(this.#e, V128_MEM, 0xfd),
    /** A constant from 16 bytes. */
    const: (bytes: ArrayLike<number>) => {
      if (bytes.length !== 16) throw new RangeError(`v128.const: ${bytes.length} bytes, not 16`);
      this.emit([0xfd, 0x0c, ...Array.from(bytes, (b) => b & 0xff)]);
    },
  };
  /** 16 × i8 lanes. */
  readonly i8x16 = {
    ...plain(this.#e, I8X16_OPS, 0xfd),
    /** Lanes of the two operands picked by 16 constant indices (0-15 first, 16-31 second). */
    shuffle: (idx: readonly number[]) => {
      if (idx.length !== 16 || idx.some((i) => !(i >= 0 && i < 32))) {
        throw new RangeError(`i8x16.shuffle: bad lanes ${idx}`);
      }
      this.emit([0xfd, 0x0d, ...idx]);
    },
    extractLaneS: lanes(this.#e, "i8x16ExtractLaneS"),
    extractLaneU: lanes(this.#e, "i8x16ExtractLaneU"),
    replaceLane: lanes(this.#e, "i8x16ReplaceLane"),
  };
  /** 8 × i16 lanes. */
  readonly i16x8 = {
    ...plain(this.#e, I16X8_OPS, 0xfd),
    extractLaneS: lanes(this.#e, "i16x8ExtractLaneS"),
    replaceLane: lanes(this.#e, "i16x8ReplaceLane"),
  };
  /** 4 × i32 lanes. */
  readonly i32x4 = {
    ...plain(this.#e, I32X4_OPS, 0xfd),
    extractLane: lanes(this.#e, "i32x4ExtractLane"),
    replaceLane: lanes(this.#e, "i32x4ReplaceLane"),
    /** A constant vector of four i32. */
    const: (v: readonly number[]) => this.v128.const(new Uint8Array(Int32Array.from(v).buffer)),
  };
  /** 2 × i64 lanes. */
  readonly i64x2 = {
    ...plain(this.#e, I64X2_OPS, 0xfd),
    extractLane: lanes(this.#e, "i64x2ExtractLane"),
  };
  /** 4 × f32 lanes. */
  readonly f32x4 = {
    ...plain(this.#e, F32X4_OPS, 0xfd),
    extractLane: lanes(this.#e, "f32x4ExtractLane"),
    replaceLane: lanes(this.#e, "f32x4ReplaceLane"),
    /** A constant vector of four f32. */
    const: (v: readonly number[]) => this.v128.const(new Uint8Array(Float32Array.from(v).buffer)),
  };
  /** 2 × f64 lanes. */
  readonly f64x2 = {
    ...plain(this.#e, F64X2_OPS, 0xfd),
    extractLane: lanes(this.#e, "f64x2ExtractLane"),
    replaceLane: lanes(this.#e, "f64x2ReplaceLane"),
  };

  /** A new local of `type` (zero-initialised on entry). */
  local(type: ValType): Local {
    this.#locals.push(type);
    return { index: this.params.length + this.#locals.length - 1, type };
  }

  /** Push a local's value. */
  get(l: Local): void {
    this.emit([0x20, ...uleb(l.index)]);
  }

  /** Pop into a local; with `value`, push that first (`set(i, 0)`). */
  set(l: Local, value?: I32Expr): void {
    if (value !== undefined) this.push(value);
    this.emit([0x21, ...uleb(l.index)]);
  }

  /** Store into a local and keep the value on the stack. */
  tee(l: Local): void {
    this.emit([0x22, ...uleb(l.index)]);
  }

  /** Push an i32 operand: a constant, a local or the code of an expression. */
  push(x: I32Expr): void {
    if (typeof x === "number") this.i32.const(x);
    else if (typeof x === "function") x();
    else this.get(x);
  }

  /** l += by (i32). */
  inc(l: Local, by: I32Expr = 1): void {
    this.get(l);
    this.push(by);
    this.i32.add();
    this.set(l);
  }

  /** Push a + b (i32). */
  add(a: I32Expr, b: I32Expr): void {
    this.push(a);
    this.push(b);
    this.i32.add();
  }

  /** Push a · b (i32). */
  mul(a: I32Expr, b: I32Expr): void {
    this.push(a);
    this.push(b);
    this.i32.mul();
  }

  /** Push a − b (i32). */
  sub(a: I32Expr, b: I32Expr): void {
    this.push(a);
    this.push(b);
    this.i32.sub();
  }

  /** Push min(a, b), signed (each operand is evaluated twice: keep them cheap). */
  min(a: I32Expr, b: I32Expr): void {
    for (let i = 0; i < 2; i++) (this.push(a), this.push(b));
    this.i32.ltS();
    this.select();
  }

  /** Push floor(a · b / c) for unsigned a, b, c, through i64 (a · b may pass 2^32). */
  mulDiv(a: I32Expr, b: I32Expr, c: I32Expr): void {
    for (const x of [a, b]) (this.push(x), this.i64.extendI32U());
    this.i64.mul();
    this.push(c);
    this.i64.extendI32U();
    this.i64.divU();
    this.i32.wrapI64();
  }

  // ---- control flow ---------------------------------------------------------------------------

  #open(kind: Label["kind"], op: number, result?: ValType): Label {
    const label: Label = { kind };
    this.#labels.push(label);
    this.emit([op, result ? VALTYPE_CODE[result] : 0x40]);
    return label;
  }

  #depth(l: Label): number {
    const i = this.#labels.lastIndexOf(l);
    if (i < 0) throw new Error(`${this.ref.name}: branch to a label that is not open`);
    return this.#labels.length - 1 - i;
  }

  /** Open a block (`br` to it jumps past its `end`). */
  block(result?: ValType): Label {
    return this.#open("block", 0x02, result);
  }

  /** Open a loop (`br` to it jumps back to its start). */
  loop(result?: ValType): Label {
    return this.#open("loop", 0x03, result);
  }

  /** Pop an i32 and open an if (`else` optional). */
  if(result?: ValType): Label {
    return this.#open("if", 0x04, result);
  }

  /** Switch the innermost if to its else branch. */
  else(): void {
    if (this.#labels.at(-1)?.kind !== "if") throw new Error(`${this.ref.name}: else outside if`);
    this.emit([0x05]);
  }

  /** Close the innermost block, loop or if. */
  end(): void {
    if (!this.#labels.pop()) throw new Error(`${this.ref.name}: end without an open block`);
    this.emit([0x0b]);
  }

  /** Branch to `l`. */
  br(l: Label): void {
    this.emit([0x0c, ...uleb(this.#depth(l))]);
  }

  /** Pop an i32; branch to `l` when it is not zero. */
  brIf(l: Label): void {
    this.emit([0x0d, ...uleb(this.#depth(l))]);
  }

  /** Return from the function. */
  return(): void {
    this.emit([0x0f]);
  }

  /** Call a function of this module. */
  call(fn: FuncRef): void {
    this.emit([0x10, ...uleb(fn.index)]);
  }

  /** Drop the top of the stack. */
  drop(): void {
    this.emit([0x1a]);
  }

  /** Pop c (i32), b, a; push c ? a : b. */
  select(): void {
    this.emit([0x1b]);
  }

  /** Trap. */
  unreachable(): void {
    this.emit([0x00]);
  }

  /**
   * `for (i = from; i < to; i += step) body()` over signed i32, the bound evaluated before each
   * iteration (keep it a constant or a local). No iteration when from >= to.
   */
  for(i: Local, from: I32Expr, to: I32Expr, step: I32Expr, body: () => void): void {
    this.set(i, from);
    const exit = this.block();
    this.push(i);
    this.push(to);
    this.i32.geS();
    this.brIf(exit);
    const top = this.loop();
    body();
    this.inc(i, step);
    this.push(i);
    this.push(to);
    this.i32.ltS();
    this.brIf(top);
    this.end();
    this.end();
  }

  /** Run `body` `count` times (count >= 0, evaluated once), counting down a hidden local. */
  repeat(count: I32Expr, body: () => void): void {
    const j = this.local("i32");
    this.set(j, count);
    const exit = this.block();
    this.push(j);
    this.i32.eqz();
    this.brIf(exit);
    const top = this.loop();
    body();
    this.inc(j, -1);
    this.push(j);
    this.brIf(top);
    this.end();
    this.end();
  }

  /** The body's bytes (locals and code, without the size prefix). */
  encode(): number[] {
    if (this.#labels.length) throw new Error(`${this.ref.name}: ${this.#labels.length} unclosed`);
    const groups: [number, ValType][] = [];
    for (const t of this.#locals) {
      const last = groups.at(-1);
      if (last && last[1] === t) last[0]++;
      else groups.push([1, t]);
    }
    const out = vec(groups, ([n, t], o) => {
      uleb(n, o);
      o.push(VALTYPE_CODE[t]);
    });
    for (const b of this.#code) out.push(b);
    out.push(0x0b);
    return out;
  }
}
