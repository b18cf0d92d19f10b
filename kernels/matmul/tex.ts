// Texture-staged matmul ("tex" variants of kernels/matmul.ts): A and B are first staged in
// scratch rgba32float 2-D array textures (WgslLaunch.stages), then a register-blocked kernel
// reads both from the textures.
// Why: on llvmpipe (Mesa 22.3) a storage-buffer load is a loop over the SIMD lanes with a bounds
// check per component, about 45 instructions per vec4 load, while a texel load is one vectorised
// address computation and gather. Loads bound the register-blocked kernel there, so reading from
// textures measured 1.5-1.9× faster at 512³-1024³ (32×32 blocks, multiply alone: 38-44 vs 23-24
// GFLOP/s at 512³, 41 vs 26 at 1024³). Needs read-only storage textures (WGSL language feature
// readonly_and_readwrite_storage_textures), f32 data, and every texture side within
// maxTextureDimension2D; elsewhere the buffer variants run (see matmul.ts).
//
// Layout: each operand is stored as it lies in memory, along its contiguous axis. Texel (q, r) of
// layer z holds elements 4q..4q+3 of row r of the stored matrix z:
//   A "k" (row-major):   rows m, texels along k: width ceil(K/4), height M
//   A "m" (transposed):  rows k, texels along m: width ceil(M/4), height ceil(K/4)·4
//   B "n" (row-major):   rows k, texels along n: width ceil(N/4), height ceil(K/4)·4
//   B "k" (transposed):  rows n, texels along k: width ceil(K/4), height N
// with layers = the operand's batch (1 if broadcast), and both sides then raised to a size that
// is not a power of two (npot in texture_stage.ts). Staging is a copyBufferToTexture where the
// stored rows are whole texels, 256-byte aligned (WebGPU's bytesPerRow rule) and k needs no
// padding; otherwise a
// fill kernel reads the operand through its strides (vec4 loads when a row is contiguous and
// 4-aligned) and writes zeros past its columns and rows, so k is a whole number of 4-steps
// (products of padding are 0 and add nothing) and the multiply has no tail loop. Texels the
// multiply never reads (past M or N, or the npot margin) may hold stale data.
// Fill launch: 8×8 invocations per workgroup, one texel each, grid [width/8, height/8, layers].
// Multiply launch: as "reg": each invocation computes a TM×TN block of C (rows and columns
// clamped on load, stores guarded); per 4-step of k it loads TM texels of A and TN of B. k is
// added in order 0..K-1 as `c + a * b`, as in every variant.

import type { TextureLimits, TextureStage } from "../../engine/backend.ts";
import { ceilDiv } from "../../engine/shape.ts";
import { blockStores, type CMode, type MatmulVariant } from "./wgsl.ts";
import { npot, REQUIRES_TEXTURES } from "../texture_stage.ts";

/** How A is stored: texels along k ("k") or along m ("m"). */
export type TexAMode = "k" | "m";
/** How B is stored: texels along n ("n") or along k ("k"). */
export type TexBMode = "n" | "k";

/** A stored matrix to stage: `rows` × `cols` per layer, element (z, r, c) at
 * off + z·sb + r·sr + c·sc. */
interface Stored {
  rows: number;
  cols: number;
  /** Matrices to stage (1 for a broadcast batch). */
  layers: number;
  off: number;
  sb: number;
  sr: number;
  sc: number;
  /** Rows are k: rounded up to a multiple of 4 (zeros) so k has no tail. */
  kRows: boolean;
}

/** An operand's strides: per batch, row and column, and its offset (elements). */
export interface OperandLayout {
  sb: number;
  sr: number;
  sc: number;
  off: number;
}

