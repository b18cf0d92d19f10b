// Calibration of models/memory.ts: run a few training steps of several configs and compare the
// estimate with what was measured: the process RSS growth on the CPU backend, the buffer pool's
// peak live bytes on WebGPU. Prints one line per config with the ratio measured / estimated.
// Each config runs in its own process (RSS does not shrink after a dispose).
// Run: deno run -A --v8-flags=--expose-gc tests/reliability/memory_calibration.ts [cpu|webgpu]

import { fromArray } from "../../engine/creation.ts";
import { cpuBackend, webgpuBackend } from "../../engine/device.ts";
import type { Backend } from "../../engine/backend.ts";
import { Generator } from "../../engine/random.ts";
import { tidy } from "../../engine/scope.ts";
import { makeConfig, type ModelKind } from "../../models/config.ts";
import { estimateTrainingMemory, formatBytes } from "../../models/memory.ts";
import { createModel } from "../../models/model.ts";
import { AdamW } from "../../nn/optim.ts";

const which = Deno.args[0] ?? "cpu";
const be: Backend = which === "webgpu" ? await webgpuBackend() : cpuBackend();
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const CASES: [ModelKind, number, number, number, number, number][] = [
  // kind, vocab, C, layers, T, B
  ["gpt", 65, 128, 4, 64, 8],
  ["gpt", 65, 128, 4, 128, 32],
  ["bitgpt", 65, 128, 4, 64, 8],
  ["bitgpt", 65, 256, 2, 128, 16],
  ["gpt", 50304, 64, 2, 64, 4],
  ["bitgpt", 50304, 64, 2, 64, 4],
];
const only = Deno.args[1];
if (only === undefined) {
  console.log(`backend: ${be.describe()}`);
  for (let i = 0; i < CASES.length; i++) {
    const args = ["run", "-A", "--v8-flags=--expose-gc", new URL(import.meta.url).pathname];
    const out = await new Deno.Command(Deno.execPath(), { args: [...args, which, String(i)] })
      .output();
    Deno.stdout.writeSync(out.stdout);
  }
  Deno.exit(0);
}
for (const [kind, V, C, L, T, B] of [CASES[Number(only)]]) {
  const cfg = makeConfig({ vocabSize: V, nEmbd: C, nLayer: L, nHead: 4, blockSize: T });
  gc();
  const rss0 = Deno.memoryUsage().rss;
  const model = createModel(kind, cfg, { backend: be, generator: new Generator(1) });
  const opt = new AdamW(model);
  const ids = new Generator(2).integers(B * T, V);
  let peak = 0;
  for (let s = 0; s < 3; s++) {
    tidy(() => {
      const x = fromArray(ids, [B, T], { dtype: "i32", backend: be });
      model.forward(x, x).loss!.backward();
      opt.step();
      opt.zeroGrad();
    });
    if (which === "webgpu") await model.parameters()[0].data();
    peak = Math.max(peak, Deno.memoryUsage().rss - rss0);
  }
  const stats = (be as { stats?: () => { peakLiveBytes: number } }).stats?.();
  const measured = which === "webgpu" && stats ? stats.peakLiveBytes : peak;
  const est = estimateTrainingMemory(kind, cfg, B).total;
  console.log(
    `${kind} V=${V} C=${C} L=${L} T=${T} B=${B}: estimate ${formatBytes(est)}, measured ` +
      `${formatBytes(measured)} (${which === "webgpu" ? "pool peak" : "RSS growth"}), ratio ` +
      `${(measured / est).toFixed(2)}`,
  );
  model.dispose();
  opt.dispose?.();
}
