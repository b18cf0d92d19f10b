// BitGPT for Deno: the public API. A tensor engine with reverse-mode autograd on WebGPU and a
// CPU reference backend, plus the GPT and BitGPT (BitNet b1.58) models.
//
// Tensor ops are exported flat (`matmul`, `softmax`, ...); layers, optimizers and schedules
// live in the `nn` namespace and flat; models, generation and training flat.

export * from "./web.ts";

// File access (Deno): datasets, token caches, loading a dataset into train/val ids.
export * from "./data/datasets.ts";
export * from "./data/token_cache.ts";
export * from "./data/batches.ts";
