// Basic layers as in torch.nn: Linear (weight [out, in] as PyTorch stores it, optional bias),
// Embedding, LayerNorm (optional bias), RMSNorm, Dropout. Each composes kernels/ ops, so
// autograd comes with them. Initialisation draws from the engine's seeded generator. Embedding
// and Linear can hold their weight as row chunks (split.ts) when it exceeds one binding.

import type { Backend } from "../engine/backend.ts";
import { full, rand, randn, zeros } from "../engine/creation.ts";
import { byteSize, type DType } from "../engine/dtype.ts";
import { fmtShape, ShapeError } from "../engine/errors.ts";
import type { Generator } from "../engine/random.ts";
import type { Tensor } from "../engine/tensor.ts";
import {
  add,
  cat,
  dropout,
  embedding,
  layerNorm,
  matmul,
  rmsNorm,
  transpose,
} from "../kernels/mod.ts";
import { embeddingSplit } from "../kernels/embedding_split.ts";
import { Module, type Parameter, parameter } from "./module.ts";
import { chunkRows, RowChunks, tableRows, type TableWeight } from "./split.ts";

/** Where parameters are created and how they are initialised. */
export interface InitOptions {
  /** Std of the N(0, std) weight init (default: PyTorch's per-layer default). */
  std?: number;
  /** Random stream for the init (default: the engine's global generator). */
  generator?: Generator;
  /** Backend for the parameters (default: the current backend). */
  backend?: Backend;
  /** Parameter dtype (default f32; f64 only on the cpu backend). */
  dtype?: DType;
  /** Allocate zeros instead of drawing (the values are about to be loaded from a file). */
  skipInit?: boolean;
}

/** Options of the layers whose weight may be held as row chunks (Embedding, Linear). */
export interface TableOptions extends InitOptions {
  /**
   * Hold the weight as row chunks of at most this many bytes when it is larger (default: one
   * tensor). Models pass the backend's storage-binding limit here for their embeddings and
   * lm_head. Chunks are drawn in row order from one stream, so the values equal an unsplit init.
   */
  maxBytes?: number;
}

/** A [rows, cols] weight: one Parameter, or row chunks when over `o.maxBytes`. */
function makeTable(
  rows: number,
  cols: number,
  o: TableOptions,
  init: (shape: number[]) => Tensor,
): TableWeight | Tensor {
  if (o.maxBytes === undefined) return init([rows, cols]);
  const sizes = chunkRows(rows, cols, byteSize(o.dtype ?? "f32"), o.maxBytes);
  return sizes.length > 1 ? new RowChunks(rows, cols, sizes, init) : init([rows, cols]);
}

function wholeWeight(what: string, t: TableWeight): Parameter {
  if (t instanceof RowChunks) {
    throw new Error(
      `${what}: the weight ${fmtShape(t.shape)} is held as ${t.sizes.length} row chunks ` +
        `(over one storage binding); use .table`,
    );
  }
  return t;
}

/** A [..shape] weight drawn N(0, std) from the options' generator, or zeros with skipInit. */
export function normalInit(shape: number[], std: number, o: InitOptions): Tensor {
  const { generator, backend, dtype } = o;
  return o.skipInit
    ? zeros(shape, { backend, dtype })
    : randn(shape, { std, generator, backend, dtype });
}

/** y = x·Wᵀ + b for x [..., in], W [out, in], b [out] (functional form of Linear). */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const inF = weight.shape[1];
  if (x.shape[x.ndim - 1] !== inF) {
    throw new ShapeError(
      `linear: input is ${fmtShape(x.shape)}, weight is ${fmtShape(weight.shape)} ([out, in])`,
    );
  }
  const y = matmul(x, transpose(weight)); // (..., in) · (in, out) -> (..., out)
  return bias ? add(y, bias) : y;
}

/** Options of Linear. */
export interface LinearOptions extends TableOptions {
  /** Learn an additive bias (default true). */
  bias?: boolean;
  /** Use this existing weight (weight tying, e.g. lm_head ← wte), chunked or not. */
  weight?: TableWeight;
}

/** A fully connected layer; weight [out, in], bias [out]. */
export class Linear extends Module {
  // Row chunks, or null for one Parameter: looked up by name, since Module.to() replaces it.
  #chunks: RowChunks | null;
  /** A layer from `inFeatures` to `outFeatures`; weight U(±1/sqrt(in)) or N(0, `std`), bias 0. */
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    const { generator, backend, dtype } = opts;
    let table: TableWeight;
    if (opts.weight) {
      const [out, inF] = opts.weight.shape;
      if (out !== outFeatures || inF !== inFeatures) {
        throw new ShapeError(
          `Linear: tied weight is ${
            fmtShape(opts.weight.shape)
          }, expected [${outFeatures}, ${inFeatures}]`,
        );
      }
      table = opts.weight;
    } else if (opts.std !== undefined || opts.skipInit) {
      const std = opts.std ?? 0;
      table = own(makeTable(outFeatures, inFeatures, opts, (s) => normalInit(s, std, opts)));
    } else {
      // PyTorch's default: U(-1/sqrt(in), 1/sqrt(in)).
      const k = 1 / Math.sqrt(inFeatures);
      const init = (shape: number[]) =>
        rand(shape, { low: -k, high: k, generator, backend, dtype });
      table = own(makeTable(outFeatures, inFeatures, opts, init));
    }
    this.#chunks = table instanceof RowChunks ? this.addModule("weight", table) : null;
    if (!this.#chunks) this.addParameter("weight", table as Parameter);
    if (opts.bias ?? true) this.addParameter("bias", zeros([outFeatures], { backend, dtype }));
  }
  /** The weight [out, in]: one Parameter, or row chunks (split.ts) when over `maxBytes`. */
  get table(): TableWeight {
    return this.#chunks ?? this.param("weight");
  }
  /** The weight [out, in] (throws when it is held as row chunks: see `table`). */
  get weight(): Parameter {
    return wholeWeight("Linear", this.table);
  }
  /** The bias [out], or null. */
  get bias(): Parameter | null {
    return this.maybeParam("bias");
  }
  /** x [..., in] -> [..., out]; with row chunks, the chunks' outputs joined along the last axis. */
  forward(x: Tensor): Tensor {
    const t = this.table;
    if (!(t instanceof RowChunks)) return linear(x, t, this.bias);
    const y = cat(t.parts.map((p) => linear(x, p)), -1); // (..., out_j) joined -> (..., out)
    return this.bias ? add(y, this.bias) : y;
  }
}

