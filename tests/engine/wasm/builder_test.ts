// The module builder: every instruction of ops.ts validates with its documented signature,
// small modules run (control flow, calls, scalar and SIMD arithmetic, relaxed SIMD), LEB128
// edge cases, and misuse throws at build time.

import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import {
  type FunctionBuilder,
  ModuleBuilder,
  sleb,
  uleb,
  type ValType,
} from "../../../engine/wasm/builder.ts";
import * as ops from "../../../engine/wasm/ops.ts";
import { wasmFeatures } from "../../../engine/wasm/features.ts";

const TYPES: Record<string, ValType> = { i: "i32", l: "i64", f: "f32", d: "f64", v: "v128" };
const features = wasmFeatures();

/** Does `emit` validate inside a function of signature `sig` ("operands:results")? */
function validatesAs(sig: string, emit: (f: FunctionBuilder) => void, shared = false): boolean {
  const [ins, outs] = sig.split(":");
  const m = new ModuleBuilder();
  m.importMemory({ min: 1, max: 1, shared });
  m.export("f", [...ins].map((c) => TYPES[c]), [...outs].map((c) => TYPES[c]), (f) => {
    for (const p of f.params) f.get(p);
    emit(f);
  });
  return WebAssembly.validate(m.bytes());
}

Deno.test("every instruction validates with its signature", () => {
  const bad: string[] = [];
  const plainGroups: Record<string, Record<string, ops.OpSpec>> = {
    i32: ops.I32_OPS,
    i64: ops.I64_OPS,
    f32: ops.F32_OPS,
    f64: ops.F64_OPS,
    v128: ops.V128_OPS,
    i8x16: ops.I8X16_OPS,
    i16x8: ops.I16X8_OPS,
    i32x4: ops.I32X4_OPS,
    i64x2: ops.I64X2_OPS,
    f32x4: ops.F32X4_OPS,
    f64x2: ops.F64X2_OPS,
  };
  for (const [ns, table] of Object.entries(plainGroups)) {
    for (const [k, [, sig]] of Object.entries(table)) {
      if (k.startsWith("relaxed") && !features.relaxedSimd) continue;
      const ok = validatesAs(sig, (f) => {
        // deno-lint-ignore no-explicit-any
        (f as any)[ns][k]();
      });
      if (!ok) bad.push(`${ns}.${k}`);
    }
  }
  const memGroups: [string, Record<string, ops.MemSpec>][] = [
    ["i32", ops.SCALAR_MEM.i32],
    ["i64", ops.SCALAR_MEM.i64],
    ["f32", ops.SCALAR_MEM.f32],
    ["f64", ops.SCALAR_MEM.f64],
    ["v128", ops.V128_MEM],
  ];
  for (const [ns, table] of memGroups) {
    for (const [k, [, , sig]] of Object.entries(table)) {
      // deno-lint-ignore no-explicit-any
      if (!validatesAs(sig, (f) => (f as any)[ns][k](8))) bad.push(`${ns}.${k}`);
    }
  }
  for (const [k, [, , sig]] of Object.entries(ops.ATOMIC_MEM)) {
    if (!validatesAs(sig, (f) => f.i32.atomic[k as keyof typeof ops.ATOMIC_MEM](), true)) {
      bad.push(`i32.atomic.${k}`);
    }
  }
  for (const [k, [op, , sig]] of Object.entries(ops.LANE_OPS)) {
    if (!validatesAs(sig, (f) => f.emit([0xfd, ...uleb(op), 1]))) bad.push(k);
  }
  deepStrictEqual(bad, []);
});

function instance(build: (m: ModuleBuilder) => void): Record<string, CallableFunction> {
  const m = new ModuleBuilder();
  build(m);
  const mod = new WebAssembly.Module(m.bytes());
  return new WebAssembly.Instance(mod).exports as Record<string, CallableFunction>;
}

