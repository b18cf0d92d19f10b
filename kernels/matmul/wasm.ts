// Matmul on the wasm backend: C[b] = A[b] · B[b], A [batch, M, K] and B [batch, K, N] read
// through any strides (row- or column-major, i.e. transposed views, batch stride 0 for a
// broadcast operand), C [batch, M, N] row-major, f32 throughout.
//
// Blocking (GotoBLAS/BLIS order): C is cut into MC×NC tiles; for each k block of KC, a
// register-blocked microkernel (wasm_micro.ts) computes MR × NR = 6 × 8 of C at a time: per k
// it loads 2 vectors of B, splats each of the 6 values of A and does 12 f32x4 multiply-adds
// (relaxed_madd where the runtime has it) into accumulators that stay in registers for the
// k block. The first k block stores C, later ones add to it; rows past M use a microkernel of
// fewer rows, columns past N a small tile that is then copied. Operands are packed (B panels
// of KC × NC in strips of NR columns, A blocks of MC × KC in strips of MR rows, both k-major)
// or read in place (matmulModes): a row-major A always (packing it costs ~8/N of the product,
// a third of attention's 64 × 64 · 64 × 32), a column-major A when its k step is at most 512
// bytes (attention's Aᵀ·B), a row-major B when M <= 128 and its k step at most 1 KiB; every
// mode sums each element in the same order, so they give the same bytes. One export per pair
// of modes. M = 1 (the decode step) goes to the matrix-vector kernels of wasm_gemv.ts.
//
// Threads: the (batch, NC column tile, MC row tile) items are claimed one at a time from a
// shared counter (a batch of small products, attention's 48 heads, in one fork/join), so a
// thread the OS deschedules delays the join by one item at most; a thread packs a column
// tile's B (every k block) once for the items of it that it takes. Every element of C is
// summed in the same order (KC blocks in order, k in order within them) whatever the tile
// sizes and thread count, so results do not depend on either. KC is fixed; MC and NC are
// chosen per call (plan) to give each thread several items. Products under SERIAL_FLOPS run
// on one thread.
//
// Limits: compute. The microkernel is bound by the two 128-bit FMA pipes of a core: alone on
// L1-resident panels it runs at 97% of the measured peak (tests/bench/wasm_matmul_bench.ts:
// 61-68 GFLOP/s a core on this Zen 5, depending on the machine's load); whole products reach
// 90-96% on one thread, the baby GPT's products included (attention's batched ones rose from
// 66-75% to 90-94% by reading A in place), and on two threads up to 1.8x when the second core
// is free. Small products pay relatively more for packing and the fork/join (1-2 µs hot,
// 30-50 µs from a blocked worker). V8 exposes 16 xmm registers, which caps the register block
// at 6 × 8 (12 accumulators + 2 B vectors + 1 splat; 4×12 and 3×16 spill).

import type { WasmArg, WasmContext } from "../../engine/wasm/context.ts";
import type { WasmFeatures } from "../../engine/wasm/features.ts";
import type { FuncRef, FunctionBuilder, Local, ModuleBuilder } from "../../engine/wasm/builder.ts";
import { type AMode, type BMode, copyEdge, micro, MR, NR, packA, packB } from "./wasm_micro.ts";
import { GEMV_COLUMNS, type GemvForm, gemvModule } from "./wasm_gemv.ts";
import { runItems } from "../rows/wasm_launch.ts";

export { MR, NR };
export type { AMode, BMode };

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

/** k per cache block: fixed, so the summation order never depends on the plan. */
export const KC = 256;
/** Largest row tile (an A block of MC × KC floats stays in L2). */
const MC_MAX = 144;
/** Largest column tile (a B panel of KC × NC floats, 1 MiB). */
const NC_MAX = 1024;
/** Most floats of packed B a thread keeps (every k block of its column tile): 8 MiB. */
const B_FLOATS = 1 << 21;
/** Fewer multiply-adds than this run on one thread (a fork/join would cost more). */
const SERIAL_FLOPS = 1 << 17;
/**
 * Matrix-vector products (M = 1) of fewer multiply-adds run on one thread: below ~1 MiB of
 * B a pass takes a few µs (the baby GPT's 128 × 384 weight ~5 µs), as long as a fork/join
 * with a worker that has to be woken.
 */
