// A small WebAssembly module builder: kernels are generated at run time from TypeScript, with no
// toolchain and no committed binaries. It writes the binary format of the core spec
// (https://webassembly.github.io/spec/core/binary/) plus SIMD128, relaxed SIMD and threads:
// types, imports (a shared memory, functions), functions with locals, structured control flow
// with labels as objects (br computes the depth), and the instructions of ops.ts as typed
// methods (`f.i32.add()`, `f.f32x4.relaxedMadd()`, `f.v128.load(16)`). The bytes it emits are
// checked by WebAssembly.validate/compile; V8's messages name the function (a name section
// is emitted) and the byte offset. Idea from ekzhang/jax-js `wasmblr.ts`, written afresh.

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

/** A WebAssembly value type. */
export type ValType = "i32" | "i64" | "f32" | "f64" | "v128";

const VALTYPE_CODE: Record<ValType, number> = {
  i32: 0x7f,
  i64: 0x7e,
  f32: 0x7d,
  f64: 0x7c,
  v128: 0x7b,
};

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

// ---- binary encoding --------------------------------------------------------------------------

/** Unsigned LEB128 of a u32. */
export function uleb(n: number, out: number[] = []): number[] {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`uleb: ${n}`);
  do {
    let byte = n & 0x7f;
    n = Math.floor(n / 128);
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of an integer (i32 or i64 range). */
export function sleb(v: number | bigint, out: number[] = []): number[] {
  let n = BigInt(v);
  for (;;) {
    const byte = Number(n & 0x7fn);
    n >>= 7n;
    const done = (n === 0n && (byte & 0x40) === 0) || (n === -1n && (byte & 0x40) !== 0);
    out.push(done ? byte : byte | 0x80);
    if (done) return out;
  }
}

function name(s: string, out: number[]): void {
  const b = new TextEncoder().encode(s);
  uleb(b.length, out);
  for (const x of b) out.push(x);
}

function section(id: number, body: number[], out: number[]): void {
  out.push(id);
  uleb(body.length, out);
  for (const x of body) out.push(x);
}

function vec<T>(items: readonly T[], write: (item: T, out: number[]) => void): number[] {
  const out = uleb(items.length);
  for (const it of items) write(it, out);
  return out;
}

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

// ---- functions --------------------------------------------------------------------------------

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

// ---- modules ----------------------------------------------------------------------------------

/** Limits of an imported memory, in 64 KiB pages. */
export interface MemoryImport {
  /** Import module name (default "env"). */
  module?: string;
  /** Import field name (default "memory"). */
  name?: string;
  /** Minimum pages. */
  min: number;
  /** Maximum pages (required when shared). */
  max?: number;
  /** A shared memory (threads). */
  shared?: boolean;
}

interface FuncDef {
  ref: FuncRef;
  body: (f: FunctionBuilder) => void;
  exported: boolean;
}

/**
 * Builds a module: imports first, then functions (bodies run when `bytes()` is called, so a
 * function may call one declared after it).
 */
export class ModuleBuilder {
  readonly #types: string[] = [];
  readonly #imports: { module: string; field: string; desc: number[] }[] = [];
  readonly #importedFuncs: FuncRef[] = [];
  readonly #funcs: FuncDef[] = [];

  #typeIndex(params: readonly ValType[], results: readonly ValType[]): number {
    const key = `${params.join(",")}:${results.join(",")}`;
    let i = this.#types.indexOf(key);
    if (i < 0) i = this.#types.push(key) - 1;
    return i;
  }

  /** Import a linear memory (index 0). */
  importMemory(m: MemoryImport): void {
    if (m.shared && m.max === undefined) throw new Error("importMemory: shared needs a maximum");
    const flags = (m.max !== undefined ? 1 : 0) | (m.shared ? 2 : 0);
    const desc = [0x02, flags, ...uleb(m.min)];
    if (m.max !== undefined) uleb(m.max, desc);
    this.#imports.push({ module: m.module ?? "env", field: m.name ?? "memory", desc });
  }

  /** Import a function; call before declaring any function of this module. */
  importFunc(
    module: string,
    field: string,
    params: ValType[],
    results: ValType[] = [],
  ): FuncRef {
    if (this.#funcs.length) throw new Error("importFunc: import functions before defining any");
    const ref = { index: this.#importedFuncs.length, name: field, params, results };
    this.#importedFuncs.push(ref);
    this.#imports.push({ module, field, desc: [0x00, ...uleb(this.#typeIndex(params, results))] });
    return ref;
  }

  /** Declare a function; `body` emits its code when the module is encoded. */
  func(
    name: string,
    params: ValType[],
    results: ValType[],
    body: (f: FunctionBuilder) => void,
    { exported = false }: { exported?: boolean } = {},
  ): FuncRef {
    const ref = {
      index: this.#importedFuncs.length + this.#funcs.length,
      name,
      params,
      results,
    };
    this.#funcs.push({ ref, body, exported });
    return ref;
  }

  /** Declare an exported function (see `func`). */
  export(
    name: string,
    params: ValType[],
    results: ValType[],
    body: (f: FunctionBuilder) => void,
  ): FuncRef {
    return this.func(name, params, results, body, { exported: true });
  }

  /** The module's binary. */
  bytes(): Uint8Array<ArrayBuffer> {
    const bodies = this.#funcs.map((d) => {
      const f = new FunctionBuilder(d.ref);
      d.body(f);
      return f.encode();
    });
    for (const d of this.#funcs) this.#typeIndex(d.ref.params, d.ref.results);
    const out = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
    section(
      1,
      vec(this.#types, (key, o) => {
        const [p, r] = key.split(":").map((s) => (s ? s.split(",") as ValType[] : []));
        o.push(0x60);
        for (const list of [p, r]) {
          uleb(list.length, o);
          for (const t of list) o.push(VALTYPE_CODE[t]);
        }
      }),
      out,
    );
    if (this.#imports.length) {
      section(
        2,
        vec(this.#imports, (imp, o) => {
          name(imp.module, o);
          name(imp.field, o);
          for (const b of imp.desc) o.push(b);
        }),
        out,
      );
    }
    section(
      3,
      vec(this.#funcs, (d, o) => uleb(this.#typeIndex(d.ref.params, d.ref.results), o)),
      out,
    );
    const exported = this.#funcs.filter((d) => d.exported);
    section(
      7,
      vec(exported, (d, o) => {
        name(d.ref.name, o);
        o.push(0x00);
        uleb(d.ref.index, o);
      }),
      out,
    );
    section(
      10,
      vec(bodies, (b, o) => {
        uleb(b.length, o);
        for (const x of b) o.push(x);
      }),
      out,
    );
    // Custom "name" section, function names (subsection 1): V8 puts them in errors and traces.
    const names = [...this.#importedFuncs, ...this.#funcs.map((d) => d.ref)];
    const sub = vec(names, (r, o) => {
      uleb(r.index, o);
      name(r.name, o);
    });
    const custom: number[] = [];
    name("name", custom);
    custom.push(1);
    uleb(sub.length, custom);
    for (const b of sub) custom.push(b);
    section(0, custom, out);
    return new Uint8Array(out);
  }
}
