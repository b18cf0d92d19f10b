// Matmul on the wasm backend: C[b] = A[b] · B[b], A [batch, M, K] and B [batch, K, N] read
// through any strides (row- or column-major, i.e. transposed views, batch stride 0 for a
// broadcast operand), C [batch, M, N] row-major, f32 throughout.
//
// Blocking (GotoBLAS/BLIS order): C is cut into MC×NC tiles; for each k block of KC, the B
// panel (KC × NC) is packed into strips of NR columns (k-major: the NR values of one k are
// contiguous) and each A block (MC × KC) into strips of MR rows (the MR values of one k are
// contiguous); then a register-blocked microkernel computes MR × NR of C: per k it loads NR/4
// vectors of B, splats each of the MR values of A and does MR · NR/4 f32x4 multiply-adds
// (relaxed_madd where the runtime has it, else mul + add) into MR · NR/4 accumulator vectors
// that live in registers for the whole k block. The first k block stores C, later ones add to
// it. Packing zero-pads strips to MR/NR, so the microkernel is always full; rows past M use a
// microkernel of fewer rows, columns past N go through a small tile that is then copied.
//
// Threads: the (batch, NC column tile, MC row tile) items are split into contiguous ranges,
// one per thread; a thread packs the B panel once for its items that share it. Every element
// of C is summed in the same order (KC blocks in order, k in order within them) whatever the
// tile sizes and thread count, so results do not depend on either. KC is fixed; MC and NC are
// chosen per call (plan) to give each thread several items.
//
// Limits: compute. The microkernel is bound by the two 128-bit FMA pipes of a core: alone on
// L1-resident panels it runs at 97% of the measured peak (tests/bench/wasm_matmul_bench.ts:
// about 68 GFLOP/s a core on this Zen 5, 137 on both); whole products reach 90-96% on one
// thread and about 90% on two at 1024³ (each thread packs its own B panel: ~2%; packing in
// all ~3%). Small or skinny products pay relatively more packing and the fork/join (1-2 µs
// hot, 30-50 µs from a blocked worker). V8 exposes 16 xmm registers, which caps the register
// block at MR × NR = 6 × 8 (12 accumulators + 2 B vectors + 1 splat; 4×12 and 3×16 spill).

import type { WasmArg, WasmContext } from "../../engine/wasm/context.ts";
import type { WasmFeatures } from "../../engine/wasm/features.ts";
import type { FuncRef, FunctionBuilder, Local, ModuleBuilder } from "../../engine/wasm/builder.ts";

/** Dims of one launch (structurally kernels/matmul.ts's MatmulParams). */
export interface MatmulDims {
  /** Matrices in the batch. */
  batch: number;
  /** Rows of A and C. */
  M: number;
  /** Columns of B and C. */
  N: number;
  /** Columns of A, rows of B. */
  K: number;
}

/** Register block: MR rows × NR columns of C per microkernel call. */
export const MR = 6;
/** Columns per microkernel (a multiple of 4: f32x4 vectors). */
export const NR = 8;
/** k per cache block: fixed, so the summation order never depends on the plan. */
export const KC = 256;
/** Largest row tile (an A block of MC × KC floats stays in L2). */
const MC_MAX = 144;
/** Largest column tile (a B panel of KC × NC floats, 1 MiB). */
const NC_MAX = 1024;
/** k steps unrolled in the microkernel. */
const UNROLL = 4;
/** Fewer multiply-adds than this run on one thread (a fork/join would cost more). */
const SERIAL_FLOPS = 1 << 17;

const NV = NR / 4;

/** acc = a · b + acc (v128 locals): one fused or unfused multiply-add. */
function madd(f: FunctionBuilder, relaxed: boolean, a: Local, b: Local, acc: Local) {
  f.get(a);
  f.get(b);
  if (relaxed) {
    f.get(acc);
    f.f32x4.relaxedMadd();
  } else {
    f.f32x4.mul();
    f.get(acc);
    f.f32x4.add();
  }
  f.set(acc);
}

/**
 * micro{mr}(pa, pb, kc, c, ldc, accumulate): C[mr × NR] (=|+=) Apanel · Bpanel over kc
 * (kc >= 1). pa: mr·kc floats, k-major with stride MR; pb: kc × NR floats; ldc in bytes.
 */
