// The memory check `train` makes before it allocates a model or a batch (issue 14): the
// estimate of models/memory.ts against what the machine can hold. On the CPU backend and on a
// software WebGPU adapter (llvmpipe) the whole run lives in host memory; on a hardware GPU only
// the batch and a checkpoint's host copies do (WebGPU does not tell how much memory a GPU has;
// the model's largest tensors are checked against the device's limits when it is built). A
// backend whose tensors share one bounded memory (wasm's heap) is checked against that too.

import type { Backend } from "../engine/backend.ts";
import type { GPTConfig, ModelKind } from "../models/config.ts";
import { estimateTrainingMemory, formatBytes, type MemoryEstimate } from "../models/memory.ts";
import { FlagError } from "./args.ts";

/** The machine's memory in bytes (total, available), or null when it cannot be read. */
function machineMemory(): { total: number; available: number } | null {
  try {
    const m = Deno.systemMemoryInfo();
    return { total: m.total, available: m.available };
  } catch {
    return null; // no --allow-sys: nothing to check against
  }
}

/** Does this backend keep tensors in host memory? */
function onHost(backend: Backend): boolean {
  return backend.name !== "webgpu" || (backend.traits.gpu?.isFallback ?? false);
}

/** The estimate as one clause: "1.2 GB (weights 10 MB, optimizer 20 MB, ...)". */
export function describeEstimate(e: MemoryEstimate): string {
  return `${formatBytes(e.total)} (weights and gradients ${formatBytes(e.params + e.grads)}, ` +
    `optimizer ${formatBytes(e.optimizer)}, activations ${formatBytes(e.activations)}, ` +
    `batch ${formatBytes(e.batch)})`;
}

/**
 * Refuse (FlagError) a run whose estimated memory exceeds the machine's; warn (returns a line)
 * when it exceeds what is available now. `memory` replaces the machine's figures (tests).
 */
export function checkTrainingMemory(
  kind: ModelKind,
  config: GPTConfig,
  batchSize: number,
  backend: Backend,
  memory: { total: number; available: number } | null = machineMemory(),
): string | null {
  const e = estimateTrainingMemory(kind, config, batchSize, {
    maxLogitsBytes: backend.traits.maxBindingBytes,
  });
  const heap = backend.traits.maxTotalBytes;
  if (heap !== undefined && e.total - e.batch > heap) {
    throw new FlagError(
      `the run needs about ${describeEstimate(e)}, more than the ${backend.name} backend's ` +
        `${formatBytes(heap)} (one memory holds every tensor); use a smaller --batch-size, ` +
        `--block-size, --n-embd or --n-layer, or another --backend`,
    );
  }
  if (memory === null) return null;
  const host = onHost(backend);
  const need = host ? Math.max(e.total, e.checkpoint + e.batch) : e.batch + e.checkpoint;
  const what = host ? `the run needs about ${describeEstimate(e)}` : `the run needs about ` +
    `${formatBytes(need)} of host memory (batch ${formatBytes(e.batch)}, checkpoint copies ` +
    `${formatBytes(e.checkpoint)})`;
  if (need > memory.total) {
    throw new FlagError(
      `${what}, more than this machine's ${formatBytes(memory.total)}; use a smaller ` +
        `--batch-size, --block-size, --n-embd or --n-layer`,
    );
  }
  if (need > memory.available) {
    return `warning: ${what}, more than the ${formatBytes(memory.available)} available now; ` +
      `the run may fail or swap`;
  }
  return null;
}
