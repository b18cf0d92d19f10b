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

/**
 * The uniform block of a strided elementwise kernel: element count, rank, output shape, then
 * per input its strides and offset, then up to 4 f32 scalars. Matches `stridedStruct`.
 */
export function stridedUniforms(
  shape: readonly number[],
  inputs: readonly ArgInfo[],
  scalars: readonly number[] = [],
): Uint32Array {
  if (shape.length > MAX_RANK) throw new RangeError(`rank ${shape.length} > ${MAX_RANK}`);
  const words = 4 + 8 + inputs.length * 12 + 4;
  const u = new Uint32Array(words);
  const pad = MAX_RANK - shape.length; // right-align dims so the innermost is at index 7
  u[0] = sizeOf(shape);
  u[1] = MAX_RANK;
  for (let d = 0; d < MAX_RANK; d++) u[4 + d] = d < pad ? 1 : shape[d - pad];
  inputs.forEach((a, k) => {
    const base = 12 + k * 12;
    for (let d = 0; d < shape.length; d++) u[base + pad + d] = a.strides[d];
    u[base + 8] = a.offset;
  });
  new Float32Array(u.buffer, (words - 4) * 4, 4).set(scalars);
  return u;
}

/** The WGSL struct and addressing functions `addr_k(i)` matching `stridedUniforms`. */
export function stridedStruct(nInputs: number): string {
  const fields = Array.from(
    { length: nInputs },
    (_, k) => `  st${k}: array<vec4<u32>, 2>,\n  off${k}: vec4<u32>,`,
  ).join("\n");
  const addrs = Array.from({ length: nInputs }, (_, k) => `
fn addr_${k}(i: u32) -> u32 {
  var r = i;
  var o = u.off${k}.x;
  for (var d = 7; d >= 0; d--) {
    let s = u.shape[d / 4][d % 4];
    o += (r % s) * u.st${k}[d / 4][d % 4];
    r = r / s;
  }
  return o;
}`).join("\n");
  return `struct U {
  n: u32,
  rank: u32,
  p0: u32,
  p1: u32,
  shape: array<vec4<u32>, 2>,
${fields}
  f: vec4<f32>,
}
${addrs}`;
}
