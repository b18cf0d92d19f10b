// WGSL helpers shared by kernels: the linear launch grid (beyond 65,535 workgroups a second grid
// dimension is used) and strided element addressing through a uniform block, so elementwise
// kernels read views and broadcast inputs (stride 0) without copies.

import type { ArgInfo } from "../backend.ts";
import { ceilDiv, sizeOf } from "../shape.ts";

/**
 * Workgroup size of 1-D (one invocation per element) kernels. 256, WebGPU's default limit of
 * invocations per workgroup: on llvmpipe an elementwise add runs about 2x faster than at 64.
 */
export const WORKGROUP_SIZE = 256;
/** The largest rank strided kernels address. */
export const MAX_RANK = 8;
const MAX_GROUPS = 65535;

/** Grid covering `n` invocations with workgroups of `wg` (2-D when more than 65,535 groups). */
export function grid1d(n: number, wg = WORKGROUP_SIZE): [number, number, number] {
  const groups = Math.max(1, ceilDiv(n, wg));
  if (groups <= MAX_GROUPS) return [groups, 1, 1];
  return [MAX_GROUPS, ceilDiv(groups, MAX_GROUPS), 1];
}

/** WGSL expression for the linear invocation index under `grid1d` (needs `gid`). */
export function linearIndex(wg = WORKGROUP_SIZE): string {
  return `(gid.x + gid.y * ${MAX_GROUPS * wg}u)`;
}

/** True when an argument is row-major, gap-free, offset 0 and of exactly `shape`. */
export function isPlain(a: ArgInfo, shape: readonly number[]): boolean {
  if (a.offset !== 0 || a.shape.length !== shape.length) return false;
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (a.shape[i] !== shape[i]) return false;
    if (shape[i] !== 1 && a.strides[i] !== s) return false;
    s *= shape[i];
  }
  return true;
}

/** Output dims and per-input strides after coalescing (see `coalesce`). */
interface Coalesced {
  shape: number[];
  strides: number[][];
}

/**
 * The fewest dims that address the same elements: size-1 dims dropped, and a dim merged into the
 * next inner one wherever every input steps through both as one (stride[d] = stride[d+1] ·
 * shape[d+1]). Each dim costs an addressing kernel an integer division per input and element,
 * which llvmpipe scalarises per lane: a row-major or bias-broadcast operand ends with 1-2 dims
 * instead of up to 8 (an elementwise op over a transposed or broadcast input ran ≈ 25 ns per
 * element before this).
 */
function coalesce(shape: readonly number[], inputs: readonly ArgInfo[]): Coalesced {
  const dims: { size: number; strides: number[] }[] = [];
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const strides = inputs.map((a) => a.strides[d]);
    const last = dims[dims.length - 1];
    if (last && last.strides.every((s, k) => s === strides[k] * shape[d])) {
      last.size *= shape[d];
      last.strides = strides;
    } else dims.push({ size: shape[d], strides });
  }
  if (dims.length === 0) dims.push({ size: 1, strides: inputs.map(() => 0) });
  return {
    shape: dims.map((x) => x.size),
    strides: inputs.map((_, k) => dims.map((x) => x.strides[k])),
  };
}

/** The rank strided kernels address for this output and inputs (after coalescing). */
export function stridedRank(shape: readonly number[], inputs: readonly ArgInfo[]): number {
  return coalesce(shape, inputs).shape.length;
}

/**
 * The uniform block of a strided elementwise kernel: element count, rank, the output's offset
 * (`yo`: where element 0 goes in the output's binding, for pieces of a split launch), output
 * shape, then per input its strides and offset, then up to 4 f32 scalars. Matches
 * `stridedStruct`; dims are coalesced first (see `coalesce`; `stridedRank` gives the rank the
 * struct must be made for).
 */
export function stridedUniforms(
  shape: readonly number[],
  inputs: readonly ArgInfo[],
  scalars: readonly number[] = [],
  outOffset = 0,
): Uint32Array {
  if (shape.length > MAX_RANK) throw new RangeError(`rank ${shape.length} > ${MAX_RANK}`);
  const c = coalesce(shape, inputs);
  const rank = c.shape.length;
  const words = 4 + 8 + inputs.length * 12 + 4;
  const u = new Uint32Array(words);
  const pad = MAX_RANK - rank; // right-align dims so the innermost is at index 7
  u[0] = sizeOf(shape);
  u[1] = rank;
  u[2] = outOffset;
  for (let d = 0; d < MAX_RANK; d++) u[4 + d] = d < pad ? 1 : c.shape[d - pad];
  inputs.forEach((a, k) => {
    const base = 12 + k * 12;
    for (let d = 0; d < rank; d++) u[base + pad + d] = c.strides[k][d];
    u[base + 8] = a.offset;
  });
  new Float32Array(u.buffer, (words - 4) * 4, 4).set(scalars);
  return u;
}

/**
 * The WGSL struct and addressing functions `addr_k(i)` matching `stridedUniforms`, for `rank`
 * coalesced dims (`stridedRank`): one division per inner dim, none for the outermost.
 */
export function stridedStruct(nInputs: number, rank: number = MAX_RANK): string {
  const fields = Array.from(
    { length: nInputs },
    (_, k) => `  st${k}: array<vec4<u32>, 2>,\n  off${k}: vec4<u32>,`,
  ).join("\n");
  const at = (d: number) => `[${d >> 2}][${d & 3}]`;
  const addrs = Array.from({ length: nInputs }, (_, k) => {
    const lines: string[] = [];
    for (let d = MAX_RANK - 1; d > MAX_RANK - rank; d--) {
      lines.push(`  { let s = u.shape${at(d)}; o += (r % s) * u.st${k}${at(d)}; r = r / s; }`);
    }
    lines.push(`  o += r * u.st${k}${at(MAX_RANK - rank)};`);
    return `
fn addr_${k}(i: u32) -> u32 {
  var r = i;
  var o = u.off${k}.x;
${lines.join("\n")}
  return o;
}`;
  }).join("\n");
  return `struct U {
  n: u32,
  rank: u32,
  yo: u32,
  p1: u32,
  shape: array<vec4<u32>, 2>,
${fields}
  f: vec4<f32>,
}
${addrs}`;
}
