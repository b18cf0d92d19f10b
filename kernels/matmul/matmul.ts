// Matrix multiply: C[b] = A[b] · B[b] for A [..., M, K], B [..., K, N], batch dims broadcast.
// Operands are read through their strides: a transposed view (`transpose(w)`) is consumed as is,
// so A·Bᵀ and Aᵀ·B (the backward products) need no copies. Each operand's batch dims must fold
// into one batch stride (contiguous, or broadcast with stride 0); otherwise it is copied once.
// CPU: per batch, A is packed row-major and B column-major (both k-contiguous) in float64, then
// 2×4 blocks of C are accumulated in registers over k, in cache blocks of columns and k.
// WebGPU: kernels/matmul/wgsl.ts generates each variant for the operands' layout class (vec4
// loads where rows are aligned, scalar loads otherwise; dims and strides in a uniform block);
// kernels/matmul/tex.ts the texture-staged ones, offered where the device has read-only storage
// textures (the fastest on llvmpipe).
// Shapes with at least TUNE_MIN multiply-adds carry their shape class and the candidate variants
// (see candidatesOf), so the backend's autotuner (engine/webgpu/autotune.ts) times them once per
// class and adapter; smaller ones run DEFAULT_VARIANT. On software adapters a k range longer
// than SOFTWARE_MAX_K is summed in chunks (llvmpipe silently caps an invocation's loops).
// wasm (kernels/matmul/wasm.ts): a GotoBLAS-style 6×8 f32x4 microkernel over packed or in-place
// operands, (batch, column tile, row tile) items claimed by the threads, matrix-vector kernels
// for M = 1 (wasm_gemv.ts); compute bound (90-96% of a core's FMA peak at the model's shapes).

import type {
  ArgInfo,
  CpuArg,
  DeviceTraits,
  LaunchPiece,
  WgslLaunch,
} from "../../engine/backend.ts";
import type { TypedArray } from "../../engine/dtype.ts";
import type { Tensor } from "../../engine/tensor.ts";
import type { TunableLaunch, TuneTrial } from "../../engine/webgpu/autotune.ts";
import { noGrad } from "../../engine/autograd.ts";
import { apply, defineOp, type KernelOp } from "../../engine/op.ts";
import { broadcastShapes, ceilDiv, sizeOf } from "../../engine/shape.ts";
import { fmtShape, ShapeError } from "../../engine/errors.ts";
import { byteSize, wgslType } from "../../engine/dtype.ts";
import { add } from "../elementwise/binary.ts";
import { expand, narrow, reshape, sumTo, transpose } from "../shape/view.ts";
import {
  type AMode,
  type BMode,
  type CMode,
  MATMUL_VARIANTS,
  matmulSource,
  type MatmulVariant,
} from "./wgsl.ts";
import { texKernel, texLaunchParts, texPlan, texturesFit } from "./tex.ts";
import { matmulWasm } from "./wasm.ts";

export { MATMUL_VARIANTS };
export type { MatmulVariant };

/** Dims of one matmul launch, and optionally a variant forced by name (tests, benchmarks). */
export interface MatmulParams {
  /** Number of matrices in the batch. */
  batch: number;
  /** Rows of A and C. */
  M: number;
  /** Columns of B and C. */
  N: number;
  /** Columns of A, rows of B. */
  K: number;
  /** A MATMUL_VARIANTS name to force (default: the autotuned or default one). */
  variant?: string;
}

/** Strides of a matrix operand: per batch, per row, per column (elements), and its offset. */
interface MatLayout {
  sb: number;
  sr: number;
  sc: number;
  off: number;
}

function layoutOf(a: ArgInfo): MatLayout {
  const n = a.shape.length;
  return {
    sb: n > 2 ? a.strides[n - 3] : 0,
    sr: a.strides[n - 2],
    sc: a.strides[n - 1],
    off: a.offset,
  };
}

// ---- CPU reference ----------------------------------------------------------------------------

const NC = 64; // columns of C per cache block (their packed B rows stay in L2)
const KC = 256; // k per cache block

/** Pack one batch of an operand as rows of length `inner`: out[r·inner + i] = x[r, i]. */
function pack(
  x: TypedArray,
  base: number,
  rows: number,
  inner: number,
  sRow: number,
  sInner: number,
  out: Float64Array,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * inner;
    const src = base + r * sRow;
    for (let i = 0; i < inner; i++) out[o + i] = x[src + i * sInner];
  }
}

