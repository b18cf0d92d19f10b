// A small WebAssembly module builder: kernels are generated at run time from TypeScript, with no
// toolchain and no committed binaries. It writes the binary format of the core spec
// (https://webassembly.github.io/spec/core/binary/) plus SIMD128, relaxed SIMD and threads:
// types, imports (a shared memory, functions), functions with locals, structured control flow
// with labels as objects (br computes the depth), and the instructions of ops.ts as typed
// methods (`f.i32.add()`, `f.f32x4.relaxedMadd()`, `f.v128.load(16)`). The bytes it emits are
// checked by WebAssembly.validate/compile; V8's messages name the function (a name section
// is emitted) and the byte offset. Idea from ekzhang/jax-js `wasmblr.ts`, written afresh.

import { type FuncRef, FunctionBuilder } from "./function.ts";
import { name, section, uleb, type ValType, VALTYPE_CODE, vec } from "./encoding.ts";

export { FunctionBuilder } from "./function.ts";
export type { FuncRef, I32Expr, Label, Local } from "./function.ts";
export { sleb, uleb } from "./encoding.ts";
export type { ValType } from "./encoding.ts";

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
