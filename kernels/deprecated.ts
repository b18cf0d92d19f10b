// Old names of kernels, kept as deprecated aliases (README, "Renamed"): a kernel is now an op
// (`defineOp`), so `<name>Kernel` became `<name>Op`. They will go in a later version.

import {
  crossEntropyBackwardOp,
  crossEntropyMeanOp,
  crossEntropyRowsOp,
} from "./rows/cross_entropy.ts";
import { normBackwardOp, normForwardOp, normParamPartialOp, normParamSumOp } from "./rows/norm.ts";
import { topkRowsOp } from "./sample.ts";
import { ternaryQuantOp } from "./ternary/quant.ts";

/** @deprecated Use `crossEntropyRowsOp`. */
export const crossEntropyRowsKernel: typeof crossEntropyRowsOp = crossEntropyRowsOp;
/** @deprecated Use `crossEntropyMeanOp`. */
export const crossEntropyMeanKernel: typeof crossEntropyMeanOp = crossEntropyMeanOp;
/** @deprecated Use `crossEntropyBackwardOp`. */
export const crossEntropyBackwardKernel: typeof crossEntropyBackwardOp = crossEntropyBackwardOp;
/** @deprecated Use `normForwardOp`. */
export const normForwardKernel: typeof normForwardOp = normForwardOp;
/** @deprecated Use `normBackwardOp`. */
export const normBackwardKernel: typeof normBackwardOp = normBackwardOp;
/** @deprecated Use `normParamPartialOp`. */
export const normParamPartialKernel: typeof normParamPartialOp = normParamPartialOp;
/** @deprecated Use `normParamSumOp`. */
export const normParamSumKernel: typeof normParamSumOp = normParamSumOp;
/** @deprecated Use `ternaryQuantOp`. */
export const ternaryQuantKernel: typeof ternaryQuantOp = ternaryQuantOp;
/** @deprecated Use `topkRowsOp`. */
export const topkRowsKernel: typeof topkRowsOp = topkRowsOp;