/** acc[M, N] += A[:, k0:k1] · Bt[:, k0:k1]ᵀ over columns j0..j1, 2×4 register blocks. */
function block(
  A: Float64Array,
  Bt: Float64Array,
  acc: Float64Array,
  M: number,
  N: number,
  K: number,
  j0: number,
  j1: number,
  k0: number,
  k1: number,
): void {
  for (let i = 0; i < M; i += 2) {
    const i1 = Math.min(i + 1, M - 1); // an odd last row is computed twice, written once
    const a0 = i * K, a1 = i1 * K, r0 = i * N, r1 = i1 * N;
    for (let j = j0; j < j1; j += 4) {
      const jb = Math.min(j + 1, j1 - 1),
        jc = Math.min(j + 2, j1 - 1),
        jd = Math.min(j + 3, j1 - 1);
      const b0 = j * K, b1 = jb * K, b2 = jc * K, b3 = jd * K;
      let c00 = acc[r0 + j], c01 = acc[r0 + jb], c02 = acc[r0 + jc], c03 = acc[r0 + jd];
      let c10 = acc[r1 + j], c11 = acc[r1 + jb], c12 = acc[r1 + jc], c13 = acc[r1 + jd];
      for (let k = k0; k < k1; k++) {
        const x0 = A[a0 + k], x1 = A[a1 + k];
        const y0 = Bt[b0 + k], y1 = Bt[b1 + k], y2 = Bt[b2 + k], y3 = Bt[b3 + k];
        c00 += x0 * y0, c01 += x0 * y1, c02 += x0 * y2, c03 += x0 * y3;
        c10 += x1 * y0, c11 += x1 * y1, c12 += x1 * y2, c13 += x1 * y3;
      }
      // Reverse order, so clamped duplicates are overwritten by the true element.
      acc[r1 + jd] = c13, acc[r1 + jc] = c12, acc[r1 + jb] = c11, acc[r1 + j] = c10;
      acc[r0 + jd] = c03, acc[r0 + jc] = c02, acc[r0 + jb] = c01, acc[r0 + j] = c00;
    }
  }
}

/** The CPU reference: float64 accumulation, k summed in order 0..K-1 for every element. */
function matmulCpu(a: CpuArg, b: CpuArg, c: TypedArray, { batch, M, N, K }: MatmulParams) {
  const la = layoutOf(a);
  const lb = layoutOf(b);
  const A = new Float64Array(M * K);
  const Bt = new Float64Array(N * K);
  const acc = new Float64Array(M * N);
  for (let z = 0; z < batch; z++) {
    pack(a.data, la.off + z * la.sb, M, K, la.sr, la.sc, A);
    pack(b.data, lb.off + z * lb.sb, N, K, lb.sc, lb.sr, Bt);
    acc.fill(0);
    for (let j0 = 0; j0 < N; j0 += NC) {
      for (let k0 = 0; k0 < K; k0 += KC) {
        block(A, Bt, acc, M, N, K, j0, Math.min(N, j0 + NC), k0, Math.min(K, k0 + KC));
      }
    }
    c.set(acc, z * M * N);
  }
}

// ---- WebGPU: layout class, uniforms, variants -------------------------------------------------

/** Fewer multiply-adds than this run DEFAULT_VARIANT untuned (timing would cost more). 2M: a
 * baby GPT's projections and attention products (2-13M) ran 1.5-2× faster once tuned. */
export const TUNE_MIN = 1 << 21;
/** The variant of untuned shapes and of shapes not yet tuned (small blocks: quick to compile,
 * many workgroups for small problems). */
export const DEFAULT_VARIANT = "reg4x4";
/** Trial problems for tuning cap each dim at this. */
const TRIAL_DIM = 512;
const MAX_GROUPS = 65535;

const al4 = (...xs: number[]) => xs.every((x) => x % 4 === 0);

/** Operand modes (see wgsl.ts): vec4 along the contiguous axis when it is aligned. */
function modesOf(
  la: MatLayout,
  lb: MatLayout,
  lc: MatLayout,
  p: MatmulParams,
): [AMode, BMode, CMode] {
  const { M, N, K } = p;
  const am: AMode = la.sc === 1 && al4(K, la.sr, la.sb, la.off)
    ? "k4"
    : la.sr === 1 && al4(M, la.sc, la.sb, la.off)
    ? "m4"
    : "s";
  const bm: BMode = lb.sc === 1 && al4(N, lb.sr, lb.sb, lb.off)
    ? "n4"
    : lb.sr === 1 && al4(K, lb.sc, lb.sb, lb.off)
    ? "k4"
    : "s";
  return [am, bm, al4(N, lc.sr, lc.sb, lc.off) ? "n4" : "s"];
}

