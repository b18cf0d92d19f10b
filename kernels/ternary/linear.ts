// The BitLinear inference path on packed weights: `packBitLinear` quantises a trained layer once
// (absmean ternary, 2 bits per weight, formats in format.ts) and `PackedBitLinear`
// runs x [..., K] -> [..., N] as the fused activation quantiser then the ternary GEMV (one
// token) or GEMM. Plus flat {dtype, shape, data} records for safetensors files (the writer and
// reader are nn/safetensors.ts; this file stays below nn/ and only shapes the records).

import type { Backend } from "../../engine/backend.ts";
import type { Tensor } from "../../engine/tensor.ts";
import { fromArray } from "../../engine/creation.ts";
import { CheckpointError, fmtShape, ShapeError } from "../../engine/errors.ts";
import { noGrad } from "../../engine/autograd.ts";
import { packTernary, TERNARY_NORM_EPS, ternaryRowWords } from "./format.ts";
import { ternaryLevels } from "./bit_quant.ts";
import { packActivations } from "./quant.ts";
import { ternaryGemm, ternaryGemv, type TernaryWeights } from "./gemm.ts";
import { reshape } from "../shape/view.ts";

/** A packed BitLinear: ternary weights, their scale, the norm weight and bias on one backend. */
export class PackedBitLinear {
  /** Packed weights u32 [N, ceil(K / 16)] with s_w. */
  readonly weights: TernaryWeights;

  /** Wrap packed weights and their scale with the layer's norm weight and bias. */
  constructor(
    packed: Tensor,
    scale: number,
    /** f32 [K]: the RMSNorm weight applied before quantising activations. */
    readonly normWeight: Tensor,
    /** f32 [N] or null. */
    readonly bias: Tensor | null,
    /** K. */
    readonly inFeatures: number,
    /** RMSNorm epsilon. */
    readonly eps: number = TERNARY_NORM_EPS,
  ) {
    const N = packed.shape[0];
    if (
      packed.ndim !== 2 || packed.dtype !== "u32" || packed.shape[1] !== ternaryRowWords(inFeatures)
    ) {
      throw new ShapeError(
        `PackedBitLinear: packed weight is ${packed.dtype} ${fmtShape(packed.shape)}, expected ` +
          `u32 [N, ${ternaryRowWords(inFeatures)}] for ${inFeatures} inputs`,
      );
    }
    if (normWeight.ndim !== 1 || normWeight.shape[0] !== inFeatures) {
      throw new ShapeError(
        `PackedBitLinear: norm weight is ${fmtShape(normWeight.shape)}, expected [${inFeatures}]`,
      );
    }
    if (bias && (bias.ndim !== 1 || bias.shape[0] !== N)) {
      throw new ShapeError(`PackedBitLinear: bias is ${fmtShape(bias.shape)}, expected [${N}]`);
    }
    for (const t of [normWeight, bias]) {
      if (t && t.backend !== packed.backend) {
        throw new Error(
          `PackedBitLinear: tensors on different backends (${packed.backend.name} and ` +
            `${t.backend.name})`,
        );
      }
    }
    this.weights = { packed, scale, outFeatures: N, inFeatures };
  }

  /** N. */
  get outFeatures(): number {
    return this.weights.outFeatures;
  }

  /** The backend holding the packed weights. */
  get backend(): Backend {
    return this.weights.packed.backend;
  }

  /**
   * x [..., K] -> [..., N] (f32; f64 stays f64 on the cpu backend): quantise activations, then
   * GEMV for one token or GEMM. Inference only: no gradient flows.
   */
  forward(x: Tensor): Tensor {
    if (x.ndim < 1 || x.shape[x.ndim - 1] !== this.inFeatures) {
      throw new ShapeError(
        `PackedBitLinear.forward: x is ${fmtShape(x.shape)}, expected [..., ${this.inFeatures}]`,
      );
    }
    const xq = packActivations(x, this.normWeight, { eps: this.eps });
    const opts = {
      bias: this.bias ?? undefined,
      dtype: x.dtype === "f64" ? "f64" as const : undefined,
    };
    const y = xq.tokens === 1
      ? ternaryGemv(this.weights, xq, opts)
      : ternaryGemm(this.weights, xq, opts);
    xq.data.dispose();
    xq.scale.dispose();
    xq.sum.dispose();
    const out = reshape(y, [...x.shape.slice(0, -1), this.outFeatures]);
    if (out !== y) y.dispose();
    return out;
  }

  /** Bytes of the packed weights (u32 words). */
  get packedBytes(): number {
    return this.weights.packed.size * 4;
  }

  /** Free the device memory (packed weight, norm weight, bias). */
  dispose(): void {
    this.weights.packed.dispose();
    this.normWeight.dispose();
    this.bias?.dispose();
  }
}

/** Options of `packBitLinear`. */
export interface PackOptions {
  /** Where the packed layer lives (default: the weight's backend). */
  backend?: Backend;
  /** RMSNorm epsilon (default 1e-6, BitLinear's). */
  eps?: number;
}

