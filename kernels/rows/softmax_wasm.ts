// Softmax and log-softmax on the wasm backend, forward and backward, over rows [N, L] (f32,
// row-major). Layout and launch: rows are claimed in chunks by the threads (wasm_launch.ts's
// runItems; one thread below SERIAL_NS of estimated work); a row is walked in f32x4 vectors
// (the last L % 4 floats as a partial vector padded with −inf or 0), so a row's result never
// depends on the thread count. Forward: a max pass, a pass writing e = exp(x − m) and summing
// it, a pass scaling by 1/Σ (log-softmax: the sum pass stores nothing and the last pass writes
// x − m − log Σ). Backward: one dot-product pass and one write pass. exp and log are
// wasm_math.ts's (≤ 1 ulp). Sums run in 4 lane partials, then (l0 + l2) + (l1 + l3).
// Limits: compute, exp's ~16 vector instructions per 4 floats (the x <= 0 form); a row of 64
// fits L1, so the three passes cost about one read from memory. Measured
// (tests/bench/wasm_rows_bench.ts): softmax [3072, 64] (the baby GPT's attention) in 175-240 µs
// on one thread, the CPU reference on the heap 3,400-6,000 µs.

import type { WasmArg, WasmContext } from "../../engine/wasm/context.ts";
import type { ModuleBuilder } from "../../engine/wasm/builder.ts";
import { RowGen } from "./wasm_math.ts";
import { addr, runItems } from "./wasm_launch.ts";
import { rowsOf } from "./rows.ts";

/** Which row function (mirrors softmax.ts's SoftmaxKind). */
type Kind = "softmax" | "log_softmax";

const I32 = (n: number) => Array<"i32">(n).fill("i32");

/** forward(tid, n, rows, chunk, claim, len, x, y) for one kind. */
function forward(b: ModuleBuilder, relaxed: boolean, kind: Kind): void {
  b.export(kind, I32(8), [], (f) => {
    const [, , rows, chunk, claim, len, x, y] = f.params;
    const g = new RowGen(f, relaxed);
    const [xr, yr] = [f.local("i32"), f.local("i32")];
    const [acc, m, c] = [f.local("v128"), f.local("v128"), f.local("v128")];
    g.eachRow(rows, chunk, claim, (r) => {
      g.rowBase(xr, x, r, len);
      g.rowBase(yr, y, r, len);
      g.rowMax(xr, len, acc, m);
      g.splat(0);
      f.set(acc);
      g.row(len, (o, tail) => {
        g.load(xr, o, tail, -Infinity);
        f.get(m);
        f.f32x4.sub();
        g.exp(false);
        if (kind === "softmax") {
          f.set(c);
          f.get(c);
          g.store(yr, o, tail);
          f.get(c);
        }
        f.get(acc);
        f.f32x4.add();
        f.set(acc);
      });
      f.get(acc);
      g.hsum();
      f.f32x4.splat();
      if (kind === "softmax") {
        // c = 1/Σ; y *= c
        f.set(c);
        g.splat(1);
        f.get(c);
        f.f32x4.div();
        f.set(c);
        g.row(len, (o, tail) => {
          g.load(yr, o, tail);
          f.get(c);
          f.f32x4.mul();
          g.store(yr, o, tail);
        });
      } else {
        // y = x − m − log Σ
        g.log();
        f.set(c);
        g.row(len, (o, tail) => {
          g.load(xr, o, tail);
          f.get(m);
          f.f32x4.sub();
          f.get(c);
          f.f32x4.sub();
          g.store(yr, o, tail);
        });
      }
    });
  });
}

/**
 * backward(tid, n, rows, chunk, claim, len, dy, y, dx): softmax c = Σ dy·y, dx = y·(dy − c);
 * log-softmax c = Σ dy, dx = dy − exp(y)·c.
 */
function backward(b: ModuleBuilder, relaxed: boolean, kind: Kind): void {
  b.export(`${kind}_backward`, I32(9), [], (f) => {
    const [, , rows, chunk, claim, len, dy, y, dx] = f.params;
    const g = new RowGen(f, relaxed);
    const [dyr, yr, dxr] = [f.local("i32"), f.local("i32"), f.local("i32")];
    const [acc, c] = [f.local("v128"), f.local("v128")];
    g.eachRow(rows, chunk, claim, (r) => {
      g.rowBase(dyr, dy, r, len);
      g.rowBase(yr, y, r, len);
      g.rowBase(dxr, dx, r, len);
      g.splat(0);
      f.set(acc);
      g.row(len, (o, tail) => {
        f.get(acc);
        g.load(dyr, o, tail);
        if (kind === "softmax") {
          g.load(yr, o, tail);
          f.f32x4.mul();
        }
        f.f32x4.add();
        f.set(acc);
      });
      f.get(acc);
      g.hsum();
      f.f32x4.splat();
      f.set(c);
      g.row(len, (o, tail) => {
        if (kind === "softmax") {
          g.load(yr, o, tail);
          g.load(dyr, o, tail);
          f.get(c);
          f.f32x4.sub();
          f.f32x4.mul();
        } else {
          g.load(dyr, o, tail);
          g.load(yr, o, tail);
          g.exp(false);
          f.get(c);
          f.f32x4.mul();
          f.f32x4.sub();
        }
        g.store(dxr, o, tail);
      });
    });
  });
}

/** The softmax module for a runtime: its cache key and builder. */
export function softmaxModule(relaxed: boolean): [string, (b: ModuleBuilder) => void] {
  return [`softmax|${relaxed ? "relaxed" : "simd"}`, (b) => {
    for (const kind of ["softmax", "log_softmax"] as const) {
      forward(b, relaxed, kind);
      backward(b, relaxed, kind);
    }
  }];
}

/** Measured serial ns per element (one thread): the forward's exp, the backward's one pass. */
const NS_PER_ELEMENT = { forward: 0.9, backward: 0.3 };

/** Run export `fn` over the rows of `shape` with the given argument addresses. */
function launch(ctx: WasmContext, fn: string, shape: readonly number[], args: WasmArg[]): void {
  const [rows, len] = rowsOf(shape);
  if (rows === 0 || len === 0) return;
  const mod = ctx.module(...softmaxModule(ctx.features.relaxedSimd));
  const ns = rows * len * NS_PER_ELEMENT[fn.endsWith("backward") ? "backward" : "forward"];
  runItems(ctx, mod, fn, rows, ns, [len, ...args.map(addr)]);
}

/** The wasm implementation of softmax_forward: y = softmax or log-softmax of x over rows. */
export function softmaxWasm(
  [x]: WasmArg[],
  [y]: WasmArg[],
  { kind }: { kind: Kind },
  ctx: WasmContext,
): void {
  launch(ctx, kind, x.shape, [x, y]);
}

/** The wasm implementation of softmax_backward: dx from dy and the forward's y. */
export function softmaxBackwardWasm(
  [dy, y]: WasmArg[],
  [dx]: WasmArg[],
  { kind }: { kind: Kind },
  ctx: WasmContext,
): void {
  launch(ctx, `${kind}_backward`, dy.shape, [dy, y, dx]);
}
