// BitGPT for Deno: the public API. A tensor engine with reverse-mode autograd on WebGPU and a
// CPU reference backend, plus the GPT and BitGPT (BitNet b1.58) models.
//
// Tensor ops are exported flat (`matmul`, `softmax`, ...); layers, optimizers and schedules
// live in the `nn` namespace and flat; models, generation and training flat.

export * from "./kernels/mod.ts";
export { Tensor } from "./engine/tensor.ts";
export type { NestedArray } from "./engine/tensor.ts";
export { arange, fromArray, full, ones, rand, randn, tensor, zeros } from "./engine/creation.ts";
export type { CreateOptions, RandomOptions } from "./engine/creation.ts";
export { backward, isGradEnabled, noGrad } from "./engine/autograd.ts";
export { keep, tidy } from "./engine/scope.ts";
export { describeDevice, getBackend, hasWebGPU, useBackend } from "./engine/device.ts";
export type { BackendChoice } from "./engine/device.ts";
export type { Backend, BackendName } from "./engine/backend.ts";
export type { DType } from "./engine/dtype.ts";
export { Generator, manualSeed } from "./engine/random.ts";
export {
  BackendUnavailableError,
  DeviceError,
  ShaderCompileError,
  ShapeError,
} from "./engine/errors.ts";

/** Layers, optimizers, schedules and safetensors, as one namespace. */
export * as nn from "./nn/mod.ts";
export * from "./nn/mod.ts";
export * from "./models/mod.ts";
export * from "./data/mod.ts";