async function f32Of(t: Tensor): Promise<Float32Array> {
  return Float32Array.from(await t.data());
}

/**
 * Quantise and pack a trained BitLinear once: weight [N, K] -> ternary (absmean, scale
 * 1 / max(mean|w|, 1e-5), computed on the weight's backend as training does), normWeight [K]
 * and bias [N] copied as f32. Async: it reads the weight.
 */
export async function packBitLinear(
  weight: Tensor,
  normWeight: Tensor,
  bias?: Tensor | null,
  { backend = weight.backend, eps = TERNARY_NORM_EPS }: PackOptions = {},
): Promise<PackedBitLinear> {
  if (weight.ndim !== 2) {
    throw new ShapeError(`packBitLinear: weight is ${fmtShape(weight.shape)}, expected [N, K]`);
  }
  const [N, K] = weight.shape;
  // The training forward's own quantiser on the weight's backend, so s_w and the levels are
  // exactly what BitLinear trained with (see bit_quant.ts).
  const levels = noGrad(() => ternaryLevels(weight));
  const q = Int8Array.from(await levels.q.data());
  const scale = Math.fround((await levels.scale.data())[0]);
  levels.q.dispose();
  levels.scale.dispose();
  const packed = fromArray(packTernary(q, N, K), [N, ternaryRowWords(K)], { backend });
  const g = fromArray(await f32Of(normWeight), normWeight.shape, { backend });
  const b = bias ? fromArray(await f32Of(bias), bias.shape, { backend }) : null;
  return new PackedBitLinear(packed, scale, g, b, K, eps);
}

/** One tensor of a safetensors file as nn/safetensors.ts takes and gives it. */
export interface PackedRecord {
  /** Stored dtype. */
  dtype: "U32" | "F32";
  /** Tensor shape. */
  shape: number[];
  /** Little-endian values. */
  data: Uint32Array | Float32Array;
}

/**
 * The records of a packed layer under `prefix`: `.weight_packed` U32 [N, ceil(K/16)],
 * `.weight_scale` F32 [1], `.norm.weight` F32 [K], and `.bias` F32 [N] when present.
 */
export async function packedToSafetensors(
  layer: PackedBitLinear,
  prefix: string,
): Promise<Record<string, PackedRecord>> {
  const w = layer.weights;
  const out: Record<string, PackedRecord> = {
    [`${prefix}.weight_packed`]: {
      dtype: "U32",
      shape: [...w.packed.shape],
      data: Uint32Array.from(await w.packed.data()),
    },
    [`${prefix}.weight_scale`]: { dtype: "F32", shape: [1], data: new Float32Array([w.scale]) },
    [`${prefix}.norm.weight`]: {
      dtype: "F32",
      shape: [layer.inFeatures],
      data: await f32Of(layer.normWeight),
    },
  };
  if (layer.bias) {
    out[`${prefix}.bias`] = { dtype: "F32", shape: [w.outFeatures], data: await f32Of(layer.bias) };
  }
  return out;
}

/** A record's contents (anything with dtype, shape, data: nn/safetensors.ts's NamedArray fits). */
export interface RecordLike {
  /** Stored dtype name. */
  dtype: string;
  /** Tensor shape. */
  shape: readonly number[];
  /** Values. */
  data: ArrayLike<number>;
}

function need(records: Record<string, RecordLike>, name: string, dtype: string): RecordLike {
  const r = records[name];
  if (!r) throw new CheckpointError(`packedFromSafetensors: missing tensor '${name}'`);
  if (r.dtype !== dtype) {
    throw new CheckpointError(`packedFromSafetensors: '${name}' is ${r.dtype}, expected ${dtype}`);
  }
  return r;
}

/** Rebuild a packed layer from the records `packedToSafetensors` wrote under `prefix`. */
export function packedFromSafetensors(
  records: Record<string, RecordLike>,
  prefix: string,
  { backend, eps = TERNARY_NORM_EPS }: { backend?: Backend; eps?: number } = {},
): PackedBitLinear {
  const w = need(records, `${prefix}.weight_packed`, "U32");
  const s = need(records, `${prefix}.weight_scale`, "F32");
  const g = need(records, `${prefix}.norm.weight`, "F32");
  const b = records[`${prefix}.bias`] ? need(records, `${prefix}.bias`, "F32") : null;
  if (g.shape.length !== 1) {
    throw new ShapeError(
      `packedFromSafetensors: '${prefix}.norm.weight' is ${fmtShape(g.shape)}, expected [K]`,
    );
  }
  if (s.data.length !== 1) {
    throw new CheckpointError(
      `packedFromSafetensors: '${prefix}.weight_scale' must hold one value`,
    );
  }
  const opts = { backend };
  const packed = fromArray(Uint32Array.from(w.data), w.shape, { ...opts, dtype: "u32" });
  const norm = fromArray(Float32Array.from(g.data), g.shape, { ...opts, dtype: "f32" });
  const bias = b ? fromArray(Float32Array.from(b.data), b.shape, { ...opts, dtype: "f32" }) : null;
  return new PackedBitLinear(packed, s.data[0], norm, bias, g.shape[0], eps);
}