const sources = new Map<string, string>();

/** The variant that runs for `v`: register blocks over 8×16 run as 8×16 with scalar loads (a
 * big scalar-load kernel compiles for seconds on llvmpipe and is never the fast one). */
function effective(v: MatmulVariant, modes: [AMode, BMode, CMode]): MatmulVariant {
  const scalar = modes[0] === "s" || modes[1] === "s";
  return v.kind === "reg" && v.tm * v.tn > 128 && scalar ? variantNamed("reg8x16") : v;
}

/** Can "tex" variants run this product on `device`? */
function texOk(t: string, p: MatmulParams, la: MatLayout, lb: MatLayout, device: DeviceTraits) {
  return t === "f32" && texturesFit(texPlan(p.batch, p.M, p.N, p.K, la, lb), device?.textures);
}

/** The launch of `v` (WGSL memoized per variant, dtype and modes). */
function launchOf(
  v: MatmulVariant,
  t: string,
  modes: [AMode, BMode, CMode],
  p: MatmulParams,
  la: MatLayout,
  lb: MatLayout,
  lc: MatLayout,
): TunableLaunch {
  v = effective(v, modes);
  const plan = v.kind === "tex" ? texPlan(p.batch, p.M, p.N, p.K, la, lb) : null;
  const key = plan
    ? `${v.name}|${plan.am}${plan.bm}${modes[2]}`
    : `${v.name}|${t}|${modes.join("")}`;
  let source = sources.get(key);
  if (source === undefined) {
    source = plan ? texKernel(v, plan.am, plan.bm, modes[2]) : matmulSource(t, v, ...modes);
    sources.set(key, source);
  }
  const grid: [number, number, number] = [
    ceilDiv(p.N, v.tn * v.wx),
    ceilDiv(p.M, v.tm * v.wy),
    p.batch,
  ];
  if (grid.some((g) => g > MAX_GROUPS)) {
    throw new RangeError(
      `matmul: [${p.batch}, ${p.M}, ${p.K}] · [${p.batch}, ${p.K}, ${p.N}] needs a grid of ` +
        `${fmtShape(grid)} workgroups, over the ${MAX_GROUPS} per dimension WebGPU allows`,
    );
  }
  const label = `matmul[${v.name}]`;
  if (plan) return { source, grid, label, ...texLaunchParts(plan, p.batch, p.M, p.N, p.K, lc) };
  const uniforms = new Uint32Array([
    ...[p.M, p.N, p.K, 0],
    ...[la.off, la.sb, la.sr, la.sc],
    ...[lb.off, lb.sb, lb.sr, lb.sc],
    ...[lc.off, lc.sb, lc.sr, 0],
  ]);
  return { source, grid, uniforms, label };
}

function variantNamed(name: string): MatmulVariant {
  const v = MATMUL_VARIANTS.find((x) => x.name === name);
  if (!v) {
    throw new Error(
      `matmul: unknown variant '${name}'; known: ${MATMUL_VARIANTS.map((x) => x.name).join(", ")}`,
    );
  }
  return v;
}

/** A dim's size class. Dims from TRIAL_DIM up share one class: their trials are the same. */
const bucket = (d: number) => (d < 64 ? "s" : d < 256 ? "m" : d < TRIAL_DIM ? "l" : "x");

/** A trial problem of the same layout class with dims capped at TRIAL_DIM (fresh buffers). */
function trialOf(
  order: MatmulVariant[],
  t: string,
  modes: [AMode, BMode, CMode],
  p: MatmulParams,
  la: MatLayout,
  lb: MatLayout,
): TuneTrial {
  const cap = (d: number) => Math.min(d, TRIAL_DIM);
  const [M, N, K] = [cap(p.M), cap(p.N), cap(p.K)];
  const batch = Math.max(1, Math.min(p.batch, Math.floor(TRIAL_DIM ** 3 / (M * N * K))));
  const q: MatmulParams = { batch, M, N, K };
  // Keep each operand's orientation (row- or column-major) and whether its batch broadcasts.
  const aRowMajor = !(la.sr === 1 && la.sc !== 1);
  const bRowMajor = !(lb.sr === 1 && lb.sc !== 1);
  const ta: MatLayout = aRowMajor
    ? { sb: la.sb === 0 ? 0 : M * K, sr: K, sc: 1, off: 0 }
    : { sb: la.sb === 0 ? 0 : M * K, sr: 1, sc: M, off: 0 };
  const tb: MatLayout = bRowMajor
    ? { sb: lb.sb === 0 ? 0 : K * N, sr: N, sc: 1, off: 0 }
    : { sb: lb.sb === 0 ? 0 : K * N, sr: 1, sc: K, off: 0 };
  const tc: MatLayout = { sb: M * N, sr: N, sc: 1, off: 0 };
  return {
    bindingBytes: [4 * batch * M * K, 4 * batch * K * N, 4 * batch * M * N],
    launch: (i) => launchOf(order[i], t, modes, q, ta, tb, tc),
  };
}

