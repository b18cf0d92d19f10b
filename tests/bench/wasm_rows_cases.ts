// The cases of tests/bench/wasm_rows_bench.ts: each kernel at the baby GPT's shapes (dims
// legend: N = B·T = 768 tokens, C = 128, V = 65, 48 attention rows blocks of T = 64).

import type { Kernel } from "../../engine/backend.ts";
import type { DType } from "../../engine/dtype.ts";
import { softmaxBackwardOp, softmaxOp } from "../../kernels/rows/softmax.ts";
import {
  crossEntropyBackwardOp,
  crossEntropyMeanOp,
  crossEntropyRowsOp,
} from "../../kernels/rows/cross_entropy.ts";
import {
  normBackwardOp,
  normForwardOp,
  normParamPartialOp,
  normParamSumOp,
} from "../../kernels/rows/norm.ts";
import { embeddingBackwardOp, embeddingOp } from "../../kernels/embedding.ts";
import { activationLevelsKernel, ternaryQuantOp } from "../../kernels/ternary/quant.ts";
import { dequantizeOp, reciprocalOp, ternaryLevelsOp } from "../../kernels/ternary/bit_quant.ts";
import { int8RowWords } from "../../kernels/ternary/format.ts";
import { multinomialOp, sampleLogitsOp, topkRowsOp } from "../../kernels/sample.ts";

/** One argument: shape, dtype (default f32), values by index (default normal or small ints). */
export type BenchArg = [number[], DType?, ((i: number) => number)?];

/** One kernel launch to time. */
export interface BenchCase {
  name: string;
  shape: string;
  kernel: Kernel<unknown>;
  params: unknown;
  inputs: BenchArg[];
  outputs: BenchArg[];
  /** Calls per timing (default 20). */
  reps?: number;
  /**
   * Strides of inputs that are broadcast views (null: row-major): the input's storage holds
   * its own elements, seen with the output's shape through these strides.
   */
  strides?: (number[] | null)[];
}

const [N, C, V, T] = [768, 128, 65, 64];
const ATT = 48 * T; // attention rows: B·nHead·T
const k = <P>(kernel: Kernel<P>) => kernel as Kernel<unknown>;
const layer = { kind: "layer", rows: N, len: C, eps: 1e-5, hasBias: true };
const ce = { rows: N, classes: V, ignoreIndex: -1 };

