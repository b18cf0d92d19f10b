// The op list: every tensor function the engine offers, one line per kernels/ file.

import { registerGradOps } from "../engine/autograd.ts";
import { full } from "../engine/creation.ts";
import { copyOf } from "../engine/op.ts";
import { add } from "./binary.ts";

export * from "./unary.ts";
export * from "./binary.ts";
export * from "./view.ts";
export * from "./reduce.ts";
export * from "./matmul.ts";
export * from "./concat.ts";
export * from "./softmax.ts";
export * from "./sample.ts";
export * from "./gelu.ts";
export * from "./cross_entropy.ts";
export * from "./norm.ts";
export * from "./dropout.ts";
export * from "./embedding.ts";
export * from "./embedding_split.ts";
export * from "./where.ts";
export * from "./causal.ts";
export * from "./adamw.ts";
export * from "./ternary.ts";
export * from "./ternary_quant.ts";
export * from "./ternary_gemm.ts";
export * from "./ternary_linear.ts";
export * from "./bit_quant.ts";

// Autograd accumulates gradients and seeds backward() with these (engine cannot import kernels).
registerGradOps({
  add: (a, b) => add(a, b),
  onesLike: (t) => full(t.shape, 1, { dtype: t.dtype, backend: t.backend }),
  clone: (t) => copyOf(t),
});