/**
 * The autotuner's candidates, the default first, then MATMUL_VARIANTS order, leaving out those
 * that would run another candidate's kernel (see `effective`), those whose `after` is left out,
 * the texture-staged ones where they cannot run (`tex`: see tex.ts), and on software
 * adapters the workgroup-tiled ones: there invocations run on CPU cores, so workgroup memory is
 * plain memory behind costly barriers (5-10× slower than the register blocks on llvmpipe) and
 * each tiled kernel compiles for seconds.
 */
function candidatesOf(
  modes: [AMode, BMode, CMode],
  tex: boolean,
  device?: DeviceTraits,
): MatmulVariant[] {
  const all = [
    variantNamed(DEFAULT_VARIANT),
    ...MATMUL_VARIANTS.filter((v) => v.name !== DEFAULT_VARIANT),
  ];
  const out: MatmulVariant[] = [];
  for (const v of all) {
    if (device?.isFallback && v.kind === "tile") continue;
    if (!tex && v.kind === "tex") continue;
    if (effective(v, modes) !== v) continue;
    if (v.after && !out.some((w) => w.name === v.after)) continue;
    out.push(v);
  }
  return out;
}

function matmulWgsl(
  [a, b]: ArgInfo[],
  [c]: ArgInfo[],
  p: MatmulParams,
  device: DeviceTraits,
): WgslLaunch {
  const t = wgslType(a.dtype);
  const la = layoutOf(a);
  const lb = layoutOf(b);
  const lc = layoutOf(c);
  const modes = modesOf(la, lb, lc, p);
  const tex = texOk(t, p, la, lb, device);
  if (p.variant) {
    const v = variantNamed(p.variant);
    if (v.kind === "tex" && !tex) {
      throw new Error(
        `matmul: variant ${v.name} needs f32 operands, read-only storage textures and texture ` +
          `sides within the device's limit; [${p.batch}, ${p.M}, ${p.K}] · [${p.K}, ${p.N}] ` +
          `(${t}) on this device has not`,
      );
    }
    return launchOf(v, t, modes, p, la, lb, lc);
  }
  const launch = launchOf(variantNamed(DEFAULT_VARIANT), t, modes, p, la, lb, lc);
  if (p.batch * p.M * p.N * p.K < TUNE_MIN) return launch;
  const order = candidatesOf(modes, tex, device);
  const key = `matmul|${t}|${modes.join("")}|${bucket(p.M)}${bucket(p.N)}${bucket(p.K)}` +
    `|${p.batch > 1 ? "batched" : "single"}${tex ? "|tex" : ""}`;
  launch.tune = {
    key,
    names: order.map((v) => `matmul[${v.name}]`),
    after: order.map((v) => order.findIndex((w) => w.name === v.after)),
    launch: (i) => launchOf(order[i], t, modes, p, la, lb, lc),
    trial: () => trialOf(order, t, modes, p, la, lb),
  };
  return launch;
}

// ---- Launches larger than one binding ---------------------------------------------------------

/** Elements an [n0, n1, n2] block with these strides spans. */
function spanOf(dims: readonly number[], strides: readonly number[]): number {
  if (dims.some((d) => d === 0)) return 0;
  return dims.reduce((s, d, i) => s + (d - 1) * Math.abs(strides[i]), 1);
}

/** A block of a [batch, rows, cols] argument: batches from z0, rows from r0, cols from c0. */
function block3(a: ArgInfo, z0: number, r0: number, c0: number, dims: number[]): ArgInfo {
  const [sb, sr, sc] = a.strides;
  return { ...a, shape: dims, offset: a.offset + z0 * sb + r0 * sr + c0 * sc };
}

