// Matrix multiply: C[b] = A[b] · B[b] for A [..., M, K], B [..., K, N], batch dims broadcast.
// Operands are read through their strides: a transposed view (`transpose(w)`) is consumed as is,
// so A·Bᵀ and Aᵀ·B (the backward products) need no copies. Each operand's batch dims must fold
// into one batch stride (contiguous, or broadcast with stride 0); otherwise it is copied once.
// CPU: B packed row-major per batch, i-k-j loops accumulating a row of C in float64.
// WGSL: register-blocked, each invocation computes a TM×TN block of C from scalar loads, with
// bounds checks for odd sizes; workgroup 8×8 invocations; grid (N/(8·TN), M/(8·TM), batch).

import type { ArgInfo } from "../engine/backend.ts";
import type { Tensor } from "../engine/tensor.ts";
import { apply, defineOp } from "../engine/op.ts";
import { broadcastShapes, ceilDiv, sizeOf } from "../engine/shape.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import { wgslType } from "../engine/dtype.ts";
import { expand, reshape, transpose } from "./view.ts";

/** Dims and operand layouts of one matmul launch. */
interface MatmulParams {
  batch: number;
  M: number;
  N: number;
  K: number;
}

/** Strides of a matrix operand: per batch, per row, per column (elements). */
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

const TM = 4;
const TN = 4;
const WG = 8;

function matmulWgsl(t: string, p: MatmulParams, la: MatLayout, lb: MatLayout): string {
  return `
@group(0) @binding(0) var<storage, read> a: array<${t}>;
@group(0) @binding(1) var<storage, read> b: array<${t}>;
@group(0) @binding(2) var<storage, read_write> c: array<${t}>;
const M = ${p.M}u; const N = ${p.N}u; const K = ${p.K}u;
@compute @workgroup_size(${WG}, ${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row0 = gid.y * ${TM}u;
  let col0 = gid.x * ${TN}u;
  if (row0 >= M || col0 >= N) { return; }
  let aBase = ${la.off}u + gid.z * ${la.sb}u;
  let bBase = ${lb.off}u + gid.z * ${lb.sb}u;
  var acc: array<array<${t}, ${TN}>, ${TM}>;
  for (var k = 0u; k < K; k++) {
    var bv: array<${t}, ${TN}>;
    for (var j = 0u; j < ${TN}u; j++) {
      let col = min(col0 + j, N - 1u);
      bv[j] = b[bBase + k * ${lb.sr}u + col * ${lb.sc}u];
    }
    for (var i = 0u; i < ${TM}u; i++) {
      let row = min(row0 + i, M - 1u);
      let av = a[aBase + row * ${la.sr}u + k * ${la.sc}u];
      for (var j = 0u; j < ${TN}u; j++) { acc[i][j] += av * bv[j]; }
    }
  }
  let cBase = gid.z * M * N;
  for (var i = 0u; i < ${TM}u; i++) {
    for (var j = 0u; j < ${TN}u; j++) {
      if (row0 + i < M && col0 + j < N) { c[cBase + (row0 + i) * N + col0 + j] = acc[i][j]; }
    }
  }
}`;
}

/** The batched matmul kernel over strided operands [batch, M, K] · [batch, K, N]. */
export const matmulOp = defineOp<MatmulParams>({
  name: "matmul",
  strided: true,
  shape: (_inputs, { batch, M, N }) => [batch, M, N],
  cpu([a, b], [c], { batch, M, N, K }) {
    const la = layoutOf(a);
    const lb = layoutOf(b);
    const bp = new Float64Array(K * N);
    const acc = new Float64Array(N);
    for (let z = 0; z < batch; z++) {
      const bo = lb.off + z * lb.sb;
      for (let k = 0; k < K; k++) {
        for (let j = 0; j < N; j++) bp[k * N + j] = b.data[bo + k * lb.sr + j * lb.sc];
      }
      const ao = la.off + z * la.sb;
      for (let i = 0; i < M; i++) {
        acc.fill(0);
        for (let k = 0; k < K; k++) {
          const aik = a.data[ao + i * la.sr + k * la.sc];
          if (aik === 0) continue;
          const row = k * N;
          for (let j = 0; j < N; j++) acc[j] += aik * bp[row + j];
        }
        c.set(acc, (z * M + i) * N);
      }
    }
  },
  wgsl([a, b], _outs, p) {
    return {
      source: matmulWgsl(wgslType(a.dtype), p, layoutOf(a), layoutOf(b)),
      grid: [ceilDiv(ceilDiv(p.N, TN), WG), ceilDiv(ceilDiv(p.M, TM), WG), p.batch],
    };
  },
  backward(dy, [a, b]) {
    // dA = dC · Bᵀ, dB = Aᵀ · dC, per batch; the transposes are views, not copies.
    return [matmul(dy, transpose(b)), matmul(transpose(a), dy)];
  },
});

/**
 * Matrix product with NumPy semantics (1-D operands are promoted as in NumPy):
 * A [..., M, K] · B [..., K, N] -> [..., M, N], batch dims broadcast.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0) {
    throw new ShapeError(
      `matmul: operands must have rank >= 1, got ${fmtShape(a.shape)} and ${fmtShape(b.shape)}`,
    );
  }
  if (a.ndim === 1) {
    const y = matmul(reshape(a, [1, a.shape[0]]), b);
    return reshape(y, [...y.shape.slice(0, -2), y.shape[y.ndim - 1]]);
  }
  if (b.ndim === 1) return reshape(matmul(a, reshape(b, [b.shape[0], 1])), a.shape.slice(0, -1));
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
  const y = apply(matmulOp, [a3, b3], { batch: nb, M: rows, N, K });
  return reshape(y, [...batchShape, M, N]);
}