Deno.test("control flow, locals and calls between functions", () => {
  const ex = instance((m) => {
    // Declared before `square`, which it calls.
    m.export("sumSquares", ["i32"], ["i32"], (f) => {
      const [n] = f.params;
      const i = f.local("i32");
      const acc = f.local("i32");
      f.for(i, 0, n, 1, () => {
        f.get(acc);
        f.get(i);
        f.call(square);
        f.i32.add();
        f.set(acc);
      });
      f.get(acc);
    });
    const square = m.func("square", ["i32"], ["i32"], (f) => f.mul(f.params[0], f.params[0]));
    m.export("clamp", ["i32"], ["i32"], (f) => {
      const [x] = f.params;
      f.get(x);
      f.i32.const(10);
      f.i32.gtS();
      f.if("i32");
      f.i32.const(10);
      f.else();
      f.get(x);
      f.end();
    });
    m.export("firstOver", ["i32"], ["i32"], (f) => {
      // Smallest i with i·i > x, with an explicit block/loop/br_if.
      const [x] = f.params;
      const i = f.local("i32");
      const done = f.block();
      const top = f.loop();
      f.mul(i, i);
      f.get(x);
      f.i32.gtS();
      f.brIf(done);
      f.inc(i);
      f.br(top);
      f.end();
      f.end();
      f.get(i);
    });
  });
  strictEqual(ex.sumSquares(4), 0 + 1 + 4 + 9);
  strictEqual(ex.sumSquares(0), 0);
  strictEqual(ex.clamp(3), 3);
  strictEqual(ex.clamp(30), 10);
  strictEqual(ex.firstOver(10), 4);
});

Deno.test("expression helpers: sub, min, mulDiv through i64", () => {
  const ex = instance((m) => {
    m.export("sub", ["i32", "i32"], ["i32"], (f) => f.sub(f.params[0], f.params[1]));
    m.export("min", ["i32", "i32"], ["i32"], (f) => f.min(f.params[0], f.params[1]));
    m.export(
      "mulDiv",
      ["i32", "i32", "i32"],
      ["i32"],
      (f) => f.mulDiv(f.params[0], f.params[1], f.params[2]),
    );
  });
  strictEqual(ex.sub(3, 5), -2);
  strictEqual(ex.min(-3, 5), -3);
  strictEqual(ex.min(7, 5), 5);
  strictEqual(ex.mulDiv(100000, 100000, 7), Math.floor(1e10 / 7));
});

Deno.test("scalar constants and conversions round-trip", () => {
  const ex = instance((m) => {
    m.export("i64", [], ["i64"], (f) => f.i64.const(-(2n ** 62n) + 7n));
    m.export("f32", [], ["f32"], (f) => f.f32.const(0.1));
    m.export("f64", [], ["f64"], (f) => f.f64.const(Math.PI));
    m.export("neg", [], ["i32"], (f) => f.i32.const(-2147483648));
    m.export("toF32", ["i32"], ["f32"], (f) => {
      f.get(f.params[0]);
      f.f32.convertI32S();
    });
  });
  strictEqual(ex.i64(), -(2n ** 62n) + 7n);
  strictEqual(ex.f32(), Math.fround(0.1));
  strictEqual(ex.f64(), Math.PI);
  strictEqual(ex.neg(), -2147483648);
  strictEqual(ex.toF32(16777217), 16777216);
});