/** The cases, in the order of the table. */
export const BENCH_CASES: BenchCase[] = [
  {
    name: "softmax",
    shape: `[${ATT}, ${T}]`,
    kernel: k(softmaxOp),
    params: { kind: "softmax" },
    inputs: [[[ATT, T]]],
    outputs: [[[ATT, T]]],
  },
  {
    name: "softmax_backward",
    shape: `[${ATT}, ${T}]`,
    kernel: k(softmaxBackwardOp),
    params: { kind: "softmax" },
    inputs: [[[ATT, T]], [[ATT, T]]],
    outputs: [[[ATT, T]]],
  },
  {
    name: "cross_entropy_rows",
    shape: `[${N}, ${V}]`,
    kernel: k(crossEntropyRowsOp),
    params: ce,
    inputs: [[[N, V]], [[N], "i32"]],
    outputs: [[[N, 2]]],
  },
  {
    name: "cross_entropy_mean",
    shape: `[${N}, 2]`,
    kernel: k(crossEntropyMeanOp),
    params: { ...ce, classes: 1 },
    inputs: [[[N, 2]], [[N], "i32"]],
    outputs: [[[2]]],
  },
  {
    name: "cross_entropy_backward",
    shape: `[${N}, ${V}]`,
    kernel: k(crossEntropyBackwardOp),
    params: ce,
    inputs: [[[N, V]], [[N], "i32"], [[N, 2]], [[2], "f32", () => N], [[1]]],
    outputs: [[[N, V]]],
  },
  {
    name: "norm_forward",
    shape: `[${N}, ${C}] layer, bias`,
    kernel: k(normForwardOp),
    params: layer,
    inputs: [[[N, C]], [[C]], [[C]]],
    outputs: [[[N, C]], [[N, 2]]],
  },
  {
    name: "norm_backward",
    shape: `[${N}, ${C}] layer`,
    kernel: k(normBackwardOp),
    params: layer,
    inputs: [[[N, C]], [[N, C]], [[C]], [[N, 2], "f32", (i) => (i % 2 ? 1.1 : 0.1)]],
    outputs: [[[N, C]]],
  },
  {
    name: "norm_backward",
    shape: `[${N}, ${4 * C}] rms (BitLinear)`,
    kernel: k(normBackwardOp),
    params: { ...layer, kind: "rms", len: 4 * C, hasBias: false },
    inputs: [[[N, 4 * C]], [[N, 4 * C]], [[4 * C]], [[N], "f32", () => 1.1]],
    outputs: [[[N, 4 * C]]],
  },
  {
    name: "norm_param_partial",
    shape: `[${N}, ${C}] layer, bias`,
    kernel: k(normParamPartialOp),
    params: layer,
    inputs: [[[N, C]], [[N, C]], [[N, 2], "f32", (i) => (i % 2 ? 1.1 : 0.1)]],
    outputs: [[[N / 64, 2, C]]],
  },
  {
    name: "norm_param_sum",
    shape: `[${N / 64}, 2, ${C}]`,
    kernel: k(normParamSumOp),
    params: layer,
    inputs: [[[N / 64, 2, C]]],
    outputs: [[[C]], [[C]]],
  },
  {
    name: "embedding",
    shape: `[${V}, ${C}] × ${N} ids`,
    kernel: k(embeddingOp),
    params: { V, C },
    inputs: [[[V, C]], [[N], "i32"]],
    outputs: [[[N, C]]],
  },
  {
    name: "embedding_backward",
    shape: `${N} ids × ${C} -> [${V}, ${C}]`,
    kernel: k(embeddingBackwardOp),
    params: { start: 0, rows: V, C, k0: 0, k1: N, accumulate: false },
    inputs: [[[N, C]], [[N], "i32"]],
    outputs: [[[V, C]]],
  },
  {
    name: "activation_levels",
    shape: `[${N}, ${C}]`,
    kernel: k(activationLevelsKernel),
    params: { tokens: N, inFeatures: C, eps: 1e-6 },
    inputs: [[[N, C]], [[C]]],
    outputs: [[[N, C]], [[N]], [[N]]],
  },
  {
    name: "ternary_quant",
    shape: `[${N}, ${C}] packed`,
    kernel: k(ternaryQuantOp),
    params: { tokens: N, inFeatures: C, eps: 1e-6 },
    inputs: [[[N, C]], [[C]]],
    outputs: [[[N, int8RowWords(C)], "u32"], [[N]], [[N], "i32"]],
  },
  {
    name: "ternary_levels",
    shape: `[${3 * C}, ${C}]`,
    kernel: k(ternaryLevelsOp),
    params: undefined,
    inputs: [[[3 * C, C]], [[1], "f32", () => 14]],
    outputs: [[[3 * C, C]]],
    strides: [null, [0, 0]],
  },
  {
    name: "dequantize",
    shape: `[${N}, ${3 * C}]`,
    kernel: k(dequantizeOp),
    params: undefined,
    inputs: [[[N, 3 * C]], [[N], "f32", () => 20], [[1], "f32", () => 14]],
    outputs: [[[N, 3 * C]]],
    strides: [null, [1, 0], [0, 0]],
  },
  {
    name: "reciprocal",
    shape: "[]",
    kernel: k(reciprocalOp),
    params: undefined,
    inputs: [[[1]]],
    outputs: [[[1]]],
  },
  {
    name: "sample_logits",
    shape: `[1, ${V}] (decode)`,
    kernel: k(sampleLogitsOp),
    params: { key: [1, 2], offset: 0, numSamples: 1, temperature: 0.8, topK: 0, topP: 1 },
    inputs: [[[1, V]]],
    outputs: [[[1], "i32"]],
  },
  {
    name: "sample_logits",
    shape: `[1, ${V}] top-k 10, top-p 0.9`,
    kernel: k(sampleLogitsOp),
    params: { key: [1, 2], offset: 0, numSamples: 1, temperature: 0.8, topK: 10, topP: 0.9 },
    inputs: [[[1, V]]],
    outputs: [[[1], "i32"]],
  },
  {
    name: "sample_logits",
    shape: "[1, 50257] top-k 50, top-p 0.9 (GPT-2)",
    kernel: k(sampleLogitsOp),
    params: { key: [1, 2], offset: 0, numSamples: 1, temperature: 0.8, topK: 50, topP: 0.9 },
    inputs: [[[1, 50257]]],
    outputs: [[[1], "i32"]],
    reps: 2,
  },
  {
    name: "multinomial",
    shape: `[12, ${V}] × 4 draws`,
    kernel: k(multinomialOp),
    params: { key: [1, 2], offset: 0, numSamples: 4 },
    inputs: [[[12, V], "f32", (i) => (i % 7) / 7]],
    outputs: [[[12, 4], "i32"]],
  },
  {
    name: "topk",
    shape: `[12, ${V}] k 10`,
    kernel: k(topkRowsOp),
    params: { k: 10 },
    inputs: [[[12, V]]],
    outputs: [[[12, 10]], [[12, 10], "i32"]],
  },
];
