// WGSL for the batched strided matmul of kernels/matmul.ts, generated per variant and layout.
// Two families, both reading operands through strides (so transposed views need no copies):
// - "reg": register-blocked, no workgroup memory. Each invocation computes a TM×TN block of C,
//   loading per 4-step of k a 4×TN slice of B, then A row by row, into registers. Wins on CPU
//   adapters. On llvmpipe (Mesa 22.3) an invocation is one lane of an 8-wide SIMD group and
//   every storage load is a loop over the lanes with a bounds check per component (about 40
//   instructions per lane for a vec4), so loads, not multiply-adds, bound the kernel: the ratio
//   TM·TN / (TM + TN) decides, and workgroup memory is no cheaper to read. 32×32 is the largest
//   block offered: it compiles in 6-12 s per layout there (its 1024 accumulators spill), so the
//   autotuner tries 16×32 and 32×32 only where 8×16 leads (see MatmulVariant.after).
// - "tile": workgroup-memory tiling. A workgroup stages a BM×BK tile of A and a BK×BN tile of B
//   in workgroup memory (coalesced global loads), then each invocation computes TM×TN of C from
//   it, rows and columns interleaved across invocations so workgroup reads are conflict-free.
//   The usual winner on discrete GPUs.
// Operand modes: an operand whose contiguous axis has stride 1, a length % 4 == 0, and whose
// other strides and offset are multiples of 4 is bound as array<vec4<T>> and read 4 elements at a
// time along that axis (A: "k4" row-major or "m4" transposed; B: "n4" row-major or "k4"
// transposed). Anything else is bound as array<T> and read with scalar loads ("s"). C is written
// as vec4 when N, its strides and offset are multiples of 4. Odd sizes are handled by clamped loads / zero-filled tiles and
// guarded stores, never by padding copies. Every variant adds k in order 0..K-1 into each
// output as `c + a * b` (which the compiler may contract to an fma), so variants agree to
// rounding. Dims and strides come from a uniform block: one pipeline per variant, dtype and
// modes serves every shape (baked constants measured no faster on llvmpipe, and would make
// every new shape another multi-second compile).

/** How an operand is read: vec4 along a named axis, or scalar through strides. */
export type AMode = "k4" | "m4" | "s";
/** How B is read (see AMode). */
export type BMode = "n4" | "k4" | "s";
/** How C is written. */
export type CMode = "n4" | "s";

/** One kernel shape: its family, the block per invocation and the workgroup. */
export interface MatmulVariant {
  /** The variant's name (`matmulVariant` and the autotuner use it). */
  name: string;
  /**
   * Register-blocked ("reg"), workgroup-tiled through shared memory ("tile"), or
   * register-blocked over operands staged in textures ("tex", kernels/matmul/tex.ts).
   */
  kind: "reg" | "tile" | "tex";
  /** Rows of C per invocation (a multiple of 4). */
  tm: number;
  /** Columns of C per invocation (a multiple of 4). */
  tn: number;
  /** Workgroup width (along N). */
  wx: number;
  /** Workgroup height (along M). */
  wy: number;
  /** k-depth of a workgroup tile ("tile" only; a multiple of 4). */
  bk: number;
  /**
   * The variant that must lead (be within 25% of the fastest) before the autotuner compiles
   * and times this one: big register blocks are tried only where 8×16 already pays.
   */
  after?: string;
}

/**
 * The candidates the autotuner times; all fit WebGPU's default limits (16 KiB, 256 threads).
 * Big register blocks get small workgroups (one 8-wide SIMD group on llvmpipe), so that even a
 * 256×256 product has 8 workgroups to spread over the CPU threads: coarser grids lose whole
 * workgroups' time when another process takes a core.
 */
