// WGSL of the ternary × int8 GEMV/GEMM (kernels/ternary_gemm.ts; formats in kernels/ternary.ts).
// One invocation owns a tile of `tokens` × `rows` outputs and streams the rows' packed words
// (as vec4<u32>, 64 weights per load, when asked and K16 is a multiple of 64; else one u32 at a
// time), so every unpacked weight group feeds `tokens` products and every activation word `rows`.
// Two integer paths, both exact:
// - dot4: codes of group g, `(word >> 2g) & 0x03030303`, are an i8x4 of c = q + 1 in {0, 1, 2};
//   `dot4I8Packed(codes, xword)` adds Σ c·x over four values.
// - pair (the fallback; plain i32 arithmetic): `(word >> 2g) & 0x00030003` holds two codes c0, c2
//   in 16-bit lanes, and the activation word is re-spread once per tile as A = x2 + x0·2^16, so
//   the wrapping product (c0 + c2·2^16)·A = c0·x2 + (c0·x0 + c2·x2)·2^16 (mod 2^32) carries a
//   two-term dot product in its upper half: two multiply-adds per four weights instead of four
//   (or, where dot4I8Packed is emulated, its unpacking). The lower half stays within ±2^15 over
//   the ≤ 32 products of one unit, so `(acc + 2^15) >> 16` recovers the exact sum each unit.
// Both then subtract the token's Σx (codes are q + 1), and scale once: y = f32(acc)/(s_w·s_x).

import { ternaryRowWords } from "./ternary.ts";
import { linearIndex } from "../engine/webgpu/codegen.ts";

/** Everything a ternary shader is specialised on. */
export interface TernaryShader {
  /** GEMV: a 1-D grid over row tiles, one token; GEMM: grid (row tiles / 64, token tiles). */
  gemv: boolean;
  /** Write the i32 sums instead of the dequantised f32 outputs. */
  raw: boolean;
  /** Add a bias [N]. */
  bias: boolean;
  /** dot4I8Packed (true) or the pair-multiply fallback (false). */
  dot4: boolean;
  /** Read weights as vec4<u32> (needs ceil(K/16) % 4 == 0); N, K and T are uniforms. */
  vec4: boolean;
  /** Output rows per invocation. */
  rows: number;
  /** Tokens per invocation (1 for GEMV). */
  tokens: number;
}

/** Invocations per workgroup of the ternary kernels. */
export const TERNARY_WG = 64;
const LANES = ["x", "y", "z", "w"];
const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Can the shader read weights as vec4<u32> (K16 a multiple of 64)? */
export function ternaryUsesVec4(K: number): boolean {
  return ternaryRowWords(K) % 4 === 0;
}

function bindings(s: TernaryShader): string {
  const w = s.vec4 ? "vec4<u32>" : "u32";
  const ins: [string, string][] = [["w", w], ["x", "vec4<u32>"]];
  if (!s.raw) ins.push(["xs", "f32"]);
  ins.push(["xsum", "i32"]);
  if (s.bias) ins.push(["bias", "f32"]);
  const lines = ins.map(([n, t], i) =>
    `@group(0) @binding(${i}) var<storage, read> ${n}: array<${t}>;`
  );
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

/** Statements for one packed word `wv(o)` of each row against activation vec4 `x(t)`. */
function wordBody(s: TernaryShader, wv: (o: number) => string, xi: string): string[] {
  const os = range(s.rows);
  const ts = range(s.tokens);
  const out = ts.map((t) => `let x${t} = x[xb${t} + ${xi}];`);
  for (const g of range(4)) {
    const lane = LANES[g];
    const body: string[] = [];
    if (s.dot4) {
      body.push(...os.map((o) => `let c${o} = (${wv(o)} >> ${2 * g}u) & 0x03030303u;`));
      for (const t of ts) {
        body.push(...os.map((o) => `t${t}_${o} += dot4I8Packed(c${o}, x${t}.${lane});`));
      }
    } else {
      body.push(...ts.flatMap((t) => [
        `let pa${t} = pairA(x${t}.${lane});`,
        `let pb${t} = pairB(x${t}.${lane});`,
      ]));
      body.push(...os.flatMap((o) => [
        `let ca${o} = (${wv(o)} >> ${2 * g}u) & 0x00030003u;`,
        `let cb${o} = (${wv(o)} >> ${2 * g + 8}u) & 0x00030003u;`,
      ]));
      for (const t of ts) {
        body.push(...os.map((o) => `a${t}_${o} += ca${o} * pa${t} + cb${o} * pb${t};`));
      }
    }
    out.push("{", ...body.map((l) => `  ${l}`), "}");
  }
  return out.map((l) => `      ${l}`);
}

/** Store of tile entry (t, o), guarded for the ragged edges. */
function store(s: TernaryShader, t: number, o: number): string {
  const tt = `(t0 + ${t}u)`;
  const n = `(n0 + ${o}u)`;
  const acc = `t${t}_${o} - xsum[${tt}]`;
  const v = s.raw
    ? acc
    : `f32(${acc}) * (1.0 / (u.sw * xs[${tt}]))${s.bias ? ` + bias[${n}]` : ""}`;
  return `  if (${tt} < u.tokens && ${n} < N) { y[${tt} * N + ${n}] = ${v}; }`;
}

const sources = new Map<string, string>();

/** The WGSL of one ternary GEMV/GEMM specialisation (memoised: sources run to 2,000 lines). */
export function ternaryWgsl(s: TernaryShader): string {
  const key = [s.gemv, s.raw, s.bias, s.dot4, s.vec4, s.rows, s.tokens].join();
  let source = sources.get(key);
  if (!source) sources.set(key, source = generate(s));
  return source;
}

function generate(s: TernaryShader): string {
  const vec = s.vec4;
  const os = range(s.rows);
  const ts = range(s.tokens);
  const pairs = ts.flatMap((t) => os.map((o) => [t, o]));
  const words = vec ? range(4) : [0];
  const unit = words.flatMap((q) => {
    const wv = (o: number) => (vec ? `w${o}.${LANES[q]}` : `w${o}`);
    return [`    {`, ...wordBody(s, wv, vec ? `4u * j + ${q}u` : "j"), `    }`];
  });
  const tileIndex = s.gemv ? linearIndex(TERNARY_WG) : "gid.x";
  return `${bindings(s)}
${s.dot4 ? "" : PAIR_HELPERS}
@compute @workgroup_size(${TERNARY_WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let N = u.n;
  let KW = u.kw;
  let UNITS = ${vec ? "KW / 4u" : "KW"};
  let n0 = ${tileIndex} * ${s.rows}u;
  let t0 = ${s.gemv ? "0u" : `gid.y * ${s.tokens}u`};
  if (n0 >= N || t0 >= u.tokens) { return; }
${os.map((o) => `  let wb${o} = min(n0 + ${o}u, N - 1u) * UNITS;`).join("\n")}
${ts.map((t) => `  let xb${t} = min(t0 + ${t}u, u.tokens - 1u) * KW;`).join("\n")}
${pairs.map(([t, o]) => `  var t${t}_${o} = 0i;`).join("\n")}
  for (var j = 0u; j < UNITS; j++) {
${os.map((o) => `    let w${o} = w[wb${o} + j];`).join("\n")}
${s.dot4 ? "" : pairs.map(([t, o]) => `    var a${t}_${o} = 0u;`).join("\n")}
${unit.join("\n")}
${s.dot4 ? "" : pairs.map(([t, o]) => `    t${t}_${o} += upper(a${t}_${o});`).join("\n")}
  }
${pairs.map(([t, o]) => store(s, t, o)).join("\n")}
}`;
}
