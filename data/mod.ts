// Data: tokenizers (char, GPT-2 BPE), datasets, token caches, batch sampling, instruction data
// and the chat template.

export * from "./errors.ts";
export * from "./tokenizer.ts";
export * from "./datasets.ts";
export * from "./token_cache.ts";
export * from "./batches.ts";
export * from "./chat_template.ts";
export * from "./instructions.ts";
export * from "./instruction_batches.ts";