export const MATMUL_VARIANTS: readonly MatmulVariant[] = [
  { name: "reg4x4", kind: "reg", tm: 4, tn: 4, wx: 8, wy: 8, bk: 0 },
  { name: "reg8x16", kind: "reg", tm: 8, tn: 16, wx: 8, wy: 8, bk: 0 },
  { name: "reg16x32", kind: "reg", tm: 16, tn: 32, wx: 8, wy: 2, bk: 0, after: "reg8x16" },
  { name: "reg32x32", kind: "reg", tm: 32, tn: 32, wx: 8, wy: 1, bk: 0, after: "reg8x16" },
  { name: "tex8x16", kind: "tex", tm: 8, tn: 16, wx: 8, wy: 8, bk: 0 },
  { name: "tex16x32", kind: "tex", tm: 16, tn: 32, wx: 8, wy: 2, bk: 0, after: "tex8x16" },
  { name: "tex32x32", kind: "tex", tm: 32, tn: 32, wx: 8, wy: 1, bk: 0, after: "tex16x32" },
  { name: "tile64", kind: "tile", tm: 4, tn: 4, wx: 16, wy: 16, bk: 16 },
  { name: "tile128", kind: "tile", tm: 8, tn: 8, wx: 16, wy: 16, bk: 8 },
];

/**
 * Words of the uniform block: M N K pad, then A's and B's offset, batch/row/col strides, then
 * C's offset, batch and row strides (C's columns are adjacent; a piece of a split launch writes
 * a block of a larger C).
 */
export const UNIFORM_STRUCT = `struct U {
  M: u32, N: u32, K: u32, pad: u32,
  ao: u32, asb: u32, asr: u32, asc: u32,
  bo: u32, bsb: u32, bsr: u32, bsc: u32,
  co: u32, csb: u32, csr: u32, cpad: u32,
}`;

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const C4 = ["x", "y", "z", "w"];

/** Element type spellings and the multiply-add used by every variant. */
function types(t: string) {
  const v = `vec4<${t}>`;
  const mad = (a: string, b: string, c: string) => `${c} + ${a} * ${b}`;
  return { v, mad };
}

function bindings(t: string, am: AMode, bm: BMode, cm: CMode): string {
  const ty = (vec: boolean) => (vec ? `vec4<${t}>` : t);
  return `${UNIFORM_STRUCT}
@group(0) @binding(0) var<storage, read> a: array<${ty(am !== "s")}>;
@group(0) @binding(1) var<storage, read> b: array<${ty(bm !== "s")}>;
@group(0) @binding(2) var<storage, read_write> c: array<${ty(cm !== "s")}>;
@group(0) @binding(3) var<uniform> u: U;`;
}

/** Store the accumulators `acc(i, jv)` (vec4 over 4 columns) at rows `row(i)`, cols `col(jv)`. */
export function stores(
  cm: CMode,
  rows: string[],
  cols: string[],
  acc: (i: number, jv: number) => string,
): string {
  const out: string[] = [];
  rows.forEach((row, i) => {
    out.push(`  { let r = ${row}; if (r < u.M) { let cr = u.co + z * u.csb + r * u.csr;`);
    cols.forEach((col, jv) => {
      if (cm === "n4") {
        out.push(`    if (${col} < u.N) { c[(cr + ${col}) >> 2u] = ${acc(i, jv)}; }`);
      } else {
        for (let q = 0; q < 4; q++) {
          out.push(
            `    if (${col} + ${q}u < u.N) { c[cr + ${col} + ${q}u] = ${acc(i, jv)}.${C4[q]}; }`,
          );
        }
      }
    });
    out.push(`  } }`);
  });
  return out.join("\n");
}

/** The stores of an invocation's TM×TN block `c{i}_{jv}` at rows row0.., columns col0.. (the
 * register-blocked kernels, buffer and texture-staged). */
export function blockStores(cm: CMode, tm: number, tn: number): string {
  return stores(
    cm,
    range(tm).map((i) => `row0 + ${i}u`),
    range(tn / 4).map((jv) => `col0 + ${4 * jv}u`),
    (i, jv) => `c${i}_${jv}`,
  );
}

