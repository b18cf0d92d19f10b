// The few ops the engine itself needs, provided by kernels/ when it loads (kernels/mod.ts): the
// engine cannot import kernels, yet apply() copies strided views into rows for kernels that read
// rows, and backward() seeds and accumulates gradients.

import type { Tensor } from "./tensor.ts";

/** What kernels/ lends the engine. */
export interface EngineOps {
  /** a + b, same shapes. */
  add(a: Tensor, b: Tensor): Tensor;
  /** A tensor of `shape` filled with `value`, on `like`'s backend with its dtype. */
  full(shape: readonly number[], value: number, like: Tensor): Tensor;
  /** A row-major copy at offset 0 (no autograd link). */
  copy(t: Tensor): Tensor;
}

let ops: EngineOps | null = null;

/** Called once by kernels/mod.ts. */
export function registerEngineOps(o: EngineOps): void {
  ops = o;
}

/** The registered ops; throws when kernels/ was never loaded. */
export function engineOps(): EngineOps {
  if (!ops) throw new Error("engine: kernels not loaded (import kernels/mod.ts or mod.ts)");
  return ops;
}