function own(t: TableWeight | Tensor): TableWeight {
  return t instanceof RowChunks ? t : parameter(t);
}

/** A lookup table of `num` vectors of size `dim`, initialised N(0, std=1 by default). */
export class Embedding extends Module {
  // Row chunks, or null for one Parameter: looked up by name, since Module.to() replaces it.
  #chunks: RowChunks | null;
  /** A table of `num` rows of width `dim`. */
  constructor(readonly num: number, readonly dim: number, opts: TableOptions = {}) {
    super();
    const t = own(makeTable(num, dim, opts, (s) => normalInit(s, opts.std ?? 1, opts)));
    this.#chunks = t instanceof RowChunks ? this.addModule("weight", t) : null;
    if (!this.#chunks) this.addParameter("weight", t as Parameter);
  }
  /** The table [num, dim]: one Parameter, or row chunks (split.ts) when over `maxBytes`. */
  get table(): TableWeight {
    return this.#chunks ?? this.param("weight");
  }
  /** The table [num, dim] (throws when it is held as row chunks: see `table`). */
  get weight(): Parameter {
    return wholeWeight("Embedding", this.table);
  }
  /** Rows [start, start + len) of the table, [len, dim] (differentiable; e.g. positions). */
  rows(start: number, len: number): Tensor {
    return tableRows(this.table, start, len);
  }
  /** ids (i32) [...] -> [..., dim]. */
  forward(ids: Tensor): Tensor {
    const t = this.table;
    return t instanceof RowChunks ? embeddingSplit(t.parts, ids) : embedding(t, ids);
  }
}

/** Options of LayerNorm. */
export interface NormOptions {
  /** Guard inside the square root (LayerNorm default 1e-5, RMSNorm 1e-6). */
  eps?: number;
  /** Learn a bias (LayerNorm only, default true). */
  bias?: boolean;
  /** Backend to create the parameters on (default: the current one). */
  backend?: Backend;
  /** Parameter dtype (default "f32"). */
  dtype?: DType;
}

/** Layer normalisation over the last dim: (x − mean) / sqrt(var + eps) · weight + bias. */
export class LayerNorm extends Module {
  /** Guard inside the square root. */
  readonly eps: number;
  /** A LayerNorm over rows of width `dim`; weight ones, bias zeros. */
  constructor(readonly dim: number, opts: NormOptions = {}) {
    super();
    const { backend, dtype } = opts;
    this.eps = opts.eps ?? 1e-5;
    this.addParameter("weight", full([dim], 1, { backend, dtype }));
    if (opts.bias ?? true) this.addParameter("bias", zeros([dim], { backend, dtype }));
  }
  /** Scale [dim]. */
  get weight(): Parameter {
    return this.param("weight");
  }
  /** Shift [dim], or null. */
  get bias(): Parameter | null {
    return this.maybeParam("bias");
  }
  /** x [..., dim] -> same shape. */
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}

/** RMS normalisation over the last dim: x / sqrt(mean(x²) + eps) · weight. */
export class RMSNorm extends Module {
  /** Guard inside the square root. */
  readonly eps: number;
  /** An RMSNorm over rows of width `dim`; weight ones. */
  constructor(readonly dim: number, opts: Omit<NormOptions, "bias"> = {}) {
    super();
    this.eps = opts.eps ?? 1e-6;
    this.addParameter("weight", full([dim], 1, { backend: opts.backend, dtype: opts.dtype }));
  }
  /** Scale [dim]. */
  get weight(): Parameter {
    return this.param("weight");
  }
  /** x [..., dim] -> same shape. */
  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}

/** Inverted dropout: zeroes elements with probability p in training, scales the rest by 1/(1−p). */
export class Dropout extends Module {
  /** Random stream for the masks (null: the engine's global generator). */
  generator: Generator | null = null;
  /** Dropout with probability `p` in [0, 1). */
  constructor(readonly p: number) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`Dropout: p must be in [0, 1), got ${p}`);
  }
  /** Identity in eval mode or when p is 0. */
  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    return dropout(x, this.p, { training: true, generator: this.generator ?? undefined });
  }
}