/** The register-blocked kernel (see the file header). */
export function regKernel(t: string, v: MatmulVariant, am: AMode, bm: BMode, cm: CMode): string {
  const { tm, tn } = v;
  const tnv = tn / 4;
  const { v: vt, mad } = types(t);
  const setup: string[] = [];
  // Per-invocation base addresses (clamped so out-of-range rows/cols read valid memory).
  if (am === "k4") {
    for (const i of range(tm)) {
      setup.push(`let ar${i} = (aBase + min(row0 + ${i}u, u.M - 1u) * u.asr) >> 2u;`);
    }
  } else if (am === "m4") {
    setup.push(`let asc4 = u.asc >> 2u;`);
    for (const iv of range(tm / 4)) {
      setup.push(`let ar${iv} = (aBase >> 2u) + min(row0 / 4u + ${iv}u, u.M / 4u - 1u);`);
    }
  } else {
    for (const i of range(tm)) {
      setup.push(`let ar${i} = aBase + min(row0 + ${i}u, u.M - 1u) * u.asr;`);
    }
  }
  if (bm === "n4") {
    setup.push(`let bsr4 = u.bsr >> 2u;`, `let bb4 = bBase >> 2u;`);
    for (const jv of range(tnv)) {
      setup.push(`let bc${jv} = bb4 + min(col0 / 4u + ${jv}u, u.N / 4u - 1u);`);
    }
  } else if (bm === "k4") {
    for (const j of range(tn)) {
      setup.push(`let bc${j} = (bBase + min(col0 + ${j}u, u.N - 1u) * u.bsc) >> 2u;`);
    }
  } else {
    for (const j of range(tn)) {
      setup.push(`let bc${j} = bBase + min(col0 + ${j}u, u.N - 1u) * u.bsc;`);
    }
  }
  // One k-step group over kk in kks: the B slice is loaded first, then A row by row (a vec4
  // along m carries 4 rows), each row's loads right before its updates. Loaded A values then
  // live for one row only, which on llvmpipe spills less than loading all of A up front
  // (measured 5-10% faster at 16×32 and 32×32).
  const step = (kks: number[]): string => {
    const body: string[] = [];
    let bOf: (kk: number, jv: number) => string;
    if (bm === "n4") {
      for (const kk of kks) {
        for (const jv of range(tnv)) {
          body.push(`let b${kk}_${jv} = b[bc${jv} + (k + ${kk}u) * bsr4];`);
        }
      }
      bOf = (kk, jv) => `b${kk}_${jv}`;
    } else if (bm === "k4") {
      for (const j of range(tn)) body.push(`let b${j} = b[bc${j} + kq];`);
      bOf = (kk, jv) => `${vt}(${range(4).map((q) => `b${4 * jv + q}.${C4[kk]}`).join(", ")})`;
    } else {
      for (const kk of kks) {
        for (const j of range(tn)) body.push(`let b${kk}_${j} = b[bc${j} + (k + ${kk}u) * u.bsr];`);
      }
      bOf = (kk, jv) => `${vt}(${range(4).map((q) => `b${kk}_${4 * jv + q}`).join(", ")})`;
    }
    // A in units of rows loaded together: one row ("k4", "s") or four ("m4").
    const unit = am === "m4" ? 4 : 1;
    for (let u0 = 0; u0 < tm; u0 += unit) {
      let aOf: (i: number, kk: number) => string;
      if (am === "k4") {
        body.push(`let a${u0} = a[ar${u0} + kq];`);
        aOf = (i, kk) => `a${i}.${C4[kk]}`;
      } else if (am === "m4") {
        const iv = u0 / 4;
        for (const kk of kks) body.push(`let a${kk}_${iv} = a[ar${iv} + (k + ${kk}u) * asc4];`);
        aOf = (i, kk) => `a${kk}_${i >> 2}.${C4[i & 3]}`;
      } else {
        for (const kk of kks) body.push(`let a${kk}_${u0} = a[ar${u0} + (k + ${kk}u) * u.asc];`);
        aOf = (i, kk) => `a${kk}_${i}`;
      }
      // Accumulator-major: each accumulator takes its kks in a row (one spill round trip).
      for (let i = u0; i < u0 + unit; i++) {
        for (const jv of range(tnv)) {
          let e = `c${i}_${jv}`;
          for (const kk of kks) e = mad(`${vt}(${aOf(i, kk)})`, bOf(kk, jv), e);
          body.push(`c${i}_${jv} = ${e};`);
        }
      }
    }
    return body.map((l) => `    ${l}`).join("\n");
  };
  const accs = range(tm).flatMap((i) => range(tnv).map((jv) => `var c${i}_${jv} = ${vt}();`));
  // Unroll k by 4 when an operand is vec4 along k, or both are vector loads; scalar modes keep
  // the code (and llvmpipe's compile time) small. The k1 loop takes the rest (all when k4 = 0).
  const unroll = am === "k4" || bm === "k4" || (am !== "s" && bm !== "s");
  const hasTail = am !== "k4" && bm !== "k4";
  const tail = hasTail ? `  for (var k = k4; k < u.K; k++) {\n${step([0])}\n  }` : "";
  return `${bindings(t, am, bm, cm)}
@compute @workgroup_size(${v.wx}, ${v.wy})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let z = gid.z;
  let row0 = gid.y * ${tm}u;
  let col0 = gid.x * ${tn}u;
  if (row0 >= u.M || col0 >= u.N) { return; }
  let aBase = u.ao + z * u.asb;
  let bBase = u.bo + z * u.bsb;
  ${setup.join("\n  ")}
  ${accs.join("\n  ")}
  let k4 = ${unroll ? "u.K & ~3u" : "0u"};
${
    unroll
      ? `  for (var k = 0u; k < k4; k += 4u) {\n    let kq = k >> 2u;\n${step([0, 1, 2, 3])}\n  }`
      : ""
  }
${tail}
${blockStores(cm, tm, tn)}
}`;
}

