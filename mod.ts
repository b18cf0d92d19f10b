/**
 * BitGPT for Deno: a tensor engine written from scratch in TypeScript, with reverse-mode
 * autograd on WebGPU and a CPU reference backend, plus the GPT and BitGPT (BitNet b1.58)
 * language models, their training loop and generation.
 *
 * Tensor ops are exported flat (`matmul`, `softmax`, ...); layers, optimizers and schedules
 * live in the `nn` namespace and flat; models, generation and training flat. This entry adds
 * file access (datasets, token caches, `loadDataset`) to what `web.ts` offers for browsers.
 *
 * Imported from a URL, it needs `--allow-import=<host>` and nothing else to run on the CPU.
 *
 * @example Train a nano BitGPT on a string and sample from it
 * ```ts
 * import { CharTokenizer, generate, getPreset, splitTokens, train, useBackend } from "./mod.ts";
 *
 * await useBackend("auto"); // WebGPU when the runtime has an adapter, else the CPU
 * const text = "To be, or not to be, that is the question. ".repeat(40);
 * const tok = CharTokenizer.fromText(text);
 * const nano = getPreset("nano");
 * const { model } = await train({
 *   kind: "bitgpt",
 *   config: { ...nano.model, vocabSize: tok.vocabSize },
 *   data: splitTokens(tok.encode(text)),
 *   train: { ...nano.train, learningRate: 3e-3 },
 * });
 * const [ids] = await generate(model, tok.encode("To be"), { maxNewTokens: 40 });
 * console.log("To be" + tok.decode(ids));
 * ```
 *
 * @module
 */

export * from "./web.ts";

// File access (Deno): datasets, token caches, loading a dataset into train/val ids.
export * from "./data/datasets.ts";
export * from "./data/token_cache.ts";
export * from "./data/batches.ts";