/**
 * The split rule (Kernel.split): pieces of whole matrices of the batch while they fit, else one
 * matrix at a time cut into row blocks of A and C (M) and column blocks of B and C (N); C's
 * blocks are written through its strides. Each operand's span over all of K must fit: matmulWith
 * cuts K (summing partial products) before that is needed.
 */
function matmulPieces(
  [a, b]: ArgInfo[],
  [c]: ArgInfo[],
  p: MatmulParams,
  { maxBytes }: { maxBytes: number; align: number },
): LaunchPiece<MatmulParams>[] | null {
  const { batch, M, N, K } = p;
  const max = Math.floor(maxBytes / byteSize(c.dtype));
  const fits = (zb: number, m: number, n: number) =>
    spanOf([zb, m, K], a.strides) <= max && spanOf([zb, K, n], b.strides) <= max &&
    spanOf([zb, m, n], c.strides) <= max;
  const pieces: LaunchPiece<MatmulParams>[] = [];
  const piece = (z0: number, zb: number, r0: number, m: number, c0: number, n: number) =>
    pieces.push({
      inputs: [block3(a, z0, r0, 0, [zb, m, K]), block3(b, z0, 0, c0, [zb, K, n])],
      outputs: [block3(c, z0, r0, c0, [zb, m, n])],
      params: { ...p, batch: zb, M: m, N: n },
    });
  let zb = batch;
  while (zb > 1 && !fits(zb, M, N)) zb = Math.ceil(zb / 2);
  if (fits(zb, M, N)) {
    for (let z0 = 0; z0 < batch; z0 += zb) piece(z0, Math.min(zb, batch - z0), 0, M, 0, N);
    return pieces;
  }
  // One matrix at a time: the most rows, then the most columns, that fit (multiples of 4 where
  // possible, so blocks keep vec4 access).
  const most = (len: number, ok: (n: number) => boolean) => {
    let n = len;
    while (n > 1 && !ok(n)) n = Math.ceil(n / 2);
    return n > 4 ? n - (n % 4) : n;
  };
  const n = most(N, (x) => fits(1, 1, x));
  const m = most(M, (x) => fits(1, x, n));
  if (!fits(1, m, n)) return null;
  for (let z0 = 0; z0 < batch; z0++) {
    for (let r0 = 0; r0 < M; r0 += m) {
      for (let c0 = 0; c0 < N; c0 += n) {
        piece(z0, 1, r0, Math.min(m, M - r0), c0, Math.min(n, N - c0));
      }
    }
  }
  return pieces;
}

/**
 * The longest k range one launch may sum: on devices that cap an invocation's loops,
 * SOFTWARE_MAX_K; and where one row of A or one column of B over all of K would span more than
 * a binding, the most k that fits (the rest of the split is matmulPieces').
 */
function kChunk(a: Tensor, b: Tensor, K: number): number {
  const t = a.backend.traits;
  let k = t.maxLoopIterations < Infinity ? Math.min(K, SOFTWARE_MAX_K) : K;
  const max = Math.floor(t.maxBindingBytes / byteSize(a.dtype));
  const step = Math.max(Math.abs(a.strides[a.ndim - 1]), Math.abs(b.strides[b.ndim - 2]), 1);
  if (spanOf([k], [step]) > max) k = Math.max(1, Math.floor((max - 1) / step) + 1);
  return k;
}

/** The batched matmul kernel over strided operands [batch, M, K] · [batch, K, N]. */
export const matmulOp: KernelOp<MatmulParams> = defineOp<MatmulParams>({
  name: "matmul",
  strided: true,
  shape: (_inputs, { batch, M, N }) => [batch, M, N],
  cpu: ([a, b], [c], p) => matmulCpu(a, b, c, p),
  webgpu: (inputs, outs, p, device) => matmulWgsl(inputs, outs, p, device),
  wasm: matmulWasm,
  split: matmulPieces,
  backward(dy, { inputs: [a, b] }) {
    // dA = dC · Bᵀ, dB = Aᵀ · dC, per batch; the transposes are views, not copies.
    return [matmul(dy, transpose(b)), matmul(transpose(a), dy)];
  },
});

/**
 * Matrix product with NumPy semantics (1-D operands are promoted as in NumPy):
 * A [..., M, K] · B [..., K, N] -> [..., M, N], batch dims broadcast.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  return matmulWith(a, b, undefined);
}

/** `matmul` forcing one WGSL variant by name (see MATMUL_VARIANTS); for tests and benchmarks. */
export function matmulVariant(a: Tensor, b: Tensor, variant: string): Tensor {
  variantNamed(variant);
  return matmulWith(a, b, variant);
}

