// What a model holds, known before anything is allocated: the model is built on the meta
// backend (shapes only, no memory, no random draws), so every parameter's name and shape come
// from the model's own code, never from a table kept beside it. Used to check a model fits a
// device (each parameter against the largest tensor the backend holds) and to count and size
// it; the CLI's memory estimate starts here.

import type { Backend } from "../engine/backend.ts";
import { byteSize, type DType } from "../engine/dtype.ts";
import { DeviceLimitError } from "../engine/errors.ts";
import { meta } from "../engine/meta.ts";
import type { GPTConfig } from "./config.ts";
import { createModel, type ModelKind } from "./model.ts";

export { DeviceLimitError };

/** One parameter: its file name and shape. */
export interface ParamSpec {
  /** nanoGPT-style dotted name, as in checkpoints. */
  name: string;
  /** Its shape. */
  shape: number[];
}

/** Every parameter of a `kind` model for `c`, in registration order (tied ones once). */
export function parameterSpecs(kind: ModelKind, c: GPTConfig): ParamSpec[] {
  const m = createModel(kind, c, { backend: meta });
  return m.namedParameters().map(([name, p]) => ({ name, shape: [...p.shape] }));
}

const elements = (specs: ParamSpec[]) =>
  specs.reduce((n, p) => n + p.shape.reduce((a, b) => a * b, 1), 0);

/**
 * Parameter elements of a `kind` model for `c` (tied weights counted once). The blocks repeat,
 * so a deep model is counted from a 1- and a 2-layer build: cheap for any nLayer.
 */
export function parameterCount(kind: ModelKind, c: GPTConfig): number {
  if (c.nLayer <= 2) return elements(parameterSpecs(kind, c));
  const [one, two] = [1, 2].map((nLayer) => elements(parameterSpecs(kind, { ...c, nLayer })));
  return one + (c.nLayer - 1) * (two - one);
}

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/**
 * Throw DeviceLimitError naming the first parameter of a `kind` model for `c` that is larger
 * than `backend` can hold in one tensor (its bytes and the limit), before anything is allocated.
 */
export function checkModelFits(
  kind: ModelKind,
  c: GPTConfig,
  backend: Backend,
  dtype: DType = "f32",
): void {
  const limit = backend.traits.maxTensorBytes;
  // Every block holds the same shapes: one layer names them all.
  for (const p of parameterSpecs(kind, { ...c, nLayer: 1 })) {
    const bytes = p.shape.reduce((a, b) => a * b, byteSize(dtype));
    if (bytes <= limit) continue;
    throw new DeviceLimitError(
      `${kind}: ${p.name} [${p.shape.join(", ")}] ${dtype} needs ${bytes} bytes (${mib(bytes)}), ` +
        `over the ${backend.name} backend's limit of ${limit} bytes (${mib(limit)}) per tensor; ` +
        `use a smaller nEmbd (or vocabulary) or another backend`,
    );
  }
}