Deno.test("SIMD arithmetic on a shared memory", () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 4, shared: true });
  const m = new ModuleBuilder();
  m.importMemory({ min: 1, max: 4, shared: true });
  m.export("axpy", ["i32", "i32", "f32"], [], (f) => {
    // y[0..4] = a·x + y, then its lanes reversed with a shuffle.
    const [x, y, a] = f.params;
    f.get(y);
    f.get(a);
    f.f32x4.splat();
    f.get(x);
    f.v128.load();
    f.f32x4.mul();
    f.get(y);
    f.v128.load();
    f.f32x4.add();
    const v = f.local("v128");
    f.tee(v);
    f.get(v);
    f.i8x16.shuffle([12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3]);
    f.v128.store();
  });
  m.export("dot16", ["i32", "i32"], ["i32"], (f) => {
    // Σ a[i]·b[i] over 8 i16 lanes.
    const [a, b] = f.params;
    f.get(a);
    f.v128.load();
    f.get(b);
    f.v128.load();
    f.i32x4.dotI16x8S();
    const v = f.local("v128");
    f.set(v);
    for (let l = 0; l < 4; l++) {
      f.get(v);
      f.i32x4.extractLane(l);
      if (l) f.i32.add();
    }
  });
  const ex = new WebAssembly.Instance(new WebAssembly.Module(m.bytes()), { env: { memory } })
    .exports as Record<string, CallableFunction>;
  const f32 = new Float32Array(memory.buffer);
  f32.set([1, 2, 3, 4], 0);
  f32.set([10, 20, 30, 40], 4);
  ex.axpy(0, 16, 2);
  deepStrictEqual([...f32.subarray(4, 8)], [48, 36, 24, 12]);
  const i16 = new Int16Array(memory.buffer, 64, 16);
  i16.set([1, -2, 3, -4, 5, -6, 7, -8, 300, 300, 300, 300, -300, -300, -300, -300]);
  strictEqual(ex.dot16(64, 80), 300 * (1 - 2 + 3 - 4) - 300 * (5 - 6 + 7 - 8));
});

Deno.test({
  name: "relaxed SIMD: madd and the i8 × i7 dot product",
  ignore: !features.relaxedSimd,
  fn() {
    const ex = instance((m) => {
      m.export("madd", ["f32", "f32", "f32"], ["f32"], (f) => {
        for (const p of f.params) {
          f.get(p);
          f.f32x4.splat();
        }
        f.f32x4.relaxedMadd();
        f.f32x4.extractLane(3);
      });
      m.export("dot", ["i32", "i32", "i32"], ["i32"], (f) => {
        // Lane 0 of c + Σ_{i<4} a_i·b_i with a = 4 copies of the bytes of `a` (i8), b (i7).
        for (const p of f.params) {
          f.get(p);
          f.i32x4.splat();
        }
        f.i32x4.relaxedDotI8x16I7x16AddS();
        f.i32x4.extractLane(0);
      });
    });
    strictEqual(ex.madd(3, 4, 5), 17);
    const a = (-128 & 0xff) | (127 << 8) | ((-1 & 0xff) << 16) | (5 << 24);
    const b = 2 | (1 << 8) | (0 << 16) | (127 << 24);
    strictEqual(ex.dot(a, b, 1000), 1000 - 256 + 127 + 0 + 635);
  },
});

Deno.test("LEB128 encodings", () => {
  deepStrictEqual(uleb(0), [0]);
  deepStrictEqual(uleb(624485), [0xe5, 0x8e, 0x26]);
  deepStrictEqual(uleb(2 ** 32 - 1), [0xff, 0xff, 0xff, 0xff, 0x0f]);
  deepStrictEqual(sleb(-1), [0x7f]);
  deepStrictEqual(sleb(63), [0x3f]);
  deepStrictEqual(sleb(64), [0xc0, 0x00]);
  deepStrictEqual(sleb(-123456), [0xc0, 0xbb, 0x78]);
  deepStrictEqual(sleb(-(2 ** 31)), [0x80, 0x80, 0x80, 0x80, 0x78]);
  throws(() => uleb(-1), RangeError);
});

Deno.test("misuse throws at build time", () => {
  const build = (body: (f: FunctionBuilder) => void) => {
    const m = new ModuleBuilder();
    m.export("f", [], [], body);
    return () => m.bytes();
  };
  throws(build((f) => f.block()), /unclosed/);
  throws(build((f) => f.end()), /without an open block/);
  throws(build((f) => f.else()), /else outside if/);
  throws(
    build((f) => {
      const l = f.block();
      f.end();
      f.br(l);
    }),
    /not open/,
  );
  throws(build((f) => f.i8x16.shuffle([0])), /shuffle/);
  throws(build((f) => f.f32x4.extractLane(4)), /lane 4/);
  const m = new ModuleBuilder();
  m.func("g", [], [], () => {});
  throws(() => m.importFunc("env", "h", []), /before defining/);
  throws(() => new ModuleBuilder().importMemory({ min: 1, shared: true }), /maximum/);
  ok(WebAssembly.validate(new ModuleBuilder().bytes()));
});
