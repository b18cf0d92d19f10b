// The op list: every tensor function the engine offers, one line per kernels/ file.

import { noGrad } from "../engine/autograd.ts";
import { full } from "../engine/creation.ts";
import { apply } from "../engine/op.ts";
import { registerEngineOps } from "../engine/registry.ts";
import { copyOp } from "./elementwise/copy.ts";
import { add } from "./elementwise/binary.ts";

export * from "./elementwise/copy.ts";
export * from "./elementwise/unary.ts";
export * from "./elementwise/binary.ts";
export * from "./shape/view.ts";
export * from "./reduce.ts";
export * from "./matmul/matmul.ts";
export * from "./shape/concat.ts";
export * from "./rows/softmax.ts";
export * from "./sample.ts";
export * from "./elementwise/gelu.ts";
export * from "./elementwise/gelu_tanh.ts";
export * from "./rows/cross_entropy.ts";
export * from "./rows/linear_cross_entropy.ts";
export * from "./rows/norm.ts";
export * from "./elementwise/dropout.ts";
export * from "./embedding.ts";
export * from "./elementwise/where.ts";
export * from "./elementwise/causal.ts";
export * from "./adamw.ts";
export * from "./ternary/format.ts";
export * from "./ternary/quant.ts";
export * from "./ternary/gemm.ts";
export * from "./ternary/linear.ts";
export * from "./ternary/bit_quant.ts";
export * from "./deprecated.ts";

// The engine copies views into rows for kernels, and seeds and accumulates gradients, with these
// (it cannot import kernels).
registerEngineOps({
  add: (a, b) => add(a, b),
  full: (shape, value, like) => full(shape, value, { dtype: like.dtype, backend: like.backend }),
  copy: (t) => noGrad(() => apply(copyOp, [t], undefined)),
});
