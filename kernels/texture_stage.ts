// Helpers for kernels that stage inputs in textures (WgslLaunch.stages): texture sides that keep
// llvmpipe to one compile per kernel, and the stage of a row-major u32 matrix (a copy where
// WebGPU's copy rules allow, else a fill kernel).
// Fill launch: 8×8 invocations per workgroup, one texel each, grid [width/8, height/8, 1]; texels
// past the matrix are written as zeros.

import type { StageFormat, TextureStage } from "../engine/backend.ts";
import { ceilDiv } from "../engine/shape.ts";

/**
 * `n`, or the next size that is not a power of two. llvmpipe compiles a kernel again for each
 * combination of its textures' sides being powers of two or not (part of its shader key), so
 * staged textures get sides that are not: one compile per kernel instead of up to 16 (a 32×32
 * matmul block takes 7-17 s to compile there).
 */
export function npot(n: number): number {
  const s = Math.max(n, 3);
  return (s & (s - 1)) === 0 ? s + 1 : s;
}

/** WGSL needs this language feature to read storage textures. */
export const REQUIRES_TEXTURES = "requires readonly_and_readwrite_storage_textures;";

/** The fill of a u32 texture (`words` per texel: 1 for r32uint, 4 for rgba32uint). */
function u32FillSource(words: 1 | 4): string {
  const lanes = ["x", "y", "z", "w"].slice(0, words);
  return `struct S { rows: u32, texels: u32, width: u32, height: u32 }
@group(0) @binding(0) var<storage, read> x: array<u32>;
@group(0) @binding(1) var t: texture_storage_2d_array<${
    words === 4 ? "rgba32uint" : "r32uint"
  }, write>;
@group(0) @binding(2) var<uniform> s: S;
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let q = gid.x;
  let r = gid.y;
  if (q >= s.width || r >= s.height) { return; }
  var v = vec4<u32>();
  if (r < s.rows && q < s.texels) {
    let b = (r * s.texels + q) * ${words}u;
    ${lanes.map((l, i) => `v.${l} = x[b + ${i}u];`).join("\n    ")}
  }
  textureStore(t, vec2<u32>(q, r), 0u, v);
}`;
}

const u32Fills = { 1: u32FillSource(1), 4: u32FillSource(4) };

/**
 * The stage of input `input`, a contiguous row-major u32 matrix of `rows` × `rowWords` at offset
 * 0, as texels of `words` words (`rowWords` a multiple of `words`).
 */
export function u32Stage(
  input: number,
  rows: number,
  rowWords: number,
  words: 1 | 4,
  label: string,
): TextureStage {
  const format: StageFormat = words === 4 ? "rgba32uint" : "r32uint";
  const texels = rowWords / words;
  const [width, height] = [npot(texels), npot(rows)];
  const stage = { input, format, width, height, layers: 1 };
  const bytesPerRow = 4 * rowWords;
  if (bytesPerRow % 256 === 0) {
    const copy = { offset: 0, bytesPerRow, rowsPerImage: rows, size: [texels, rows, 1] };
    return { ...stage, label: `${label}[copy]`, copy: copy as NonNullable<TextureStage["copy"]> };
  }
  return {
    ...stage,
    label: `${label}[fill]`,
    fill: {
      source: u32Fills[words],
      grid: [ceilDiv(width, 8), ceilDiv(height, 8), 1],
      uniforms: new Uint32Array([rows, texels, width, height]),
    },
  };
}
