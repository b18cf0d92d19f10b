// Embedding lookup in a table held as row chunks (a [V, C] table too large for one storage
// binding, e.g. GPT-2 XL's 50257 × 1600 f32 = 322 MB against llvmpipe's 128 MiB): tables
// t_0..t_{k-1} are [rows_j, C] with rows starting at starts[j] of the whole table; out[..., c] =
// t_j[id − starts[j], c] for the chunk j holding id. Forward: one kernel binds up to 6 chunks
// plus ids and out (WebGPU guarantees 8 storage buffers per stage), one invocation per output
// element (workgroup 256); a chunk selects itself with baked row bounds. More chunks run as
// groups whose outputs are summed (rows outside a group's range read 0). Out-of-range ids as
// kernels/embedding.ts: the CPU throws naming the id, WebGPU writes a NaN row. Backward: per chunk
// the unsplit kernel's own row-range backward (embeddingRowsGrad: one workgroup of 64 per row,
// ids scanned in order in passes), so the chunks together cost its V·N comparisons.

import type { Tensor } from "../engine/tensor.ts";
import { isFloat, wgslType } from "../engine/dtype.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import { apply, defineOp, type OpDef } from "../engine/op.ts";
import { sizeOf } from "../engine/shape.ts";
import { grid1d, linearIndex, WORKGROUP_SIZE } from "../engine/webgpu/codegen.ts";
import { add } from "./binary.ts";
import { embeddingRowsGrad } from "./embedding.ts";
import { reshape } from "./view.ts";

/** Chunks one forward kernel binds (WebGPU's default limit of 8 storage buffers, less 2). */
export const EMBEDDING_SPLIT_MAX_TABLES = 6;

/** Parameters of one forward group: its chunks' first rows, their end, the whole table. */
export interface EmbeddingSplitParams {
  /** First row (in the whole table) of each bound chunk, then the end of the last one. */
  bounds: number[];
  /** Rows of the whole table: ids outside [0, V) are errors (CPU) or NaN rows (WebGPU). */
  V: number;
  /** Embedding width. */
  C: number;
}

const NAN_BITS = 0x7fc00000;

function checkId(id: number, k: number, V: number, C: number): void {
  if (id < 0 || id >= V) {
    throw new RangeError(
      `embedding: id ${id} at position ${k} is out of range [0, ${V}) for weight ` +
        `${fmtShape([V, C])} (held as row chunks)`,
    );
  }
}

function forwardWgsl(tables: number, n: number, { bounds, V, C }: EmbeddingSplitParams, t: string) {
  const decls = Array.from(
    { length: tables },
    (_, j) => `@group(0) @binding(${j}) var<storage, read> t${j}: array<${t}>;`,
  ).join("\n");
  const picks = Array.from(
    { length: tables },
    (_, j) =>
      `  if (r >= ${bounds[j]}u && r < ${bounds[j + 1]}u) { v = t${j}[(r - ${
        bounds[j]
      }u) * ${C}u + c]; }`,
  )
    .join("\n");
  return {
    source: `struct U { n: u32, nan: u32 }
${decls}
@group(0) @binding(${tables}) var<storage, read> ids: array<i32>;
@group(0) @binding(${tables + 1}) var<storage, read_write> out: array<${t}>;
@group(0) @binding(${tables + 2}) var<uniform> u: U;
@compute @workgroup_size(${WORKGROUP_SIZE})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let i = ${linearIndex()};
  if (i >= u.n) { return; }
  let k = i / ${C}u;
  let c = i - k * ${C}u;
  let id = ids[k];
  if (id < 0 || id >= ${V}) { out[i] = bitcast<${t}>(u.nan); return; }
  let r = u32(id);
  var v = ${t}(0);
${picks}
  out[i] = v;
}`,
    grid: grid1d(n),
    uniforms: new Uint32Array([n, NAN_BITS]),
  };
}

/** out [..., C]: rows of the bound chunks (inputs t_0..t_{g-1}, ids), 0 for rows elsewhere. */
export const embeddingSplitOp: OpDef<EmbeddingSplitParams> = defineOp<EmbeddingSplitParams>({
  name: "embedding_split",
  shape: (inputs, { C }) => [...inputs[inputs.length - 1].shape, C],
  cpu(inputs, [out], { bounds, V, C }) {
    const ids = inputs[inputs.length - 1];
    out.fill(0);
    for (let k = 0; k < sizeOf(ids.shape); k++) {
      const id = ids.data[k];
      checkId(id, k, V, C);
      for (let j = 0; j < inputs.length - 1; j++) {
        if (id < bounds[j] || id >= bounds[j + 1]) continue;
        const row = (id - bounds[j]) * C;
        out.set(inputs[j].data.subarray(row, row + C), k * C);
      }
    }
  },
  wgsl(inputs, _out, p) {
    const ids = inputs[inputs.length - 1];
    return forwardWgsl(inputs.length - 1, sizeOf(ids.shape) * p.C, p, wgslType(inputs[0].dtype));
  },
  backward(dy, inputs, _out, { bounds, C }) {
    const ids = inputs[inputs.length - 1];
    const rows = reshape(dy, [ids.size, C]);
    const flat = reshape(ids, [ids.size]);
    const grads: (Tensor | null)[] = inputs.slice(0, -1).map((t, j) =>
      t.requiresGrad
        ? embeddingRowsGrad(rows, flat, {
          start: bounds[j],
          rows: bounds[j + 1] - bounds[j],
          C,
        })
        : null
    );
    return [...grads, null];
  },
});

/**
 * Rows picked by `ids` [...] (i32) from a [V, C] table held as row chunks `tables` (in order,
 * each [rows_j, C], rows adding up to V): the result is [..., C], as `embedding` on the whole.
 */
export function embeddingSplit(tables: readonly Tensor[], ids: Tensor): Tensor {
  if (tables.length === 0) throw new ShapeError("embeddingSplit: needs at least one table chunk");
  const C = tables[0].shape[1];
  for (const t of tables) {
    if (t.ndim !== 2 || t.shape[1] !== C) {
      throw new ShapeError(
        `embeddingSplit: chunks must be [rows, ${C}], got ${fmtShape(t.shape)}`,
      );
    }
    if (!isFloat(t.dtype) || t.dtype !== tables[0].dtype) {
      throw new TypeError(`embeddingSplit: chunks must share one float dtype, got ${t.dtype}`);
    }
  }
  if (ids.dtype !== "i32") {
    throw new TypeError(`embedding: ids must be i32, got ${ids.dtype} ${fmtShape(ids.shape)}`);
  }
  const starts = [0];
  for (const t of tables) starts.push(starts[starts.length - 1] + t.shape[0]);
  const V = starts[tables.length];
  let out: Tensor | null = null;
  for (let g = 0; g < tables.length; g += EMBEDDING_SPLIT_MAX_TABLES) {
    const group = tables.slice(g, g + EMBEDDING_SPLIT_MAX_TABLES);
    const bounds = starts.slice(g, g + group.length + 1);
    const part = apply(embeddingSplitOp, [...group, ids], { bounds, V, C });
    out = out ? add(out, part) : part;
  }
  return out!;
}