function micro(b: ModuleBuilder, mr: number, relaxed: boolean) {
  return b.func(`micro${mr}`, ["i32", "i32", "i32", "i32", "i32", "i32"], [], (f) => {
    const [pa, pb, kc, c, ldc, accumulate] = f.params;
    const acc = Array.from({ length: mr * NV }, () => f.local("v128"));
    const bv = Array.from({ length: NV }, () => f.local("v128"));
    const a = f.local("v128");
    const step = (u: number) => {
      for (let v = 0; v < NV; v++) {
        f.get(pb);
        f.v128.load(16 * (u * NV + v));
        f.set(bv[v]);
      }
      for (let r = 0; r < mr; r++) {
        f.get(pa);
        f.v128.load32Splat(4 * (u * MR + r));
        f.set(a);
        for (let v = 0; v < NV; v++) {
          madd(f, relaxed, a, bv[v], acc[r * NV + v]);
        }
      }
    };
    const loop = (unroll: number, count: () => void) =>
      f.repeat(count, () => {
        for (let u = 0; u < unroll; u++) step(u);
        f.inc(pa, 4 * MR * unroll);
        f.inc(pb, 4 * NR * unroll);
      });
    loop(UNROLL, () => (f.get(kc), f.i32.const(Math.log2(UNROLL)), f.i32.shrU()));
    loop(1, () => (f.get(kc), f.i32.const(UNROLL - 1), f.i32.and()));
    // Store (first k block) or add to C, row by row.
    const stores = (add: boolean) => {
      for (let r = 0; r < mr; r++) {
        for (let v = 0; v < NV; v++) {
          f.get(c);
          if (add) {
            f.get(c);
            f.v128.load(16 * v);
          }
          f.get(acc[r * NV + v]);
          if (add) f.f32x4.add();
          f.v128.store(16 * v);
        }
        if (r + 1 < mr) f.inc(c, ldc);
      }
    };
    f.get(accumulate);
    f.if();
    stores(true);
    f.else();
    stores(false);
    f.end();
  });
}

/** Copy n f32 from p (stride sp bytes) to d (stride sd bytes), or zeros when p is null. */
function copyRun(f: FunctionBuilder, p: Local | null, sp: Local, d: Local, sd: number, n: Local) {
  const k = f.local("i32");
  f.for(k, 0, n, 1, () => {
    f.get(d);
    if (p === null) f.f32.const(0);
    else {
      f.get(p);
      f.f32.load();
      f.inc(p, sp);
    }
    f.f32.store();
    f.inc(d, sd);
  });
}

/**
 * packA(src, sr, sc, rows, kc, dst): A[rows × kc] (byte strides sr, sc) into strips of MR rows,
 * k-major within a strip (dst[s][k][r]); rows past `rows` are zeros. A full strip walks its MR
 * rows together (one pointer each), a load and a store per element.
 */
function packA(b: ModuleBuilder) {
  return b.func("packA", ["i32", "i32", "i32", "i32", "i32", "i32"], [], (f) => {
    const [src, sr, sc, rows, kc, dst] = f.params;
    const [i, d, k, row, out] = [0, 1, 2, 3, 4].map(() => f.local("i32"));
    const rowPtr = Array.from({ length: MR }, () => f.local("i32"));
    f.for(i, 0, rows, MR, () => {
      // Strip i / MR starts at float i·kc.
      f.set(d, () => f.add(dst, () => f.mul(() => f.mul(i, kc), 4)));
      f.add(i, MR);
      f.get(rows);
      f.i32.leS();
      f.if();
      rowPtr.forEach((q, r) => f.set(q, () => f.add(src, () => f.mul(() => f.add(i, r), sr))));
      f.for(k, 0, kc, 1, () => {
        rowPtr.forEach((q, r) => {
          f.get(d);
          f.get(q);
          f.f32.load();
          f.f32.store(4 * r);
          f.inc(q, sc);
        });
        f.inc(d, 4 * MR);
      });
      f.else();
      // The last, partial strip: row by row, zeros past `rows`.
      for (let r = 0; r < MR; r++) {
        f.set(out, () => f.add(d, 4 * r));
        f.add(i, r);
        f.get(rows);
        f.i32.ltS();
        f.if();
        f.set(row, () => f.add(src, () => f.mul(() => f.add(i, r), sr)));
        copyRun(f, row, sc, out, 4 * MR, kc);
        f.else();
        copyRun(f, null, sc, out, 4 * MR, kc);
        f.end();
      }
      f.end();
    });
  });
}

/**
 * packB(src, sr, sc, kc, cols, dst): B[kc × cols] (byte strides sr, sc) into strips of NR
 * columns, k-major (dst[s][k][c]); columns past `cols` are zeros. Full strips of a row-major B
 * copy NR/4 vectors per k.
 */
