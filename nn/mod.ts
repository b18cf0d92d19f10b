// The nn namespace: modules, layers, BitLinear, attention, optimizers, schedules, safetensors.

export * from "./module.ts";
export * from "./layers.ts";
export * from "./bitlinear.ts";
export * from "./attention.ts";
export * from "./rope.ts";
export * from "./optim.ts";
export * from "./schedule.ts";
export * from "./safetensors.ts";
