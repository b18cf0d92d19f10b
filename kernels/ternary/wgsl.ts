// WGSL of the ternary × int8 GEMV/GEMM (gemm.ts; formats in format.ts).
// Register-blocked, no workgroup memory: one invocation owns a tile of `tokens` × `rows` outputs
// and streams its rows' packed words, `words` (1, 2 or 4: a u32, vec2 or vec4 load) per step, so
// every unpacked weight word feeds `tokens` products and every activation word `rows`. The GEMM
// takes its token tile from the workgroup id: all invocations of a workgroup read the same
// activation words (broadcast loads on GPUs). On llvmpipe (Mesa 22) every storage-buffer load,
// uniform or not, runs a per-lane loop of ≈ 15 + 7 instructions per 32-bit component, against
// one instruction per 8 products, so there loads per product (1/(16·tokens) + 1/(4·rows) words,
// fewer per-load overheads with wider steps) and the loop body's size (spills, code past the
// instruction cache) decide the tile: gemm.ts, `ternaryConfigFor`. With `tex`
// the same kernel reads W (r32uint or rgba32uint texels of 1 or 4 words, one row per weight row)
// and x (rgba32uint, one row per token) from staged textures instead.
// Two integer paths, both exact:
// - dot4: codes of group g, `(word >> 2g) & 0x03030303`, are an i8x4 of c = q + 1 in {0, 1, 2};
//   `dot4I8Packed(codes, xword)` adds Σ c·x over four values.
// - pair (the fallback; plain i32 arithmetic): `(word >> 2g) & 0x00030003` holds two codes c0, c2
//   in 16-bit lanes, and the activation word is re-spread once per tile as A = x2 + x0·2^16, so
//   the wrapping product (c0 + c2·2^16)·A = c0·x2 + (c0·x0 + c2·x2)·2^16 (mod 2^32) carries a
//   two-term dot product in its upper half: two multiply-adds per four weights instead of four
//   (or, where dot4I8Packed is emulated, its unpacking). The lower half stays within ±2^15 over
//   the ≤ 32 products of one step, so `(acc + 2^15) >> 16` recovers the exact sum each step.
// Both then subtract the token's Σx (codes are q + 1), and scale once: y = f32(acc)/(s_w·s_x),
// with Σx and 1/(s_w·s_x) loaded once per token of the tile and the bias once per row.

import { ternaryRowWords } from "./format.ts";
import { linearIndex } from "../../engine/webgpu/codegen.ts";
import { REQUIRES_TEXTURES } from "../texture_stage.ts";

/** Everything a ternary shader is specialised on. */
export interface TernaryShader {
  /** GEMV: a 1-D grid over row tiles, one token; GEMM: grid (row tiles / wg, token tiles). */
  gemv: boolean;
  /** Write the i32 sums instead of the dequantised f32 outputs. */
  raw: boolean;
  /** Add a bias [N]. */
  bias: boolean;
  /** dot4I8Packed (true) or the pair-multiply fallback (false). */
  dot4: boolean;
  /** Weight words per step, read as one u32, vec2<u32> or vec4<u32> (must divide ceil(K/16)). */
  words: 1 | 2 | 4;
  /** Output rows per invocation. */
  rows: number;
  /** Tokens per invocation (1 for GEMV). */
  tokens: number;
  /** Invocations per workgroup. */
  wg: number;
  /**
   * Read W and x from staged textures (r32uint or rgba32uint by `words`, which must be 1 or 4;
   * gemm.ts stages them) instead of storage buffers: a texel load is far cheaper
   * than a buffer load on llvmpipe.
   */
  tex?: boolean;
}

/** Invocations per workgroup of the GEMV (and the GEMM's default). */
export const TERNARY_WG = 64;
const LANES = ["x", "y", "z", "w"];
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The most weight words per step, up to `want`, that divide a row of K inputs. */
export function ternaryStepWords(K: number, want: 1 | 2 | 4): 1 | 2 | 4 {
  const rw = ternaryRowWords(K);
  return want === 4 && rw % 4 === 0 ? 4 : want >= 2 && rw % 2 === 0 ? 2 : 1;
}