function packB(b: ModuleBuilder) {
  return b.func("packB", ["i32", "i32", "i32", "i32", "i32", "i32"], [], (f) => {
    const [src, sr, sc, kc, cols, dst] = f.params;
    const [j, k, p, d, d0] = [0, 1, 2, 3, 4].map(() => f.local("i32"));
    f.for(j, 0, cols, NR, () => {
      f.set(d0, () => f.add(dst, () => f.mul(() => f.mul(j, kc), 4)));
      f.get(sc);
      f.i32.const(4);
      f.i32.eq();
      f.add(j, NR);
      f.get(cols);
      f.i32.leS();
      f.i32.and();
      f.if();
      f.set(p, () => f.add(src, () => f.mul(j, 4)));
      f.set(d, d0);
      f.for(k, 0, kc, 1, () => {
        for (let v = 0; v < NV; v++) {
          f.get(d);
          f.get(p);
          f.v128.load(16 * v, 2);
          f.v128.store(16 * v);
        }
        f.inc(p, sr);
        f.inc(d, 4 * NR);
      });
      f.else();
      for (let c = 0; c < NR; c++) {
        f.set(d, () => f.add(d0, 4 * c));
        f.add(j, c);
        f.get(cols);
        f.i32.ltS();
        f.if();
        f.set(p, () => f.add(src, () => f.mul(() => f.add(j, c), sc)));
        copyRun(f, p, sr, d, 4 * NR, kc);
        f.else();
        copyRun(f, null, sr, d, 4 * NR, kc);
        f.end();
      }
      f.end();
    });
  });
}

/** copyEdge(tile, c, rows, cols, ldc, accumulate): C[rows × cols] (=|+=) tile (row stride NR). */
function copyEdge(b: ModuleBuilder) {
  return b.func("copyEdge", ["i32", "i32", "i32", "i32", "i32", "i32"], [], (f) => {
    const [tile, c, rows, cols, ldc, accumulate] = f.params;
    const [r, j, dst] = [0, 1, 2].map(() => f.local("i32"));
    const v = f.local("f32");
    f.for(r, 0, rows, 1, () => {
      f.for(j, 0, cols, 1, () => {
        f.set(dst, () => f.add(() => f.add(c, () => f.mul(r, ldc)), () => f.mul(j, 4)));
        f.add(tile, () => f.mul(() => f.add(() => f.mul(r, NR), j), 4));
        f.f32.load();
        f.set(v);
        f.get(accumulate);
        f.if();
        f.get(dst);
        f.f32.load();
        f.get(v);
        f.f32.add();
        f.set(v);
        f.end();
        f.get(dst);
        f.get(v);
        f.f32.store();
      });
    });
  });
}

const DRIVER_PARAMS = [
  ...["tid", "n", "batch", "M", "N", "K"],
  ...["a", "aSb", "aSr", "aSc", "b", "bSb", "bSr", "bSc", "c"], // strides in bytes
  ...["tilesM", "tilesN", "scratch", "perThread", "aOff", "tileOff"],
] as const;
type Params = Record<(typeof DRIVER_PARAMS)[number], Local>;

/**
 * start = w·floor(strips·t / tiles), size = min(dim, w·floor(strips·(t+1) / tiles)) − start:
 * tile t of `tiles` over a dim of `strips` strips of w (tiles differ by at most one strip).
 */
function tileSpan(
  f: FunctionBuilder,
  [start, size]: Local[],
  t: () => void,
  tiles: Local,
  strips: Local,
  w: number,
  dim: Local,
) {
  f.set(start, () => f.mul(() => f.mulDiv(strips, t, tiles), w));
  const end = () =>
    f.mul(() => f.mulDiv(strips, () => (t(), f.i32.const(1), f.i32.add()), tiles), w);
  f.set(size, () => f.sub(() => f.min(dim, end), start));
}

/** Call micro{mr}(pa, pb, kc, c, ldc, accumulate) for the runtime value of mr (an if-chain). */
function callMicro(f: FunctionBuilder, micros: FuncRef[], mr: Local, args: () => void) {
  for (let m = MR; m >= 1; m--) {
    if (m > 1) (f.get(mr), f.i32.const(m), f.i32.eq(), f.if());
    args();
    f.call(micros[m - 1]);
    if (m > 1) f.else();
  }
  for (let m = MR; m > 1; m--) f.end();
}

