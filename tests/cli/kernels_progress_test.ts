// The lines `train` and `generate` print while the WebGPU backend tunes matmul kernels: why a
// first run's first step waits, and that a later run reuses the decisions.

import { deepStrictEqual } from "node:assert/strict";
import type { WebGpuBackend } from "../../engine/webgpu/backend.ts";
import { cpuBackend } from "../../engine/device.ts";
import { watchKernels } from "../../cli/progress.ts";
import { gpu, hasWebGPU } from "../util.ts";

Deno.test({
  name: "watchKernels: a line when tuning starts and ends, one when decisions are reused",
  ignore: !hasWebGPU,
  async fn() {
    const be = (await gpu()) as WebGpuBackend;
    const lines: string[] = [];
    const before = be.tuner.onProgress;
    watchKernels(be, (l) => lines.push(l));
    try {
      const emit = be.tuner.onProgress!;
      emit({ phase: "restored", key: "a", chosen: "x" });
      emit({ phase: "restored", key: "b", chosen: "y" });
      emit({ phase: "start", total: 7 });
      for (let done = 0; done < 7; done++) emit({ phase: "key", key: "k", done, total: 7 });
      emit({ phase: "end", total: 7, ms: 51_234 });
      deepStrictEqual(lines, [
        "kernels: reusing matmul tuning decisions of an earlier run",
        "kernels: compiling and timing matmul variants for 7 shape classes " +
        "(first run on this adapter only) ...",
        "kernels: tuned in 51s; later runs reuse the decisions",
      ]);
    } finally {
      be.tuner.onProgress = before;
    }
  },
});

Deno.test("watchKernels: nothing to watch on the cpu backend", () => {
  const lines: string[] = [];
  watchKernels(cpuBackend(), (l) => lines.push(l));
  deepStrictEqual(lines, []);
});