function bindings(s: TernaryShader): string {
  const w = s.words === 1 ? "u32" : `vec${s.words}<u32>`;
  const ins: [string, string][] = [["w", w], ["x", "vec4<u32>"]];
  if (!s.raw) ins.push(["xs", "f32"]);
  ins.push(["xsum", "i32"]);
  if (s.bias) ins.push(["bias", "f32"]);
  const lines = ins.map(([n, t], i) =>
    `@group(0) @binding(${i}) var<storage, read> ${n}: array<${t}>;`
  );
  if (s.tex) {
    const wf = s.words === 4 ? "rgba32uint" : "r32uint";
    lines[0] = `@group(0) @binding(0) var w: texture_storage_2d_array<${wf}, read>;`;
    lines[1] = `@group(0) @binding(1) var x: texture_storage_2d_array<rgba32uint, read>;`;
  }
  lines.push(
    `@group(0) @binding(${ins.length}) var<storage, read_write> y: array<${
      s.raw ? "i32" : "f32"
    }>;`,
    "struct U { sw: f32, tokens: u32, n: u32, kw: u32 }",
    `@group(0) @binding(${ins.length + 1}) var<uniform> u: U;`,
  );
  return lines.join("\n");
}

// x word (bytes x0..x3, signed) -> x2 + x0·2^16 and x3 + x1·2^16, as wrapping u32.
const PAIR_HELPERS = `
fn pairA(v: u32) -> u32 {
  let s = bitcast<i32>(v);
  return bitcast<u32>(((s << 8u) >> 24u) + ((s << 24u) >> 8u));
}
fn pairB(v: u32) -> u32 {
  let s = bitcast<i32>(v);
  return bitcast<u32>((s >> 24u) + (((s << 16u) >> 8u) & -65536));
}
fn upper(a: u32) -> i32 { return (bitcast<i32>(a) + 32768) >> 16u; }`;

/** The load of token `t`'s activation word `xi` (xb: its row start, or row when staged). */
function xLoad(s: TernaryShader, t: number, xi: string): string {
  return s.tex ? `textureLoad(x, vec2<u32>(${xi}, xb${t}), 0u)` : `x[xb${t} + ${xi}]`;
}

/** The load of row `o`'s weight unit `j` (wb: its row start, or row when staged). */
function wLoad(s: TernaryShader, o: number): string {
  if (!s.tex) return `w[wb${o} + j]`;
  return `textureLoad(w, vec2<u32>(j, wb${o}), 0u)${s.words === 1 ? ".x" : ""}`;
}

/** Unpacked activations of word `q` for token `t`: raw (dot4) or re-spread pairs. */
function unpackX(s: TernaryShader, t: number, q: number, xi: string): string[] {
  const out = [`let x${t}_${q} = ${xLoad(s, t, xi)};`];
  if (s.dot4) return out;
  return out.concat(
    range(4).flatMap((g) => [
      `let pa${t}_${q}_${g} = pairA(x${t}_${q}.${LANES[g]});`,
      `let pb${t}_${q}_${g} = pairB(x${t}_${q}.${LANES[g]});`,
    ]),
  );
}

/** Codes of row `o` in weight word `w` (index `q` of the step). */
function unpackW(s: TernaryShader, o: number, q: number, w: string): string[] {
  if (s.dot4) {
    return range(4).map((g) => `let c${o}_${q}_${g} = (${w} >> ${2 * g}u) & 0x03030303u;`);
  }
  return range(4).flatMap((g) => [
    `let ca${o}_${q}_${g} = (${w} >> ${2 * g}u) & 0x00030003u;`,
    `let cb${o}_${q}_${g} = (${w} >> ${2 * g + 8}u) & 0x00030003u;`,
  ]);
}

/** Σ over words `qs` of row `o` × token `t`: dot4 terms, or the pair products (wrapping u32). */
function terms(s: TernaryShader, t: number, o: number, qs: number[]): string {
  return qs.flatMap((q) =>
    range(4).map((g) =>
      s.dot4
        ? `dot4I8Packed(c${o}_${q}_${g}, x${t}_${q}.${LANES[g]})`
        : `ca${o}_${q}_${g} * pa${t}_${q}_${g} + cb${o}_${q}_${g} * pb${t}_${q}_${g}`
    )
  ).join(" + ");
}

/**
 * One step of `words` weight words. One or two: every token's activations first, then row by
 * row its weights (loaded right there), codes and one sum per token (the pair path's ≤ 16
 * products flushed at once, so no partial sum outlives its row). Four (vec4): word by word, the
 * pair products summed in `a` and flushed at the end of the step (kernel body).
 */
