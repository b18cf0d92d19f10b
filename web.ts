/**
 * BitGPT for Deno, browser entry: everything `mod.ts` offers except file and network access
 * (datasets, token caches, `loadDataset`), so it bundles for a web page into one ES module:
 *
 * ```sh
 * deno bundle --platform browser --minify web.ts -o bitgpt.js
 * ```
 *
 * The page needs WebGPU (`navigator.gpu`, a secure context) for the webgpu backend;
 * `useBackend("auto")` falls back to the CPU backend, which runs anywhere.
 *
 * @example One training step of a nano GPT in a page
 * ```ts
 * import { AdamW, createModel, getPreset, tensor, useBackend } from "./web.ts";
 *
 * await useBackend("auto");
 * const { model: config } = getPreset("nano");
 * const model = createModel("gpt", config);
 * const ids = Int32Array.from({ length: 2 * 17 }, (_, i) => (i * 7 + 3) % config.vocabSize);
 * const x = tensor(ids.subarray(0, 32), [2, 16], { dtype: "i32" });
 * const y = tensor(ids.subarray(1, 33), [2, 16], { dtype: "i32" });
 * const { loss } = model.forward(x, y);
 * loss.backward();
 * new AdamW(model, { lr: 1e-3 }).step();
 * console.log(await loss.item());
 * ```
 *
 * @module
 */

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
export {
  beginStep,
  endStep,
  isProfiling,
  profile,
  startProfile,
  stopProfile,
} from "./engine/profile.ts";
export type {
  KernelStat,
  OpStat,
  ProfileOptions,
  ProfileReport,
  StepStat,
  TraceEvent,
} from "./engine/profile.ts";
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

// Data without file access: tokenizers, batch sampling, instruction data and the chat template.
export * from "./data/errors.ts";
export * from "./data/tokenizer.ts";
export * from "./data/sampler.ts";
export * from "./data/chat_template.ts";
export * from "./data/instructions.ts";
export * from "./data/instruction_batches.ts";