/** The module: microkernels, packing, and the exported driver `matmul` (see the header). */
function buildMatmul(b: ModuleBuilder, relaxed: boolean): void {
  const micros = Array.from({ length: MR }, (_, i) => micro(b, i + 1, relaxed));
  const [pA, pB, edge] = [packA(b), packB(b), copyEdge(b)];
  b.export("matmul", DRIVER_PARAMS.map(() => "i32"), [], (f) => {
    const P = Object.fromEntries(DRIVER_PARAMS.map((k, i) => [k, f.params[i]])) as Params;
    const locals = (n: number) => Array.from({ length: n }, () => f.local("i32"));
    const [hi, item, end, g, pc, kc, it, sm, sn, jr, ir, mr, cp, ldc] = locals(14);
    const [aB, bB, cB, bufA, bufB, tile] = locals(6);
    const [j0, nc, i0, mc] = locals(4);
    f.set(sm, () => (f.add(P.M, MR - 1), f.i32.const(MR), f.i32.divU()));
    f.set(sn, () => (f.add(P.N, NR - 1), f.i32.const(NR), f.i32.divU()));
    // This thread's items [item, hi) of batch · tilesN · tilesM, row tiles fastest.
    const total = () => f.mul(P.batch, () => f.mul(P.tilesM, P.tilesN));
    f.set(item, () => f.mulDiv(total, P.tid, P.n));
    f.set(hi, () => f.mulDiv(total, () => f.add(P.tid, 1), P.n));
    f.set(bufB, () => f.add(P.scratch, () => f.mul(P.tid, P.perThread)));
    f.set(bufA, () => f.add(bufB, P.aOff));
    f.set(tile, () => f.add(bufB, P.tileOff));
    f.set(ldc, () => f.mul(P.N, 4));
    const groups = f.block();
    const nextGroup = f.loop();
    f.get(item);
    f.get(hi);
    f.i32.geS();
    f.brIf(groups);
    // Items item..end share g = (batch index, column tile): one B panel per k block.
    f.set(g, () => (f.get(item), f.get(P.tilesM), f.i32.divU()));
    f.set(end, () => f.min(hi, () => f.mul(() => f.add(g, 1), P.tilesM)));
    const bi = () => (f.get(g), f.get(P.tilesN), f.i32.divU());
    tileSpan(f, [j0, nc], () => (f.get(g), f.get(P.tilesN), f.i32.remU()), P.tilesN, sn, NR, P.N);
    f.set(aB, () => f.add(P.a, () => f.mul(bi, P.aSb)));
    f.set(bB, () => f.add(() => f.add(P.b, () => f.mul(bi, P.bSb)), () => f.mul(j0, P.bSc)));
    f.set(
      cB,
      () => f.add(() => f.add(P.c, () => f.mul(bi, () => f.mul(P.M, ldc))), () => f.mul(j0, 4)),
    );
    f.for(pc, 0, P.K, KC, () => {
      f.set(kc, () => f.min(KC, () => f.sub(P.K, pc)));
      f.add(bB, () => f.mul(pc, P.bSr));
      [P.bSr, P.bSc, kc, nc, bufB].forEach((x) => f.get(x));
      f.call(pB);
      f.for(it, item, end, 1, () => {
        tileSpan(
          f,
          [i0, mc],
          () => (f.get(it), f.get(P.tilesM), f.i32.remU()),
          P.tilesM,
          sm,
          MR,
          P.M,
        );
        f.add(() => f.add(aB, () => f.mul(i0, P.aSr)), () => f.mul(pc, P.aSc));
        [P.aSr, P.aSc, mc, kc, bufA].forEach((x) => f.get(x));
        f.call(pA);
        f.for(jr, 0, nc, NR, () => {
          f.for(ir, 0, mc, MR, () => {
            f.set(mr, () => f.min(MR, () => f.sub(mc, ir)));
            f.set(
              cp,
              () =>
                f.add(() => f.add(cB, () => f.mul(() => f.add(i0, ir), ldc)), () => f.mul(jr, 4)),
            );
            const firstBlock = () => (f.get(pc), f.i32.const(0), f.i32.ne());
            const args = (c: Local, ld: Local | number, accumulate: () => void) => () => {
              f.add(bufA, () => f.mul(() => f.mul(ir, kc), 4));
              f.add(bufB, () => f.mul(() => f.mul(jr, kc), 4));
              [kc, c, ld].forEach((x) => f.push(x));
              accumulate();
            };
            f.add(jr, NR);
            f.get(nc);
            f.i32.leS();
            f.if();
            callMicro(f, micros, mr, args(cp, ldc, firstBlock));
            f.else();
            // Columns past N: compute the whole strip into `tile`, copy the valid part.
            callMicro(f, micros, mr, args(tile, 4 * NR, () => f.i32.const(0)));
            [tile, cp, mr].forEach((x) => f.get(x));
            f.sub(nc, jr);
            f.get(ldc);
            firstBlock();
            f.call(edge);
            f.end();
          });
        });
      });
    });
    f.set(item, end);
    f.br(nextGroup);
    f.end();
    f.end();
  });
}

