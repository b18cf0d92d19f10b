// The models: GPT, BitGPT, configs and presets, generation, checkpoints, the training loop.

export * from "./config.ts";
export * from "./presets.ts";
export * from "./gpt.ts";
export * from "./bitgpt.ts";
export * from "./model.ts";
export * from "./generate.ts";
export * from "./checkpoint.ts";
export { configFromHf, headReadings } from "./hf.ts";
export * from "./train.ts";
export * from "./params.ts";