/** Cooperative load of one operand tile into workgroup memory (see tileKernel). */
function tileLoad(
  op: "a" | "b",
  mode: string,
  outer: number,
  bk: number,
  nt: number,
  zero: string,
): string {
  // `outer` is BM (for A) or BN (for B); S is the tile in workgroup memory, [bk][outer / 4].
  const S = op === "a" ? "As" : "Bs";
  const lim = op === "a" ? "u.M" : "u.N";
  const o0 = op === "a" ? "bm0" : "bn0";
  const [so, sk] = op === "a" ? ["u.asr", "u.asc"] : ["u.bsc", "u.bsr"];
  const base = op === "a" ? "aBase" : "bBase";
  const ov = outer / 4;
  const lines: string[] = [];
  const vecAlongK = mode === "k4";
  const vecAlongOuter = mode === "m4" || mode === "n4";
  const units = vecAlongK || vecAlongOuter ? (outer * bk) / 4 : outer * bk;
  for (let r = 0; r < units / nt; r++) {
    const e = `(li + ${r * nt}u)`;
    if (vecAlongOuter) {
      // Consecutive invocations read consecutive vec4s along the outer (contiguous) axis.
      lines.push(`{ let o = ${e} % ${ov}u; let kk = ${e} / ${ov}u;
    let ok = ${o0} + o * 4u < ${lim} && k0 + kk < u.K;
    ${S}[kk * ${ov}u + o] = select(${zero}, ${op}[select(0u, (${base} + (k0 + kk) * ${sk}) / 4u + ${o0} / 4u + o, ok)], ok); }`);
    } else if (vecAlongK) {
      const kv = bk / 4;
      lines.push(`{ let kq = ${e} % ${kv}u; let o = ${e} / ${kv}u;
    let ok = ${o0} + o < ${lim} && k0 + kq * 4u < u.K;
    let x = select(${zero}, ${op}[select(0u, (${base} + (${o0} + o) * ${so}) / 4u + k0 / 4u + kq, ok)], ok);
    for (var q = 0u; q < 4u; q++) { ${S}[(kq * 4u + q) * ${ov}u + o / 4u][o % 4u] = x[q]; } }`);
    } else {
      // Scalar: assume k is the contiguous axis of A and the outer one of B (row-major).
      const [oE, kE] = op === "a" ? [`${e} / ${bk}u`, `${e} % ${bk}u`] : [
        `${e} % ${outer}u`,
        `${e} / ${outer}u`,
      ];
      lines.push(`{ let o = ${oE}; let kk = ${kE};
    let ok = ${o0} + o < ${lim} && k0 + kk < u.K;
    ${S}[kk * ${ov}u + o / 4u][o % 4u] = select(${zero}.x, ${op}[select(0u, ${base} + (${o0} + o) * ${so} + (k0 + kk) * ${sk}, ok)], ok); }`);
    }
  }
  return lines.map((l) => `    ${l}`).join("\n");
}