const GEMV_SERIAL_MACS = 1 << 18;

const DRIVER_PARAMS = [
  ...["tid", "n", "batch", "M", "N", "K"],
  ...["a", "aSb", "aSr", "aSc", "b", "bSb", "bSr", "bSc", "c"], // strides in bytes
  ...["tilesM", "tilesN", "scratch", "perThread", "aOff", "tileOff", "claim"],
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

/** Call micro{mr}(...) of one mode pair for the runtime value of mr (an if-chain). */
function callMicro(f: FunctionBuilder, micros: FuncRef[], mr: Local, args: () => void) {
  for (let m = MR; m >= 1; m--) {
    if (m > 1) (f.get(mr), f.i32.const(m), f.i32.eq(), f.if());
    args();
    f.call(micros[m - 1]);
    if (m > 1) f.else();
  }
  for (let m = MR; m > 1; m--) f.end();
}

/** The microkernels of one mode pair, for mr = 1..MR. */
type Micros = FuncRef[];

/**
 * Export `matmul_{am}_{bm}`, the driver for one pair of operand modes (see the header and
 * wasm_micro.ts). Threads claim items (batch, column tile, row tile) one at a time from the
 * counter at `claim`; on a thread's first item of a (batch, column tile) group it packs that
 * group's B for every k block (with B "rows", only the partial last strip of each block, the
 * full strips being read from B itself), kept in its scratch while its items stay in the group.
 */
function driver(
  b: ModuleBuilder,
  am: AMode,
  bm: BMode,
  micros: (am: AMode, bm: BMode) => Micros,
  [pA, pB, edge]: FuncRef[],
): void {
  b.export(`matmul_${am}_${bm}`, DRIVER_PARAMS.map(() => "i32"), [], (f) => {
    const P = Object.fromEntries(DRIVER_PARAMS.map((k, i) => [k, f.params[i]])) as Params;
    const locals = (n: number) => Array.from({ length: n }, () => f.local("i32"));
    const [total, item, g, lastG, pc, kc, sm, sn, jr, ir, mr, cp, ldc, ncPad] = locals(14);
    const [aB, bB, cB, bufA, bufB, tile, pa, lda, pb, edgeJ, panel] = locals(11);
    const [j0, nc, i0, mc] = locals(4);
    f.set(sm, () => (f.add(P.M, MR - 1), f.i32.const(MR), f.i32.divU()));
    f.set(sn, () => (f.add(P.N, NR - 1), f.i32.const(NR), f.i32.divU()));
    f.set(total, () => f.mul(P.batch, () => f.mul(P.tilesM, P.tilesN)));
    f.set(bufB, () => f.add(P.scratch, () => f.mul(P.tid, P.perThread)));
    f.set(bufA, () => f.add(bufB, P.aOff));
    f.set(tile, () => f.add(bufB, P.tileOff));
    f.set(ldc, () => f.mul(P.N, 4));
    f.set(lastG, -1);
    const items = f.block();
    const nextItem = f.loop();
    f.get(P.claim);
    f.i32.const(1);
    f.i32.atomic.rmwAdd();
    f.tee(item);
    f.get(total);
    f.i32.geU();
    f.brIf(items);
    // g = (batch index, column tile); row tiles are the fastest-varying part of the item.
    f.set(g, () => (f.get(item), f.get(P.tilesM), f.i32.divU()));
    f.get(g);
    f.get(lastG);
    f.i32.ne();
    f.if();
    f.set(lastG, g);
    const bi = () => (f.get(g), f.get(P.tilesN), f.i32.divU());
    tileSpan(f, [j0, nc], () => (f.get(g), f.get(P.tilesN), f.i32.remU()), P.tilesN, sn, NR, P.N);
    f.set(aB, () => f.add(P.a, () => f.mul(bi, P.aSb)));
    f.set(bB, () => f.add(() => f.add(P.b, () => f.mul(bi, P.bSb)), () => f.mul(j0, P.bSc)));
    f.set(
      cB,
      () => f.add(() => f.add(P.c, () => f.mul(bi, () => f.mul(P.M, ldc))), () => f.mul(j0, 4)),
    );
    f.set(ncPad, () => (f.add(nc, NR - 1), f.i32.const(-NR), f.i32.and()));
    // Direct B: the first column of the partial last strip (nc rounded down to NR).
    f.set(edgeJ, () => (f.get(nc), f.i32.const(-NR), f.i32.and()));
    f.for(pc, 0, P.K, KC, () => {
      f.set(kc, () => f.min(KC, () => f.sub(P.K, pc)));
      if (bm === "packed") {
        // Panel pc / KC at bufB + pc·ncPad floats.
        f.add(bB, () => f.mul(pc, P.bSr));
        [P.bSr, P.bSc, kc, nc].forEach((x) => f.get(x));
        f.add(bufB, () => f.mul(() => f.mul(pc, ncPad), 4));
        f.call(pB);
      } else {
        // The edge strip of block pc / KC at bufB + pc·NR floats.
        f.get(edgeJ);
        f.get(nc);
        f.i32.ltS();
        f.if();
        f.add(() => f.add(bB, () => f.mul(pc, P.bSr)), () => f.mul(edgeJ, P.bSc));
        f.get(P.bSr);
        f.get(P.bSc);
        f.get(kc);
        f.sub(nc, edgeJ);
        f.add(bufB, () => f.mul(() => f.mul(pc, NR), 4));
        f.call(pB);
        f.end();
      }
    });
    f.end();
    tileSpan(
      f,
      [i0, mc],
      () => (f.get(item), f.get(P.tilesM), f.i32.remU()),
      P.tilesM,
      sm,
      MR,
      P.M,
    );
    f.set(lda, am === "rows" ? P.aSr : am === "cols" ? P.aSc : 0);
    f.for(pc, 0, P.K, KC, () => {
      f.set(kc, () => f.min(KC, () => f.sub(P.K, pc)));
      f.set(
        panel,
        () => f.add(bufB, () => f.mul(() => f.mul(pc, bm === "packed" ? ncPad : NR), 4)),
      );
      if (am === "packed") {
        f.add(() => f.add(aB, () => f.mul(i0, P.aSr)), () => f.mul(pc, P.aSc));
        [P.aSr, P.aSc, mc, kc, bufA].forEach((x) => f.get(x));
        f.call(pA);
      }
      f.for(jr, 0, nc, NR, () => {
        f.for(ir, 0, mc, MR, () => {
          f.set(mr, () => f.min(MR, () => f.sub(mc, ir)));
          f.set(
            cp,
            () => f.add(() => f.add(cB, () => f.mul(() => f.add(i0, ir), ldc)), () => f.mul(jr, 4)),
          );
          if (am === "packed") f.set(pa, () => f.add(bufA, () => f.mul(() => f.mul(ir, kc), 4)));
          else {
            f.set(pa, () =>
              f.add(
                () => f.add(aB, () => f.mul(() => f.add(i0, ir), P.aSr)),
                () => f.mul(pc, P.aSc),
              ));
          }
          const firstBlock = () => (f.get(pc), f.i32.const(0), f.i32.ne());
          const args = (
            pbv: () => void,
            ldb: Local | number,
            c: Local,
            ld: Local | number,
            accumulate: () => void,
          ) =>
          () => {
            f.get(pa);
            f.get(lda);
            pbv();
            [ldb, kc, c, ld].forEach((x) => f.push(x));
            accumulate();
          };
          const packedB = () =>
            bm === "packed" ? f.add(panel, () => f.mul(() => f.mul(jr, kc), 4)) : f.get(panel);
          f.add(jr, NR);
          f.get(nc);
          f.i32.leS();
          f.if();
          if (bm === "packed") {
            callMicro(f, micros(am, "packed"), mr, args(packedB, 0, cp, ldc, firstBlock));
          } else {
            f.set(pb, () => f.add(() => f.add(bB, () => f.mul(pc, P.bSr)), () => f.mul(jr, P.bSc)));
            callMicro(f, micros(am, "rows"), mr, args(() => f.get(pb), P.bSr, cp, ldc, firstBlock));
          }
          f.else();
          // Columns past N: compute the whole strip into `tile`, copy the valid part.
          callMicro(
            f,
            micros(am, "packed"),
            mr,
            args(packedB, 0, tile, 4 * NR, () => f.i32.const(0)),
          );
          [tile, cp, mr].forEach((x) => f.get(x));
          f.sub(nc, jr);
          f.get(ldc);
          firstBlock();
          f.call(edge);
          f.end();
        });
      });
    });
    f.br(nextItem);
    f.end();
    f.end();
  });
}

/** Operand modes with a driver: every A mode with every B mode. */
export const MODES: [AMode, BMode][] = (["packed", "rows", "cols"] as const).flatMap((
  am,
) => (["packed", "rows"] as const).map((bm): [AMode, BMode] => [am, bm]));

/** The module: microkernels, packing, and a driver per operand-mode pair (see the header). */
function buildMatmul(b: ModuleBuilder, relaxed: boolean): void {
  // Declared before any body is emitted (the builder encodes the function list first).
  const all = new Map(
    MODES.map(([am, bm]) => [
      `${am}_${bm}`,
      Array.from({ length: MR }, (_, i) => micro(b, i + 1, relaxed, am, bm)),
    ]),
  );
  const micros = (am: AMode, bm: BMode) => all.get(`${am}_${bm}`)!;
  const helpers = [packA(b), packB(b), copyEdge(b)];
  for (const [am, bm] of MODES) driver(b, am, bm, micros, helpers);
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
  /** Where the microkernel reads A: packed strips, or A itself (row- or column-major). */
  a: AMode;
  /** Where the microkernel reads B: packed strips, or B itself (row-major). */
  b: BMode;
}

/** Element strides of the operands' rows and columns (what decides the modes). */
export interface MatmulLayout {
  /** A's row and column strides. */
  aSr: number;
  aSc: number;
  /** B's row and column strides. */
  bSr: number;
  bSc: number;
}

/**
 * Read a column-major A itself when a step in k is at most this many bytes: the microkernel
 * takes MR values from one cache line per k, and with longer steps the lines of a strip fall
 * into few L1 sets (4 KiB apart: all in one) and thrash (1024³ Aᵀ·B ran at 60% of packed).
 */
const DIRECT_COLS_MAX_STEP = 512;
/** Read a row-major B itself when M is at most this (a packed panel serves M/MR strips)... */
const DIRECT_B_MAX_M = 128;
/** ...and a step in k is at most this many bytes (half of each cache line read is used). */
const DIRECT_B_MAX_STEP = 1024;

let forced: { a?: AMode; b?: BMode } = {};

/** Force the operand modes where the layout allows them (tests, benchmarks); {} restores. */
export function forceMatmulModes(modes: { a?: AMode; b?: BMode }): void {
  forced = modes;
}

/**
 * The operand modes for a layout: a row-major A is always read in place (packing it costs
 * ~8/N of the product: a third of attention's 64 × 64 · 64 × 32), a column-major one when its
 * k step is short; a row-major B when M is small and its k step short.
 */
export function matmulModes({ M }: MatmulDims, l: MatmulLayout): { a: AMode; b: BMode } {
  const aOk: AMode[] = ["packed"];
  if (l.aSc === 1) aOk.push("rows");
  if (l.aSr === 1) aOk.push("cols");
  const bOk: BMode[] = l.bSc === 1 ? ["packed", "rows"] : ["packed"];
  const a = forced.a && aOk.includes(forced.a)
    ? forced.a
    : l.aSc === 1
    ? "rows"
    : l.aSr === 1 && 4 * l.aSc <= DIRECT_COLS_MAX_STEP
    ? "cols"
    : "packed";
  const b = forced.b && bOk.includes(forced.b)
    ? forced.b
    : l.bSc === 1 && M <= DIRECT_B_MAX_M && 4 * l.bSr <= DIRECT_B_MAX_STEP
    ? "rows"
    : "packed";
  return { a, b };
}

/**
 * Tiles of at most MC_MAX × NC_MAX; with several threads, the item count is made a multiple of
 * the thread count (more row tiles, else more column tiles) so the items balance.
 * Tiny products run on one thread.
 */
export function matmulPlan(
  dims: MatmulDims,
  threads: number,
  layout: MatmulLayout = { aSr: dims.K, aSc: 1, bSr: 1, bSc: dims.K },
): MatmulPlan {
  const { batch, M, N, K } = dims;
  const sm = Math.ceil(M / MR);
  const sn = Math.ceil(N / NR);
  // A thread keeps B for all k blocks of its column tile: at most B_FLOATS of it.
  const ncCap = Math.max(NR, Math.floor(B_FLOATS / (Math.ceil(K / KC) * KC) / NR) * NR);
  let tilesM = Math.ceil(M / MC_MAX);
  let tilesN = Math.ceil(N / Math.min(NC_MAX, ncCap));
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
    ...matmulModes(dims, layout),
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
  const [ap, aSb, aSr, aSc] = operand(a);
  const [bp, bSb, bSr, bSc] = operand(b);
  const cp = c.ptr + 4 * c.offset;
  if (M === 1 && ((aSc === 4 && bSr === 4) || bSc === 4)) {
    const form: GemvForm = aSc === 4 && bSr === 4 ? "dot" : "axpy";
    const items = batch * Math.ceil(N / GEMV_COLUMNS[form]);
    const most = batch * N * K < GEMV_SERIAL_MACS ? 1 : Infinity;
    const args = form === "dot"
      ? [N, K, ap, aSb, bp, bSb, bSc, cp]
      : [N, K, ap, aSb, aSc, bp, bSb, bSr, cp];
    const mod = ctx.module(...gemvModule(ctx.features.relaxedSimd));
    runItems(ctx, mod, form, items, Infinity, args, most);
    return;
  }
  const mod = ctx.module(...matmulModule(ctx.features));
  const layout = { aSr: aSr / 4, aSc: aSc / 4, bSr: bSr / 4, bSc: bSc / 4 };
  const plan = matmulPlan(dims, ctx.threads, layout);
  // Per thread: B for every k block (packed panels, or the edge strips), an A block, a tile.
  const blocks = Math.ceil(K / KC);
  const aOff = 4 * blocks * KC * (plan.b === "packed" ? plan.ncMax : NR);
  const tileOff = aOff + 4 * KC * plan.mcMax;
  const perThread = Math.ceil((tileOff + 4 * MR * NR) / 64) * 64;
  const scratch = ctx.scratch(perThread * plan.threads);
  const claim = ctx.scratch(4);
  ctx.heap.i32(claim, 1)[0] = 0;
  ctx.run(mod, `matmul_${plan.a}_${plan.b}`, [
    ...[batch, M, N, K],
    ...[ap, aSb, aSr, aSc],
    ...[bp, bSb, bSr, bSc],
    cp,
    ...[plan.tilesM, plan.tilesN, scratch, perThread, aOff, tileOff, claim],
  ], plan.threads);
}