/**
 * Longest k range one launch sums on a software adapter. llvmpipe ends an invocation's loops
 * after 65535 iterations in all, without an error, which cut K past 65535 (scalar loads) or
 * 262140 (vec4 loads) short; with 16384 every variant's loops stay under that cap.
 */
const SOFTWARE_MAX_K = 16384;

/**
 * A·B as the sum of the products over chunks of k (views, no copies), where the device cannot
 * sum all of K in one launch (kChunk); one tape node with matmul's own backward, so no
 * gradient goes through the chunks' views.
 */
const kChunksOp = defineOp<{ kc: number; variant?: string }>({
  name: "matmul",
  strided: true,
  shape: ([a, b]) => [
    ...broadcastShapes("matmul", a.shape.slice(0, -2), b.shape.slice(0, -2)),
    a.shape[a.ndim - 2],
    b.shape[b.ndim - 1],
  ],
  compute: ([a, b], { kc, variant }) =>
    noGrad(() => {
      const K = a.shape[a.ndim - 1];
      let y: Tensor | null = null;
      for (let k0 = 0; k0 < K; k0 += kc) {
        const n = Math.min(kc, K - k0);
        const part = matmulWith(narrow(a, -1, k0, n), narrow(b, -2, k0, n), variant);
        const next: Tensor = y ? add(y, part) : part;
        if (y) {
          y.dispose();
          part.dispose();
        }
        y = next;
      }
      return [y!];
    }),
  // dA = dC·Bᵀ, dB = Aᵀ·dC, summed back over broadcast batch dims.
  backward: (dy, { inputs: [a, b] }) => [
    sumTo(matmul(dy, transpose(b)), a.shape),
    sumTo(matmul(transpose(a), dy), b.shape),
  ],
});

function matmulWith(a: Tensor, b: Tensor, variant: string | undefined): Tensor {
  if (a.ndim === 0 || b.ndim === 0) {
    throw new ShapeError(
      `matmul: operands must have rank >= 1, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`,
    );
  }
  if (a.ndim === 1 && b.ndim === 1) {
    // A dot product: [K]·[K] -> a 0-d scalar, as in NumPy.
    return reshape(
      matmulWith(reshape(a, [1, a.shape[0]]), reshape(b, [b.shape[0], 1]), variant),
      [],
    );
  }
  if (a.ndim === 1) {
    const y = matmulWith(reshape(a, [1, a.shape[0]]), b, variant);
    return reshape(y, [...y.shape.slice(0, -2), y.shape[y.ndim - 1]]);
  }
  if (b.ndim === 1) {
    const y = matmulWith(a, reshape(b, [b.shape[0], 1]), variant);
    return reshape(y, a.shape.slice(0, -1));
  }
  const [M, K] = a.shape.slice(-2);
  const [K2, N] = b.shape.slice(-2);
  if (K !== K2) {
    throw new ShapeError(
      `matmul: inner dims differ: a is ${fmtShape(a.shape)}, b is ${fmtShape(b.shape)}`,
    );
  }
  if (a.dtype !== b.dtype) {
    throw new TypeError(`matmul: dtypes differ: a is ${a.dtype}, b is ${b.dtype}`);
  }
  const kc = kChunk(a, b, K);
  if (kc < K) return apply(kChunksOp, [a, b], { kc, variant });
  const batchShape = broadcastShapes("matmul", a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batch = sizeOf(batchShape);
  let a3: Tensor, b3: Tensor, rows = M, nb = batch;
  if (b.ndim === 2 && a.ndim > 2 && a.isContiguous()) {
    // A 2-D right operand (a weight) against a row-major batched left one: fold batch into M.
    a3 = reshape(a, [1, batch * M, K]);
    b3 = reshape(b, [1, K, N]);
    rows = batch * M;
    nb = 1;
  } else {
    // reshape keeps stride-0 (broadcast) and strided batch dims as views when they fold into
    // one batch stride, and copies otherwise.
    a3 = reshape(expand(a, [...batchShape, M, K]), [batch, M, K]);
    b3 = reshape(expand(b, [...batchShape, K, N]), [batch, K, N]);
  }
  const y = apply(matmulOp, [a3, b3], { batch: nb, M: rows, N, K, variant });
  return reshape(y, [...batchShape, M, N]);
}
