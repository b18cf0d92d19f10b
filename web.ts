// BitGPT for Deno, browser entry: everything `mod.ts` offers except file and network access
// (datasets, token caches, `loadDataset`), so it bundles for a web page with
// `deno bundle --platform browser web.ts -o bitgpt.js`. The page needs WebGPU
// (`navigator.gpu`) for the webgpu backend; the CPU backend runs anywhere.

export * from "./kernels/mod.ts";
export { Tensor } from "./engine/tensor.ts";
export type { NestedArray, Node, StorageRef } from "./engine/tensor.ts";
export { arange, fromArray, full, ones, rand, randn, tensor, zeros } from "./engine/creation.ts";
export type { ArrayLikeDeep, CreateOptions, RandomOptions } from "./engine/creation.ts";
export { backward, isGradEnabled, noGrad } from "./engine/autograd.ts";
export { keep, tidy } from "./engine/scope.ts";
export { describeDevice, getBackend, hasWebGPU, useBackend } from "./engine/device.ts";
export type { BackendChoice } from "./engine/device.ts";
export type {
  ArgInfo,
  Backend,
  BackendName,
  BoundArg,
  CpuArg,
  DeviceTraits,
  Kernel,
  StageFormat,
  Storage,
  TextureLimits,
  TextureStage,
  WgslLaunch,
} from "./engine/backend.ts";
export type { OpDef } from "./engine/op.ts";
export type { DType, TypedArray } from "./engine/dtype.ts";
export { Generator, manualSeed } from "./engine/random.ts";
export type { DrawPosition } from "./engine/random.ts";
export {
  BackendUnavailableError,
  DeviceError,
  ShaderCompileError,
  ShapeError,
  UserError,
} from "./engine/errors.ts";

/** Layers, optimizers, schedules and safetensors, as one namespace. */
export * as nn from "./nn/mod.ts";
export * from "./nn/mod.ts";
export * from "./models/mod.ts";

// Data without file access: tokenizers and batch sampling.
export * from "./data/errors.ts";
export * from "./data/tokenizer.ts";
export * from "./data/sampler.ts";