function stepBody(s: TernaryShader): string[] {
  const ts = range(s.tokens);
  const W = s.words;
  const out: string[] = [];
  if (W < 4) {
    for (const t of ts) {
      for (const q of range(W)) out.push(...unpackX(s, t, q, W === 1 ? "j" : `2u * j + ${q}u`));
    }
    for (const o of range(s.rows)) {
      out.push(`let w${o} = ${wLoad(s, o)};`);
      for (const q of range(W)) {
        out.push(...unpackW(s, o, q, W === 1 ? `w${o}` : `w${o}.${LANES[q]}`));
      }
      for (const t of ts) {
        const sum = terms(s, t, o, range(W));
        out.push(`acc${t}_${o} += ${s.dot4 ? sum : `upper(${sum})`};`);
      }
    }
    return out;
  }
  for (const q of range(4)) {
    const word = ts.flatMap((t) => unpackX(s, t, q, `4u * j + ${q}u`));
    for (const o of range(s.rows)) {
      word.push(...unpackW(s, o, q, `w${o}.${LANES[q]}`));
      for (const t of ts) {
        const to = s.dot4 ? `acc${t}_${o}` : `a${t}_${o}`;
        word.push(`${to}${!s.dot4 && q === 0 ? " =" : " +="} ${terms(s, t, o, [q])};`);
      }
    }
    out.push("{", ...word.map((l) => `  ${l}`), "}");
  }
  return out;
}

/** The stores of one token of the tile: Σx and the scale once, then each row, guarded. */
function storeToken(s: TernaryShader, t: number): string[] {
  const out = [`if (t0 + ${t}u < u.tokens) {`, `  let tt = t0 + ${t}u;`, `  let sum = xsum[tt];`];
  if (!s.raw) out.push(`  let inv = 1.0 / (u.sw * xs[tt]);`);
  for (const o of range(s.rows)) {
    const acc = `acc${t}_${o} - sum`;
    const v = s.raw ? acc : `f32(${acc}) * inv${s.bias ? ` + b${o}` : ""}`;
    out.push(`  if (n0 + ${o}u < N) { y[tt * N + n0 + ${o}u] = ${v}; }`);
  }
  out.push("}");
  return out;
}

const sources = new Map<string, string>();

/** The WGSL of one ternary GEMV/GEMM specialisation (memoised: sources run to 2,000 lines). */
export function ternaryWgsl(s: TernaryShader): string {
  const key = [s.gemv, s.raw, s.bias, s.dot4, s.words, s.rows, s.tokens, s.wg, !!s.tex].join();
  let source = sources.get(key);
  if (!source) sources.set(key, source = generate(s));
  return source;
}

function generate(s: TernaryShader): string {
  const vec = s.words === 4;
  const os = range(s.rows);
  const ts = range(s.tokens);
  const pairs = ts.flatMap((t) => os.map((o) => [t, o]));
  // vec4 steps of the pair path sum a step's products in u32 `a`, flushed once per step.
  const stepSums = !s.dot4 && vec;
  const loop = [
    ...(vec ? os.map((o) => `let w${o} = ${wLoad(s, o)};`) : []),
    ...(stepSums ? pairs.map(([t, o]) => `var a${t}_${o}: u32;`) : []),
    ...stepBody(s),
    ...(stepSums ? pairs.map(([t, o]) => `acc${t}_${o} += upper(a${t}_${o});`) : []),
  ];
  const stores = [
    ...(s.bias ? os.map((o) => `let b${o} = bias[min(n0 + ${o}u, N - 1u)];`) : []),
    ...ts.flatMap((t) => storeToken(s, t)),
  ];
  const tile = s.gemv ? linearIndex(s.wg) : `wid.x * ${s.wg}u + lid`;
  const indent = (ls: string[], n: number) => ls.map((l) => " ".repeat(n) + l).join("\n");
  if (s.tex && s.words === 2) throw new Error("ternary: staged weights take 1 or 4 words a step");
  const rowOf = s.tex ? "" : " * UNITS";
  const tokenOf = s.tex ? "" : " * KW";
  return `${s.tex ? REQUIRES_TEXTURES : ""}
${bindings(s)}
${s.dot4 ? "" : PAIR_HELPERS}
@compute @workgroup_size(${s.wg})
fn main(
  @builtin(global_invocation_id) gid: vec3<u32>,
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_index) lid: u32,
) {
  let N = u.n;
  let KW = u.kw;
  let UNITS = KW / ${s.words}u;
  let n0 = (${tile}) * ${s.rows}u;
  let t0 = ${s.gemv ? "0u" : `wid.y * ${s.tokens}u`};
  if (n0 >= N) { return; }
${indent(os.map((o) => `let wb${o} = min(n0 + ${o}u, N - 1u)${rowOf};`), 2)}
${indent(ts.map((t) => `let xb${t} = min(t0 + ${t}u, u.tokens - 1u)${tokenOf};`), 2)}
${indent(pairs.map(([t, o]) => `var acc${t}_${o} = 0i;`), 2)}
  for (var j = 0u; j < UNITS; j++) {
${indent(loop, 4)}
  }
${indent(stores, 2)}
}`;
}
