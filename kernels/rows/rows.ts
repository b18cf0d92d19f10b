// Shared machinery of the fused row kernels (softmax, norms, cross-entropy, embedding backward):
// the WGSL row prelude in two execution modes and how one is picked.
// Row kernels take their dims from a uniform block, not baked into the source, so a row length
// that changes every step (attention over a growing KV cache) reuses one pipeline.
// Modes (rowWgsl): "workgroup" = one workgroup of 64 per row, lanes stride over the row and meet
// in tree reductions in workgroup memory (barriers); "invocation" = a workgroup covers 64
// consecutive rows, each invocation loops over its whole row alone (no workgroup memory, no
// barriers). rowMode picks: on a software adapter (llvmpipe runs invocations on CPU cores, and a
// barrier there costs far more than a long loop) "invocation" for rows up to 16383 long
// (softmax on llvmpipe, 2 cores: 11× faster at [4096, 64], 2× at [256, 1024]), "workgroup" for
// longer ones: llvmpipe silently ends an invocation's loops after 65535 iterations in all
// (measured: a 100000-step loop runs 65535 times; Mesa's gallivm loop limit), and a row kernel passes over its row up to 4 times
// (before this cap, cross-entropy over GPT-2's 50257 classes returned ≈ 9.6 for ln V = 10.8);
// on a real GPU "invocation" only for many short rows (loads are uncoalesced across a
// row-strided warp, long rows want 64 lanes each), else "workgroup".
// The wasm row kernels share wasm_math.ts instead (vector exp/log, row loops, thread shares).

import type { DeviceTraits } from "../../engine/backend.ts";
import { sizeOf } from "../../engine/shape.ts";
import { grid1d } from "../../engine/webgpu/codegen.ts";

/** Invocations per workgroup of row kernels (one row each, or 64 lanes on one row). */
export const ROW_WG = 64;

/**
 * How a row kernel maps rows onto invocations: "workgroup" (one workgroup of ROW_WG lanes per
 * row, reductions through workgroup memory) or "invocation" (one invocation per row, no
 * barriers).
 */
export type RowMode = "workgroup" | "invocation";

/** On a real GPU: per-invocation mode for rows at most this long... */
const GPU_INVOCATION_MAX_LEN = 64;
/** ...and at least this many of them (fewer rows leave most of the GPU idle). */
const GPU_INVOCATION_MIN_ROWS = 4096;

/**
 * On a software adapter: per-invocation mode for rows at most this long. llvmpipe stops all of an
 * invocation's loops after 65535 iterations in total, without an error; 4 passes × 16383 fit.
 */
export const FALLBACK_INVOCATION_MAX_LEN = 16383;

let forcedMode: RowMode | null = null;

/** Force every row kernel into `mode` (tests, benchmarks); null restores the automatic choice. */
export function forceRowMode(mode: RowMode | null): void {
  forcedMode = mode;
}

/**
 * The mode for `rows` rows of length `len` on `device` (unknown device: "workgroup", the mode
 * that suits long rows on real GPUs).
 */
export function rowMode(rows: number, len: number, device?: DeviceTraits): RowMode {
  if (forcedMode) return forcedMode;
  if (!device) return "workgroup";
  if (device.isFallback) return len <= FALLBACK_INVOCATION_MAX_LEN ? "invocation" : "workgroup";
  return len <= GPU_INVOCATION_MAX_LEN && rows >= GPU_INVOCATION_MIN_ROWS
    ? "invocation"
    : "workgroup";
}

/**
 * WGSL statements for the body of a row kernel (after `lid` and `base`, with the row in `x`):
 * `m` = the row's max and `s` = Σ exp(x − m), both on every lane. The stable log-sum-exp of
 * softmax, log-softmax and cross-entropy.
 */
export const ROW_MAX_SUM_EXP = `var m = -3.402823e38;
  for (var j = lid; j < u.len; j += LANES) { m = max(m, x[base + j]); }
  m = wg_max(m, lid);
  var s = 0.0;
  for (var j = lid; j < u.len; j += LANES) { s += exp(x[base + j] - m); }
  s = wg_sum(s, lid);`;

/** Grid covering `rows` rows in `mode` (groups past 65,535 spill into the second dimension). */
export function rowGrid(rows: number, mode: RowMode = "workgroup"): [number, number, number] {
  return grid1d(rows, mode === "workgroup" ? 1 : ROW_WG);
}

/**
 * WGSL prelude of a row kernel in `mode`. Entry point `main(@builtin(workgroup_id) wid,
 * @builtin(local_invocation_id) l)` at workgroup size ROW_WG; `row_of(wid, l.x)` is the row this
 * invocation works on, `lane_of(l.x)` its first column and `LANES` its column stride (loop
 * `for (var j = lane; j < len; j += LANES)`); `wg_sum`, `wg_max`, `wg_sum2` (two sums at once)
 * combine the lanes' partials and return the result to all lanes. In "workgroup" mode they are
 * tree reductions with barriers: every lane of the workgroup must call them (uniform control
 * flow; an early return is allowed only where the whole workgroup returns, e.g. on its row
 * index). In "invocation" mode LANES is 1, lane_of is 0 and the reductions are the identity.
 * `WG` is ROW_WG in both modes.
 */
export function rowWgsl(mode: RowMode): string {
  if (mode === "invocation") {
    return /* wgsl */ `
const WG = ${ROW_WG}u;
const LANES = 1u;
fn row_of(wid: vec3<u32>, lx: u32) -> u32 { return (wid.x + wid.y * 65535u) * WG + lx; }
fn lane_of(lx: u32) -> u32 { return 0u; }
fn wg_sum(v: f32, lid: u32) -> f32 { return v; }
fn wg_max(v: f32, lid: u32) -> f32 { return v; }
fn wg_sum2(v: vec2<f32>, lid: u32) -> vec2<f32> { return v; }
`;
  }
  return /* wgsl */ `
const WG = ${ROW_WG}u;
const LANES = WG;
var<workgroup> red: array<vec2<f32>, ${ROW_WG}>;
fn row_of(wid: vec3<u32>, lx: u32) -> u32 { return wid.x + wid.y * 65535u; }
fn lane_of(lx: u32) -> u32 { return lx; }
fn wg_reduce(v: vec2<f32>, lid: u32, isMax: bool) -> vec2<f32> {
  red[lid] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s >>= 1u) {
    if (lid < s) {
      let o = red[lid + s];
      red[lid] = select(red[lid] + o, max(red[lid], o), isMax);
    }
    workgroupBarrier();
  }
  let r = red[0];
  workgroupBarrier();
  return r;
}
fn wg_sum(v: f32, lid: u32) -> f32 { return wg_reduce(vec2<f32>(v, 0.0), lid, false).x; }
fn wg_max(v: f32, lid: u32) -> f32 { return wg_reduce(vec2<f32>(v, 0.0), lid, true).x; }
fn wg_sum2(v: vec2<f32>, lid: u32) -> vec2<f32> { return wg_reduce(v, lid, false); }
`;
}

/** The "workgroup"-mode prelude, for one-workgroup reductions (e.g. cross-entropy's mean). */
export const ROW_WGSL: string = rowWgsl("workgroup");

/** Rows and row length of a tensor reduced over its last dim. */
export function rowsOf(shape: readonly number[]): [number, number] {
  const len = shape.length === 0 ? 1 : shape[shape.length - 1];
  return [len === 0 ? 0 : sizeOf(shape) / len, len];
}
