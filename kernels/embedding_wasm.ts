// Embedding lookup and its scatter-add backward on the wasm backend (embedding.ts's kernels),
// f32 tables [V, C] row-major, ids i32.
// Forward: the ids are claimed in chunks by the threads (wasm_launch.ts's runItems); each copies
// its rows of C
// floats in f32x4 vectors (a partial last vector). Ids outside the launch's table rows
// [start, start + rows) are skipped, as in the CPU reference; ids outside [0, V) throw its
// RangeError (checked on the calling thread before the launch).
// Backward: dW[v] = Σ_{k: ids[k] = start + v} dy[k] over the pass's ids [k0, k1). Threads claim
// the channels (whole f32x4 units of C), not the ids: each walks all ids in order and adds its
// channels of dy[k] into row ids[k], so every element is summed in position order, as in the
// CPU loop, whatever the thread count, and a frequent id (a space in text) loads no thread more
// than another. The first pass zeroes its channels first.
// Limits: memory. At the baby GPT's 768 ids × C = 128 each takes ~13-15 µs on one thread (the
// CPU reference on the heap ~180-210);
// the id check reads N i32 on the calling thread. With C < 8 there is one unit per 4 channels,
// so one thread works.

import type { WasmArg, WasmContext } from "../engine/wasm/context.ts";
import type { ModuleBuilder } from "../engine/wasm/builder.ts";
import { fmtShape } from "../engine/errors.ts";
import { RowGen } from "./rows/wasm_math.ts";
import { addr, runItems } from "./rows/wasm_launch.ts";

const I32 = (n: number) => Array<"i32">(n).fill("i32");

/**
 * forward(tid, n, N, chunk, claim, C, w, ids, out, start, rows): out[k] = w[ids[k] − start]
 * where in range.
 */
function forward(b: ModuleBuilder): void {
  b.export("forward", I32(11), [], (f) => {
    const [, , N, chunk, claim, C, w, ids, out, start, rows] = f.params;
    const g = new RowGen(f, false);
    const [v, src, dst] = [f.local("i32"), f.local("i32"), f.local("i32")];
    g.eachRow(N, chunk, claim, (k) => {
      f.set(v, () => f.sub(() => (f.add(ids, () => f.mul(k, 4)), f.i32.load()), start));
      f.get(v);
      f.get(rows);
      f.i32.ltU();
      f.if();
      g.rowBase(src, w, v, C);
      g.rowBase(dst, out, k, C);
      g.row(C, (o, tail) => {
        g.load(src, o, tail);
        g.store(dst, o, tail);
      });
      f.end();
    });
  });
}

/**
 * backward(tid, n, units, chunk, claim, C, k0, k1, start, rows, dy, ids, dw, accumulate): the
 * claimed channels [4·u0, min(C, 4·u1)) of dW, each over all ids in order.
 */
function backward(b: ModuleBuilder): void {
  b.export("backward", I32(14), [], (f) => {
    const [, , units, chunk, claim, C, k0, k1, start, rows, dy, ids, dw, accumulate] = f.params;
    const g = new RowGen(f, false);
    const [c0, cols, r, k, v, src, dst] = Array.from({ length: 7 }, () => f.local("i32"));
    g.eachChunk(units, chunk, claim, (u0, u1) => {
      f.set(c0, () => f.mul(u0, 16)); // bytes
      f.set(cols, () => f.sub(() => f.min(C, () => f.mul(u1, 4)), () => f.mul(u0, 4)));
      f.get(accumulate);
      f.i32.eqz();
      f.if();
      f.for(r, 0, rows, 1, () => {
        f.set(dst, () => f.add(() => f.add(dw, c0), () => f.mul(() => f.mul(r, C), 4)));
        g.row(cols, (o, tail) => {
          g.splat(0);
          g.store(dst, o, tail);
        });
      });
      f.end();
      f.for(k, k0, k1, 1, () => {
        f.set(v, () => f.sub(() => (f.add(ids, () => f.mul(k, 4)), f.i32.load()), start));
        f.get(v);
        f.get(rows);
        f.i32.ltU();
        f.if();
        f.set(src, () => f.add(() => f.add(dy, c0), () => f.mul(() => f.mul(k, C), 4)));
        f.set(dst, () => f.add(() => f.add(dw, c0), () => f.mul(() => f.mul(v, C), 4)));
        g.row(cols, (o, tail) => {
          g.load(dst, o, tail);
          g.load(src, o, tail);
          f.f32x4.add();
          g.store(dst, o, tail);
        });
        f.end();
      });
    });
  });
}

/** The embedding module: its cache key and builder. */
export function embeddingModule(): [string, (b: ModuleBuilder) => void] {
  return ["embedding", (b) => {
    forward(b);
    backward(b);
  }];
}

/** The embedding kernels' parameters (embedding.ts's EmbeddingParams). */
interface Params {
  V: number;
  C: number;
  start?: number;
  rows?: number;
}

/** The wasm implementation of `embedding`: out [N, C] from weight [rows, C] and ids [N]. */
export function embeddingWasm([w, ids]: WasmArg[], [out]: WasmArg[], p: Params, ctx: WasmContext) {
  const N = ids.shape.reduce((a, b) => a * b, 1);
  const { V, C, start = 0, rows = V } = p;
  const id = ctx.heap.i32(addr(ids), N);
  for (let k = 0; k < N; k++) {
    if (id[k] < 0 || id[k] >= V) {
      throw new RangeError(
        `embedding: id ${id[k]} at position ${k} is out of range [0, ${V}) for weight ` +
          `${fmtShape([V, C])}`,
      );
    }
  }
  if (N === 0 || C === 0) return;
  const args = [C, addr(w), addr(ids), addr(out), start, rows];
  runItems(ctx, ctx.module(...embeddingModule()), "forward", N, 0.15 * N * C, args);
}

/** The backward's parameters (embedding.ts's EmbeddingRowsParams & EmbeddingPass). */
interface GradParams {
  start: number;
  rows: number;
  C: number;
  k0: number;
  k1: number;
  accumulate: boolean;
}

/** The wasm implementation of `embedding_backward`: dW rows from dy [N, C] and ids [N]. */
export function embeddingBackwardWasm(
  [dy, ids]: WasmArg[],
  [dw]: WasmArg[],
  p: GradParams,
  ctx: WasmContext,
): void {
  if (p.C === 0 || p.rows === 0) return;
  const units = Math.ceil(p.C / 4);
  const ns = 0.15 * ((p.k1 - p.k0) * p.C + (p.accumulate ? 0 : p.rows * p.C));
  const args = [
    ...[p.C, p.k0, p.k1, p.start, p.rows],
    ...[addr(dy), addr(ids), addr(dw), p.accumulate ? 1 : 0],
  ];
  runItems(ctx, ctx.module(...embeddingModule()), "backward", units, ns, args);
}
