// Data: tokenizers (char, GPT-2 BPE), datasets, token caches, batch sampling.

export * from "./errors.ts";
export * from "./tokenizer.ts";
export * from "./datasets.ts";
export * from "./token_cache.ts";
export * from "./batches.ts";