/** The workgroup-tiled kernel (see the file header). */
export function tileKernel(t: string, v: MatmulVariant, am: AMode, bm: BMode, cm: CMode): string {
  const { tm, tn, wx, wy, bk } = v;
  const BM = wy * tm;
  const BN = wx * tn;
  const nt = wx * wy;
  const { v: vt, mad } = types(t);
  const zero = `${vt}()`;
  const tmv = tm / 4;
  const tnv = tn / 4;
  const accs = range(tm).flatMap((i) => range(tnv).map((jv) => `var c${i}_${jv} = ${vt}();`));
  const inner: string[] = [];
  for (const iv of range(tmv)) inner.push(`let a${iv} = As[kk * ${BM / 4}u + ly + ${wy * iv}u];`);
  for (const jv of range(tnv)) inner.push(`let b${jv} = Bs[kk * ${BN / 4}u + lx + ${wx * jv}u];`);
  for (const i of range(tm)) {
    for (const jv of range(tnv)) {
      inner.push(
        `c${i}_${jv} = ${mad(`${vt}(a${i >> 2}.${C4[i & 3]})`, `b${jv}`, `c${i}_${jv}`)};`,
      );
    }
  }
  // Invocation (lx, ly) owns rows (ly + wy·iv)·4 + r and column groups (lx + wx·jv)·4.
  const rows = range(tm).map((i) => `bm0 + (ly + ${wy * (i >> 2)}u) * 4u + ${i & 3}u`);
  const cols = range(tnv).map((jv) => `bn0 + (lx + ${wx * jv}u) * 4u`);
  return `${bindings(t, am, bm, cm)}
var<workgroup> As: array<${vt}, ${(bk * BM) / 4}>;
var<workgroup> Bs: array<${vt}, ${(bk * BN) / 4}>;
@compute @workgroup_size(${wx}, ${wy})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let z = wid.z;
  let bm0 = wid.y * ${BM}u;
  let bn0 = wid.x * ${BN}u;
  let lx = lid.x;
  let ly = lid.y;
  let aBase = u.ao + z * u.asb;
  let bBase = u.bo + z * u.bsb;
  ${accs.join("\n  ")}
  for (var k0 = 0u; k0 < u.K; k0 += ${bk}u) {
${tileLoad("a", am, BM, bk, nt, zero)}
${tileLoad("b", bm, BN, bk, nt, zero)}
    workgroupBarrier();
    for (var kk = 0u; kk < ${bk}u; kk++) {
      ${inner.join("\n      ")}
    }
    workgroupBarrier();
  }
${stores(cm, rows, cols, (i, jv) => `c${i}_${jv}`)}
}`;
}

/** WGSL of a "reg" or "tile" `variant` for operand modes (am, bm, cm) and element type `t`
 * ("tex" variants: kernels/matmul/tex.ts). */
export function matmulSource(
  t: string,
  variant: MatmulVariant,
  am: AMode,
  bm: BMode,
  cm: CMode,
): string {
  if (variant.kind === "tex") throw new Error(`matmul: ${variant.name} is built by tex.ts`);
  return variant.kind === "reg"
    ? regKernel(t, variant, am, bm, cm)
    : tileKernel(t, variant, am, bm, cm);
}