/**
 * The matmul module for a runtime: its cache key and builder, for `ctx.module` or, ahead of
 * first use, `ctx.prepare` (a browser's main thread compiles modules over 4 KB only that way).
 */
export function matmulModule(features: WasmFeatures): [string, (b: ModuleBuilder) => void] {
  const relaxed = features.relaxedSimd;
  return [`matmul|${relaxed ? "relaxed" : "simd"}`, (b) => buildMatmul(b, relaxed)];
}

/** How one product is cut: threads, row and column tiles, and the largest tile's size. */
export interface MatmulPlan {
  /** Threads to ask for. */
  threads: number;
  /** Row tiles per matrix (each a whole number of MR strips, sizes differing by one strip). */
  tilesM: number;
  /** Column tiles per matrix (each a whole number of NR strips). */
  tilesN: number;
  /** Rows of the largest row tile, rounded up to MR. */
  mcMax: number;
  /** Columns of the largest column tile, rounded up to NR. */
  ncMax: number;
}

/**
 * Tiles of at most MC_MAX × NC_MAX; with several threads, the item count is made a multiple of
 * the thread count (more row tiles, else more column tiles) so contiguous ranges balance.
 * Tiny products run on one thread.
 */
export function matmulPlan({ batch, M, N, K }: MatmulDims, threads: number): MatmulPlan {
  const sm = Math.ceil(M / MR);
  const sn = Math.ceil(N / NR);
  let tilesM = Math.ceil(M / MC_MAX);
  let tilesN = Math.ceil(N / NC_MAX);
  if (batch * M * N * K < SERIAL_FLOPS) threads = 1;
  const items = () => batch * tilesM * tilesN;
  if (threads > 1 && items() % threads !== 0 && items() < 8 * threads) {
    const rows = Math.ceil(tilesM / threads) * threads;
    const cols = Math.ceil(tilesN / threads) * threads;
    if (rows <= sm) tilesM = rows;
    else if (cols <= sn) tilesN = cols;
  }
  threads = Math.max(1, Math.min(threads, items()));
  return {
    threads,
    tilesM,
    tilesN,
    mcMax: MR * Math.ceil(sm / tilesM),
    ncMax: NR * Math.ceil(sn / tilesN),
  };
}

/** Byte strides (batch, row, column) and the byte address of element [0, 0, 0]. */
function operand(x: WasmArg): [number, number, number, number] {
  const n = x.shape.length;
  const sb = n > 2 ? x.strides[n - 3] : 0;
  return [x.ptr + 4 * x.offset, 4 * sb, 4 * x.strides[n - 2], 4 * x.strides[n - 1]];
}

/** The wasm implementation of the batched matmul kernel (f32). */
export function matmulWasm(
  [a, b]: WasmArg[],
  [c]: WasmArg[],
  dims: MatmulDims,
  ctx: WasmContext,
): void {
  const { batch, M, N, K } = dims;
  if (a.dtype !== "f32" || b.dtype !== "f32") {
    throw new TypeError(`matmul (wasm): f32 operands only, got ${a.dtype} and ${b.dtype}`);
  }
  if (!ctx.features.simd) throw new Error("matmul (wasm): this runtime lacks WebAssembly SIMD");
  if (K === 0) {
    ctx.heap.f32(c.ptr + 4 * c.offset, batch * M * N).fill(0);
    return;
  }
  const mod = ctx.module(...matmulModule(ctx.features));
  const plan = matmulPlan(dims, ctx.threads);
  const aOff = 4 * KC * plan.ncMax;
  const tileOff = aOff + 4 * KC * plan.mcMax;
  const perThread = Math.ceil((tileOff + 4 * MR * NR) / 64) * 64;
  const scratch = ctx.scratch(perThread * plan.threads);
  ctx.run(mod, "matmul", [
    ...[batch, M, N, K],
    ...operand(a),
    ...operand(b),
    c.ptr + 4 * c.offset,
    ...[plan.tilesM, plan.tilesN, scratch, perThread, aOff, tileOff],
  ], plan.threads);
}