/** How a product's operands are staged. */
export interface TexPlan {
  am: TexAMode;
  bm: TexBMode;
  a: Stored;
  b: Stored;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const C4 = ["x", "y", "z", "w"];

/** Stage A [M, K] and B [K, N] (batch `batch`) along their contiguous axes. */
export function texPlan(
  batch: number,
  M: number,
  N: number,
  K: number,
  la: OperandLayout,
  lb: OperandLayout,
): TexPlan {
  const layers = (l: OperandLayout) => (l.sb === 0 ? 1 : batch);
  const am: TexAMode = la.sc !== 1 && la.sr === 1 ? "m" : "k";
  const bm: TexBMode = lb.sc !== 1 && lb.sr === 1 ? "k" : "n";
  const a: Stored = am === "k"
    ? {
      rows: M,
      cols: K,
      layers: layers(la),
      off: la.off,
      sb: la.sb,
      sr: la.sr,
      sc: la.sc,
      kRows: false,
    }
    : {
      rows: K,
      cols: M,
      layers: layers(la),
      off: la.off,
      sb: la.sb,
      sr: la.sc,
      sc: la.sr,
      kRows: true,
    };
  const b: Stored = bm === "n"
    ? {
      rows: K,
      cols: N,
      layers: layers(lb),
      off: lb.off,
      sb: lb.sb,
      sr: lb.sr,
      sc: lb.sc,
      kRows: true,
    }
    : {
      rows: N,
      cols: K,
      layers: layers(lb),
      off: lb.off,
      sb: lb.sb,
      sr: lb.sc,
      sc: lb.sr,
      kRows: false,
    };
  return { am, bm, a, b };
}

/** Texture size of a stored matrix: [width, height]. */
function texSize(m: Stored): [number, number] {
  return [npot(ceilDiv(m.cols, 4)), npot(m.kRows ? ceilDiv(m.rows, 4) * 4 : m.rows)];
}

/** Does the plan's staging fit the device's textures? */
export function texturesFit(plan: TexPlan, lim?: TextureLimits): boolean {
  if (!lim) return false;
  const sides = [...texSize(plan.a), ...texSize(plan.b)];
  return sides.every((s) => s <= lim.side) && Math.max(plan.a.layers, plan.b.layers) <= lim.layers;
}

/** The fill kernel, with vec4 loads of whole texels (`vec`) or four scalar loads. */
function fillSource(vec: boolean): string {
  const load = vec
    ? "if (q * 4u < s.cols) { v = x[(base >> 2u) + q]; }"
    : range(4).map((i) =>
      `if (q * 4u + ${i}u < s.cols) { v.${C4[i]} = x[base + (q * 4u + ${i}u) * s.sc]; }`
    ).join("\n      ");
  return `${REQUIRES_TEXTURES}
struct S { rows: u32, cols: u32, off: u32, sb: u32, sr: u32, sc: u32, width: u32, height: u32 }
@group(0) @binding(0) var<storage, read> x: array<${vec ? "vec4<f32>" : "f32"}>;
@group(0) @binding(1) var t: texture_storage_2d_array<rgba32float, write>;
@group(0) @binding(2) var<uniform> s: S;
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let q = gid.x;
  let r = gid.y;
  let z = gid.z;
  if (q >= s.width || r >= s.height) { return; }
  var v = vec4<f32>();
  if (r < s.rows) {
    let base = s.off + z * s.sb + r * s.sr;
    ${load}
  }
  textureStore(t, vec2<u32>(q, r), z, v);
}`;
}

const fills = [fillSource(false), fillSource(true)];

/** The stage of binding `input` from stored matrix `m`: a copy where WebGPU's copy rules and
 * the padding allow, else a fill. */
function stageOf(input: number, m: Stored): TextureStage {
  const [width, height] = texSize(m);
  const stage = { input, width, height, layers: m.layers };
  const rowsWhole = m.sc === 1 && m.cols % 4 === 0;
  const pitch = 4 * m.sr;
  const rowsPerImage = m.layers > 1 ? m.sb / m.sr : m.rows;
  if (
    // A copy's bytesPerRow must cover a row: rows closer than that (a row stride of 0 from
    // expand, or overlapping rows) are filled instead.
    rowsWhole && m.sr >= m.cols && pitch % 256 === 0 && (4 * m.off) % 16 === 0 &&
    (!m.kRows || m.rows % 4 === 0) && Number.isInteger(rowsPerImage) && rowsPerImage >= m.rows
  ) {
    return {
      ...stage,
      label: "matmul-stage[copy]",
      copy: {
        offset: 4 * m.off,
        bytesPerRow: pitch,
        rowsPerImage,
        size: [m.cols / 4, m.rows, m.layers],
      },
    };
  }
  const vec = rowsWhole && [m.off, m.sb, m.sr].every((x) => x % 4 === 0);
  return {
    ...stage,
    label: `matmul-stage[${vec ? "vec4" : "scalar"} fill]`,
    fill: {
      source: fills[vec ? 1 : 0],
      grid: [ceilDiv(width, 8), ceilDiv(height, 8), m.layers],
      uniforms: new Uint32Array([m.rows, m.cols, m.off, m.sb, m.sr, m.sc, width, height]),
    },
  };
}

/** The multiply kernel of a "tex" variant for storage modes (am, bm) (see the file header). */
export function texKernel(v: MatmulVariant, am: TexAMode, bm: TexBMode, cm: CMode): string {
  const { tm, tn } = v;
  const tnv = tn / 4;
  const setup: string[] = [];
  if (am === "k") {
    for (const i of range(tm)) setup.push(`let ar${i} = min(row0 + ${i}u, u.M - 1u);`);
  } else {
    for (const iv of range(tm / 4)) {
      setup.push(`let ac${iv} = min(row0 / 4u + ${iv}u, u.mq - 1u);`);
    }
  }
  if (bm === "n") {
    for (const jv of range(tnv)) setup.push(`let bc${jv} = min(col0 / 4u + ${jv}u, u.nq - 1u);`);
  } else {
    for (const j of range(tn)) setup.push(`let br${j} = min(col0 + ${j}u, u.N - 1u);`);
  }
  const body: string[] = [];
  // B's slice of this 4-step first: vec4s over 4 columns ("n") or over the 4 k ("k").
  let bOf: (kk: number, jv: number) => string;
  if (bm === "n") {
    for (const kk of range(4)) {
      for (const jv of range(tnv)) {
        body.push(`let b${kk}_${jv} = textureLoad(tb, vec2<u32>(bc${jv}, k + ${kk}u), lb);`);
      }
    }
    bOf = (kk, jv) => `b${kk}_${jv}`;
  } else {
    for (const j of range(tn)) body.push(`let b${j} = textureLoad(tb, vec2<u32>(kq, br${j}), lb);`);
    bOf = (kk, jv) => `vec4<f32>(${range(4).map((q) => `b${4 * jv + q}.${C4[kk]}`).join(", ")})`;
  }
  // Then A, one row ("k") or four ("m") at a time, each right before its updates.
  const unit = am === "m" ? 4 : 1;
  for (let u0 = 0; u0 < tm; u0 += unit) {
    let aOf: (i: number, kk: number) => string;
    if (am === "k") {
      body.push(`let a${u0} = textureLoad(ta, vec2<u32>(kq, ar${u0}), la);`);
      aOf = (i, kk) => `a${i}.${C4[kk]}`;
    } else {
      const iv = u0 / 4;
      for (const kk of range(4)) {
        body.push(`let a${kk}_${iv} = textureLoad(ta, vec2<u32>(ac${iv}, k + ${kk}u), la);`);
      }
      aOf = (i, kk) => `a${kk}_${i >> 2}.${C4[i & 3]}`;
    }
    for (let i = u0; i < u0 + unit; i++) {
      for (const jv of range(tnv)) {
        let e = `c${i}_${jv}`;
        for (const kk of range(4)) e = `${e} + vec4<f32>(${aOf(i, kk)}) * ${bOf(kk, jv)}`;
        body.push(`c${i}_${jv} = ${e};`);
      }
    }
  }
  const accs = range(tm).flatMap((i) => range(tnv).map((jv) => `var c${i}_${jv} = vec4<f32>();`));
  return `${REQUIRES_TEXTURES}
struct U {
  M: u32, N: u32, kq: u32, nq: u32, mq: u32, az: u32, bz: u32, pad: u32,
  co: u32, csb: u32, csr: u32, cpad: u32,
}
@group(0) @binding(0) var ta: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(1) var tb: texture_storage_2d_array<rgba32float, read>;
@group(0) @binding(2) var<storage, read_write> c: array<${cm === "n4" ? "vec4<f32>" : "f32"}>;
@group(0) @binding(3) var<uniform> u: U;
@compute @workgroup_size(${v.wx}, ${v.wy})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let z = gid.z;
  let row0 = gid.y * ${tm}u;
  let col0 = gid.x * ${tn}u;
  if (row0 >= u.M || col0 >= u.N) { return; }
  let la = z * u.az;
  let lb = z * u.bz;
  ${setup.join("\n  ")}
  ${accs.join("\n  ")}
  for (var kq = 0u; kq < u.kq; kq++) {
    let k = kq * 4u;
    ${body.join("\n    ")}
  }
${blockStores(cm, tm, tn)}
}`;
}

/** The uniform block and stages of a "tex" launch of A [M, K] · B [K, N] over `batch`. */
export function texLaunchParts(
  plan: TexPlan,
  batch: number,
  M: number,
  N: number,
  K: number,
  c: { off: number; sb: number; sr: number },
): { uniforms: Uint32Array; stages: TextureStage[] } {
  const z = (m: Stored) => (m.layers === batch && batch > 1 ? 1 : 0);
  const uniforms = new Uint32Array([
    ...[M, N, ceilDiv(K, 4), ceilDiv(N, 4)],
    ...[ceilDiv(M, 4), z(plan.a), z(plan.b), 0],
    ...[c.off, c.sb, c.sr, 0],
  ]);
  return { uniforms, stages: [stageOf(0, plan.a), stageOf(1, plan.b)] };
}
